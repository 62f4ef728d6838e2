"""OpenAPI 3.1 description of the channels API (notifications.api), merged into the
served document by controlplane/openapi.py as the drills' is."""

from controlplane.events import EventKind
from controlplane.openapi_schema import json_body as _body
from controlplane.openapi_schema import json_response as _json
from controlplane.openapi_schema import obj as _object
from controlplane.openapi_schema import ref as _ref
from notifications.models import ChannelKind

EVENTS = {
    "oneOf": [
        {"type": "string", "const": "all"},
        {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EventKind.values)}},
    ],
    "description": 'The event kinds the channel receives, or "all".',
}
TARGET = {
    "type": "string",
    "maxLength": 2000,
    "description": (
        "webhook: an http(s) URL (stored encrypted, shown back masked: scheme and host) or "
        "env:NAME (the URL is read from that environment variable at delivery); sns: a topic "
        "ARN; email: empty (email goes to the users who opted in)."
    ),
}
ERRORS = {
    "401": _json("Error", "No valid token."),
    "403": _json("Error", "Only admins manage channels (notifications.manage_channels)."),
    "405": _json("Error", "Method not allowed."),
}

SCHEMAS = {
    "Channel": _object({
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(ChannelKind.values)},
        "target": {"type": "string", "description": "Masked for a webhook URL: never the URL itself."},
        "events": EVENTS,
        "slack": {"type": "boolean"},
        "enabled": {"type": "boolean"},
    }),
    "ChannelList": _object({"channels": {"type": "array", "items": _ref("Channel")}}),
    "ChannelRequest": _object(
        {
            "kind": {"type": "string", "enum": list(ChannelKind.values)},
            "target": TARGET,
            "events": EVENTS,
            "name": {"type": "string", "maxLength": 100, "description": "Defaults to the kind and a number."},
            "slack": {"type": "boolean", "description": "webhook only: a Slack incoming webhook's body."},
        },
        required=["kind", "events"],
    ),
}

PATHS = {
    "/channels": {
        "get": {
            "operationId": "listChannels",
            "summary": "Every notification channel (admins only)",
            "responses": {"200": _json("ChannelList", "The channels, targets masked."), **ERRORS},
        },
        "post": {
            "operationId": "createChannel",
            "summary": "Make a notification channel (admins only; audited)",
            "requestBody": _body("ChannelRequest"),
            "responses": {
                "201": _json("Channel", "The channel, its target masked."),
                "400": _json("ValidationError", "A message per wrong field; nothing was made."),
                **ERRORS,
            },
        },
    },
    "/channels/{pk}": {
        "delete": {
            "operationId": "deleteChannel",
            "summary": "Delete a notification channel and its deliveries (admins only; audited)",
            "parameters": [{"name": "pk", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {
                "204": {"description": "Deleted."},
                "404": _json("Error", "No such channel."),
                **ERRORS,
            },
        },
    },
}
