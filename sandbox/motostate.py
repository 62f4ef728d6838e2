"""Reading moto's in-process state (the sandbox runs moto in the same process).

The data plane (app servers, health checkers, global endpoints, replicator) reads the
configuration the control plane wrote through the AWS APIs straight from moto's
backends: same truth, no HTTP round trip per request. Every helper here is read-only
except the DynamoDB item helpers, which are the "Lambda function" touching its table,
and `repair_soa_records`, which mends a record moto stores wrongly.
"""

import json
import threading
from decimal import Decimal

from moto.backends import get_backend

# moto's backends are plain dicts; its own server serialises nothing either. We take
# this lock around our multi-step reads (scans) so a concurrent write does not make a
# dict change size under us.
DATA_LOCK = threading.RLock()


def backend(service, account_id, region):
    return get_backend(service)[account_id][region]


def global_backend(service, account_id):
    return get_backend(service)[account_id]["global"]


# --- DynamoDB attribute values <-> plain JSON --------------------------------------------
def to_ddb(value):
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: to_ddb(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_ddb(v) for v in value]}
    return {"S": str(value)}


def from_ddb(attr):
    ((kind, value),) = attr.items()
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "M":
        return {k: from_ddb(v) for k, v in value.items()}
    if kind == "L":
        return [from_ddb(v) for v in value]
    if kind == "NULL":
        return None
    return value  # S, BOOL, B, SS, NS as they are


def item_to_json(item):
    return {k: from_ddb(v) for k, v in item.to_json()["Attributes"].items()}


# --- reads of configuration the control plane changes ------------------------------------
def ssm_value(account_id, region, name):
    param = backend("ssm", account_id, region).get_parameter(name)
    return None if param is None else param.value


def fault_config(account_id, region, name):
    raw = ssm_value(account_id, region, name)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}  # a malformed flag is ignored, as chaos_lambda does


def reserved_concurrency(account_id, region, function_name):
    fn = backend("lambda", account_id, region).get_function(function_name)
    value = fn.reserved_concurrency
    return None if value is None else int(value)


def stage_throttled(account_id, region, rest_api_id, stage_name, resource_path, method):
    """True when the stage's (or this method's) throttling rate limit is 0."""
    stage = backend("apigateway", account_id, region).get_stage(rest_api_id, stage_name)
    settings = stage.method_settings or {}
    # Keys are "resource/METHOD" with "/" in the path escaped as "~1"; "*/*" is the stage.
    path_key = resource_path.strip("/").replace("/", "~1")
    for key in ("*/*", f"{path_key}/*", f"{path_key}/{method}", f"~1{path_key}/{method}", f"~1{path_key}/*"):
        limit = settings.get(key, {}).get("throttlingRateLimit")
        if limit is not None and float(limit) <= 0:
            return True
    return False


def listener_fixed_response(account_id, region, listener_arn):
    """The ALB listener's fixed response (status, content type, body), or None."""
    elb = backend("elbv2", account_id, region)
    listeners = elb.describe_listeners(None, [listener_arn])
    actions = listeners[0].default_actions if listeners else []
    for action in actions:
        if action.type == "fixed-response":
            cfg = action.data.get("FixedResponseConfig", {})
            return (
                int(cfg.get("StatusCode", 503)),
                cfg.get("ContentType", "text/plain"),
                cfg.get("MessageBody", ""),
            )
    return None


def table_tags(account_id, region, table_arn):
    ddb = backend("dynamodb", account_id, region)
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(table_arn)}


def repair_soa_records(account_id):
    """Give every hosted zone's SOA record its value as text, as Route 53 does.

    moto 5.2 stores the SOA record it creates with a zone as {"Value": "..."} where its
    other records hold the text, so ListResourceRecordSets shows the dict's repr as the
    value. Idempotent: run after anything that creates a zone."""
    for zone in global_backend("route53", account_id).zones.values():
        for rrset in zone.rrsets:
            if rrset.type == "SOA":
                rrset.records = [r["Value"] if isinstance(r, dict) else r for r in rrset.records]
