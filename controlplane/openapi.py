"""The OpenAPI 3.1 description of the JSON API under /api/v1/, as a Python dict.

Served at GET /api/v1/openapi.json without authentication: it describes the shape of
the API only (no inventory, no status), and clients and generators fetch it before they
hold a token. Tests validate it (openapi-spec-validator), check that every URL pattern
under /api/v1/ is in it, and validate real responses against its schemas."""

from django.http import JsonResponse

from controlplane.api import api_view
from controlplane.openapi_schema import DATE_TIME
from controlplane.openapi_schema import json_response as _json
from controlplane.openapi_schema import nullable as _nullable
from controlplane.openapi_schema import obj as _object
from controlplane.openapi_schema import ref as _ref
from experiments import openapi as experiments_openapi
from notifications import openapi as notifications_openapi
from regions.models import Architecture, ComponentKind, LagMethod
from regions.status import HealthStatus

STATUS_VALUES = list(HealthStatus.values)


REGION_CODE = {"type": "string", "examples": ["us-east-1"]}

SCHEMAS = {
    "HealthStatus": {
        "type": "string",
        "enum": STATUS_VALUES,
        "description": "Computed from recent samples: healthy, degraded, unhealthy or unknown.",
    },
    "Verdict": _object({
        "status": _ref("HealthStatus"),
        "reason": {"type": "string", "examples": ["3 consecutive 503 from /health"]},
    }),
    "HealthVerdict": _object({
        "status": _ref("HealthStatus"),
        "reason": {"type": "string"},
        "last_sample_at": _nullable(DATE_TIME),
        "status_code": _nullable({"type": "integer"}),
        "latency_ms": _nullable({"type": "number"}),
    }),
    "RegionStatus": _object({
        "region": REGION_CODE,
        "status": _ref("HealthStatus"),
        "reason": {"type": "string"},
        "in_rotation": {"type": "boolean", "description": "Inventory intent, not health."},
        "receives_traffic": _nullable({
            "type": "boolean",
            "description": (
                "Effective routing now. Decided by the clients' view where it says something "
                "(the probes of the global endpoint from each vantage: a region serving one "
                "receives traffic; one serving none while its /health is unhealthy receives "
                "none), else by AWS's (Route 53 records and health checks, or Global "
                "Accelerator dials, weights and endpoint health, and ARC routing controls); "
                "null when neither says anything about the region."
            ),
        }),
        "routing_reason": {
            "type": "string",
            "description": "Each fact prefixed by its source (clients:, probes:, AWS:).",
            "examples": [
                "clients: served by us-west-2 from local, 1.2 s ago",
                "AWS: traffic dial 0 %, as of 4.0 s ago",
            ],
        },
        "routing_source": _nullable({
            "type": "string",
            "enum": ["clients", "aws"],
            "description": "Which source decided receives_traffic.",
        }),
        "health": _ref("HealthVerdict"),
        "replication": _ref("ReplicationVerdict"),
        "drill_freshness": _ref("DrillFreshness"),
    }),
    "DrillFreshness": _object({
        "state": {
            "type": "string",
            "enum": ["fresh", "stale", "never"],
            "description": (
                "fresh: the region's last passed drill is at most fresh_days old; stale: older "
                "(the console shows it red); never: no drill ever passed on it."
            ),
        },
        "last_passed_drill": _nullable({"type": "integer", "description": "The drill's id."}),
        "last_passed_at": _nullable(DATE_TIME),
        "age_days": _nullable({"type": "number", "minimum": 0}),
        "fresh_days": {"type": "integer", "description": "CONTROLPLANE_DRILL_FRESH_DAYS."},
    }),
    "ReplicationVerdict": _object({
        "status": _ref("HealthStatus"),
        "reason": {"type": "string", "examples": ["lag 4.2 s > 2 s threshold from us-east-1"]},
        "lag_seconds": _nullable({
            "type": "number",
            "minimum": 0,
            "description": (
                "Replication lag into the region behind the verdict (the largest of the lags "
                "now, one per source region: its newest measurement; for a canary not "
                "replicated, the age of the oldest canary still not replicated, growing: a "
                "lower bound). Compared with CONTROLPLANE_LAG_DEGRADED_SECONDS. Null when "
                "nothing was measured recently (the reason says why)."
            ),
        }),
        "source_region": _nullable(REGION_CODE),
        "method": _nullable({"type": "string", "enum": list(LagMethod.values)}),
        "at": _nullable(DATE_TIME),
    }),

    "Lag": _object({
        "source_region": REGION_CODE,
        "receiving_region": REGION_CODE,
        "lag_seconds": _nullable({
            "type": "number",
            "minimum": 0,
            "description": (
                "The lag now: the pair's newest measurement; for a canary not replicated, "
                "the age of the pair's oldest canary still not replicated (it grows)."
            ),
        }),
        "method": {"type": "string", "enum": list(LagMethod.values)},
        "at": DATE_TIME,
        "replicated": {
            "type": "boolean",
            "description": "False: a canary was still not readable in the receiving region.",
        },
    }),
    "DriftFinding": _object({
        "region": REGION_CODE,
        "component_kind": {"type": "string", "enum": list(ComponentKind.values)},
        "identifier": {"type": "string", "description": "The component's ARN or id."},
        "what": {"type": "string", "examples": ["health check 1234 is inverted"]},
        "undo": _ref("DriftUndo"),
        "undo_text": {
            "type": "string",
            "examples": ["DeleteFunctionConcurrency FunctionName=orders-api (lambda in us-east-1)"],
        },
        "applicable": {
            "type": "boolean",
            "description": "Whether an operator can apply the undo from the console (else by hand).",
        },
    }),
    "DriftUndo": _object({
        "service": {"type": "string", "examples": ["lambda"]},
        "region": {"type": "string", "description": "Where the API is called.", "examples": ["us-east-1"]},
        "operation": {"type": "string", "examples": ["DeleteFunctionConcurrency"]},
        "parameters": {"type": "object", "examples": [{"FunctionName": "orders-api"}]},
    }),
    "ApplicationStatus": _object({
        "name": {"type": "string"},
        "architecture": {"type": "string", "enum": list(Architecture.values)},
        "status": _ref("HealthStatus"),
        "reason": {"type": "string"},
        "served_region": _nullable({
            "type": "string",
            "description": "Region that answered the latest global-endpoint probe.",
        }),
        "global_endpoint": _nullable(_ref("Verdict")),
        "regions": {"type": "array", "items": _ref("RegionStatus")},
        "lag": {
            "type": "array",
            "items": _ref("Lag"),
            "description": (
                "The current lag per (source, receiving) region pair: its newest measurement "
                "whatever the method, not older than CONTROLPLANE_LAG_STALE_SECONDS nor from "
                "before beat last started."
            ),
        },
        "drift": {
            "type": "array",
            "items": _ref("DriftFinding"),
            "description": (
                "Faults left on while no drill runs on the application, each with the "
                "call that undoes it."
            ),
        },
        "drills": {
            "type": "array",
            "items": _ref("ActiveDrill"),
            "description": (
                "Drills changing the application's live configuration now (ActiveDrill: "
                "experiments/openapi.py), with the region each targets."
            ),
        },
    }),
    "Status": _object({
        "generated_at": DATE_TIME,
        "applications": {"type": "array", "items": _ref("ApplicationStatus")},
    }),
    "InventoryComponent": _object(
        {
            "kind": {"type": "string", "enum": list(ComponentKind.values)},
            "identifier": {"type": "string"},
            "name": {"type": "string"},
            "config": {"type": "object"},
        },
        required=["kind", "identifier"],
    ),
    "InventoryStack": _object(
        {
            "region": REGION_CODE,
            "health_url": {"type": "string"},
            "in_rotation": {"type": "boolean"},
            "components": {"type": "array", "items": _ref("InventoryComponent")},
        },
        required=["region", "in_rotation"],
    ),
    "InventoryApplication": _object(
        {
            "name": {"type": "string"},
            "display_name": {"type": "string"},
            "architecture": {"type": "string", "enum": list(Architecture.values)},
            "global_endpoint": {"type": "string"},
            "global_endpoint_url": {"type": "string"},
            "owner_team": {"type": "string"},
            "description": {"type": "string"},
            "stacks": {"type": "array", "items": _ref("InventoryStack")},
        },
        required=["name", "architecture"],
    ),
    "InventoryRegion": _object(
        {
            "code": REGION_CODE,
            "account_id": {"type": "string"},
            "role_arn": {
                "type": "string",
                "description": "The role the control plane assumes in the account; admins only "
                "(left out for other roles), as in the console's export.",
            },
            "external_id": {
                "type": "string",
                "description": "The external id it assumes the role with; admins only.",
            },
        },
        required=["code"],
    ),
    "Inventory": _object({
        "regions": {"type": "array", "items": _ref("InventoryRegion")},
        "applications": {"type": "array", "items": _ref("InventoryApplication")},
    }),
    "Error": _object(
        {"error": {"type": "string"}},
        additional=True,
    ),
}


