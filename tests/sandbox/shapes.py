"""Check an AWS response against botocore's output shape of its operation, strictly.

botocore's parsers drop keys the model does not name, so a misspelt key in a sandbox
answer would pass unnoticed through boto3. `recording_client` keeps each raw JSON
body; `shape_errors` walks it (or, for XML services, the parsed result) against the
output shape: unknown and missing required members, wrong types, values outside an enum.
"""

import json
from datetime import datetime

from controlplane import aws

SCALARS = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float, str, datetime),  # epoch seconds in JSON, datetime once parsed
    "blob": (str, bytes),
}


def recording_client(sandbox, service, region):
    """A new boto3 client on the sandbox (not the shared cache) whose .raw holds the
    latest response's (operation name, body bytes)."""
    client = aws.client(service, region, endpoint_url=sandbox.aws_endpoint)
    client.raw = None

    def keep(http_response, model, **kwargs):
        client.raw = (model.name, http_response.content)

    client.meta.events.register("after-call", keep)
    return client


def output_errors(client, parsed):
    """What in the latest response does not fit its output shape (empty when it fits)."""
    operation, body = client.raw
    model = client.meta.service_model
    shape = model.operation_model(operation).output_shape
    if model.protocol in ("json", "rest-json"):
        return shape_errors(json.loads(body), shape)
    return shape_errors({k: v for k, v in parsed.items() if k != "ResponseMetadata"}, shape)


def shape_errors(value, shape, path="$"):
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        errors = [f"{path}.{key}: not in {shape.name}" for key in value if key not in shape.members]
        errors += [f"{path}.{key}: required, missing" for key in shape.required_members if key not in value]
        for key, member in shape.members.items():
            if key in value:
                errors += shape_errors(value[key], member, f"{path}.{key}")
        return errors
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [e for i, item in enumerate(value) for e in shape_errors(item, shape.member, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a map"]
        return [e for k, v in value.items() for e in shape_errors(v, shape.value, f"{path}.{k}")]
    if not isinstance(value, SCALARS[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{path}: {value!r} is not a {kind}"]
    enum = getattr(shape, "enum", None)  # only string shapes have one
    if enum and value not in enum:
        return [f"{path}: {value!r} not one of {enum}"]
    return []
