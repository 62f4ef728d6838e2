"""Small builders for the OpenAPI 3.1 schemas of controlplane/openapi.py and
experiments/openapi.py (kept apart so that neither imports the other's module)."""


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema):
    return {"oneOf": [schema, {"type": "null"}]}


def obj(properties, required=None, additional=False):
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": additional,
    }


def json_response(schema_name, description):
    """A response whose JSON body is the named schema."""
    return {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}


def json_body(schema_name, required=True):
    """A request body of the named schema."""
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


DATE_TIME = {"type": "string", "format": "date-time"}