ERRORS = {
    "401": {
        **_json("Error", "No valid token: send `Authorization: Bearer TOKEN`."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _json("Error", "The token's user has no role that allows this."),
    "405": _json("Error", "Method not allowed."),
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Failover Control Plane API",
        "version": "1.0.0",
        "description": (
            "API of the multi-region failover control plane: status, inventory, scenarios "
            "and drills. Authenticate with a "
            "personal token (`python manage.py create_token USERNAME`) sent as "
            "`Authorization: Bearer TOKEN`."
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerToken": []}],
    "paths": {
        "/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "Computed status of every application and region",
                "description": "Requires the regions.view_stack permission (every role).",
                "responses": {"200": _json("Status", "The status of every application."), **ERRORS},
            }
        },
        "/inventory": {
            "get": {
                "operationId": "getInventory",
                "summary": "The whole inventory, in the import format",
                "description": (
                    "Requires the regions.view_stack permission (every role). The regions' "
                    "`role_arn` and `external_id` are only in an admin's answer "
                    "(regions.import_inventory, as the console's export)."
                ),
                "responses": {"200": _json("Inventory", "Regions and applications."), **ERRORS},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "405": ERRORS["405"],
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal API token (cp_...), stored hashed on the server.",
            }
        },
        "schemas": SCHEMAS,
    },
}

# The drills' endpoints are documented beside their views (experiments/openapi.py).
DOCUMENT["paths"] |= experiments_openapi.PATHS
DOCUMENT["components"]["schemas"] |= experiments_openapi.SCHEMAS
DOCUMENT["paths"] |= notifications_openapi.PATHS
DOCUMENT["components"]["schemas"] |= notifications_openapi.SCHEMAS


@api_view(["GET"], public=True)
def openapi_json(request):
    """GET /api/v1/openapi.json: public, it describes the API's shape only."""
    return JsonResponse(DOCUMENT, json_dumps_params={"ensure_ascii": False})
