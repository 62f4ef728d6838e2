"""Drift: a fault left on while no drill is running on that application.

`find_drift()` is pure: the inventory's last-seen configuration (Component.config) and
the stored AWS observations in, findings out. The configuration is kept fresh by
`refresh_live_config()` (beat, every CONTROLPLANE_LIVE_CONFIG_INTERVAL seconds), which
re-reads each component through the same reads as discovery (a `regions.discovery.Reader`
and the service modules of regions/discovery/) and updates `Component.config` where it
changed (no audit event: the config is an observation, not an intent).

Faults recognised (each with its exact inverse):

| component | fault | undo |
|---|---|---|
| route53_health_check | Inverted / Disabled | UpdateHealthCheck Inverted=false / Disabled=false |
| ga_endpoint_group | TrafficDialPercentage 0, endpoint Weight 0 | UpdateEndpointGroup dial 100 / Weight 128 |
| lambda_function | reserved concurrency 0 | DeleteFunctionConcurrency |
| ssm_fault_parameter | `is_enabled: true` | PutParameter with is_enabled=false |
| api_gateway_stage | a throttling rate limit of 0 | UpdateStage rateLimit > 0 |
| alb_listener | default action fixed-response | ModifyListener back to forward |
| arc_routing_control | state Off (observation) | UpdateRoutingControlState On |
| dynamodb_replica | replication paused (observation) | see below |

Replication paused: in the sandbox, the receiving table carries the tag
`sandbox:replication-paused=true` (undo: UntagResource); on AWS, FIS's
`aws:dynamodb:global-table-pause-replication` adds a resource-policy statement denying
replication to the receiving replica, which DescribeTable shows as
REPLICATION_NOT_AUTHORIZED (undo: remove that statement from the table's resource policy).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from controlplane.aws import SANDBOX_PAUSE_TAG
from regions import discovery
from regions.discovery import apigateway, awslambda, dynamodb, elbv2, globalaccelerator, route53, ssm
from regions.models import Component, ComponentKind, ObservationKind

log = logging.getLogger(__name__)


class Finding(NamedTuple):
    component: int  # Component pk
    application_id: int
    kind: str  # ComponentKind
    region: str
    identifier: str
    what: str
    undo: str

    def as_dict(self):
        return {
            "region": self.region,
            "component_kind": self.kind,
            "identifier": self.identifier,
            "what": self.what,
            "undo": self.undo,
        }


def _float(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _component_findings(c, now, stale):
    cfg = c.config or {}
    out = []

    def add(what, undo):
        out.append(Finding(c.pk, c.application_id, c.kind, c.region, c.identifier, what, undo))

    if c.kind == ComponentKind.ROUTE53_HEALTH_CHECK:
        if cfg.get("Inverted"):
            add(f"health check {c.identifier} is inverted", "UpdateHealthCheck Inverted=false")
        if cfg.get("Disabled"):
            add(f"health check {c.identifier} is disabled", "UpdateHealthCheck Disabled=false")
    elif c.kind == ComponentKind.GA_ENDPOINT_GROUP:
        dial = _float(cfg.get("TrafficDialPercentage"), 100.0)
        if dial <= 0:
            add(
                f"traffic dial of the {c.region} endpoint group is 0 %",
                "UpdateEndpointGroup TrafficDialPercentage=100",
            )
        for endpoint in cfg.get("EndpointDescriptions", []):
            if endpoint.get("Weight") is not None and _float(endpoint["Weight"], 1) <= 0:
                name = str(endpoint.get("EndpointId", "")).split("/")[-2:]
                add(
                    f"endpoint {'/'.join(name)} has weight 0",
                    "UpdateEndpointGroup EndpointConfigurations="
                    f"[{{EndpointId: {endpoint.get('EndpointId')}, Weight: 128}}]",
                )
    elif c.kind == ComponentKind.LAMBDA_FUNCTION:
        if cfg.get("ReservedConcurrentExecutions") == 0:
            name = cfg.get("FunctionName") or c.name
            add(f"Lambda {name} has reserved concurrency 0", f"DeleteFunctionConcurrency FunctionName={name}")
    elif c.kind == ComponentKind.SSM_FAULT_PARAMETER:
        value = cfg.get("Value")
        if isinstance(value, dict) and value.get("is_enabled") is True:
            fault = value.get("fault_type", "?")
            add(
                f"failure injection is enabled in {c.identifier} ({fault})",
                f"PutParameter Name={c.identifier} Value={{..., \"is_enabled\": false}}",
            )
    elif c.kind == ComponentKind.API_GATEWAY_STAGE:
        for key, method in sorted((cfg.get("methodSettings") or {}).items()):
            if _float(method.get("throttlingRateLimit"), 1) <= 0:
                add(
                    f"stage {c.name} is throttled (rate limit 0 on {key})",
                    f"UpdateStage patch replace /{key}/throttling/rateLimit with a limit above 0",
                )
    elif c.kind == ComponentKind.ALB_LISTENER:
        for action in cfg.get("DefaultActions") or []:
            if action.get("Type") == "fixed-response":
                code = (action.get("FixedResponseConfig") or {}).get("StatusCode", "?")
                add(
                    f"listener {c.name} answers a fixed {code}",
                    "ModifyListener DefaultActions=[{Type: forward, TargetGroupArn: <target group>}]",
                )
    elif c.kind == ComponentKind.ARC_ROUTING_CONTROL:
        obs = c.observations.get(ObservationKind.ROUTING_CONTROL_STATE)
        if obs is not None and obs.state == "Off" and not _stale(obs, now, stale):
            add(f"routing control {c.name} is Off", "UpdateRoutingControlState RoutingControlState=On")
    elif c.kind == ComponentKind.DYNAMODB_REPLICA:
        obs = c.observations.get(ObservationKind.REPLICA_STATUS)
        paused = obs is not None and obs.state in ("paused", "REPLICATION_NOT_AUTHORIZED")
        if paused and not _stale(obs, now, stale):
            add(
                f"replication into {c.name} in {c.region} is paused",
                f"UntagResource TagKeys=[{SANDBOX_PAUSE_TAG}] (sandbox); on AWS remove the "
                "resource-policy statement denying replication",
            )
    return out


def _stale(obs, now, stale):
    return stale is not None and now is not None and now - obs.observed_at > stale


def find_drift(components, running=frozenset(), *, now=None, stale=None):
    """Findings for ComponentView tuples (regions.routing) whose application is not in
    `running` (the applications with a drill running). Pure."""
    findings = []
    for c in components:
        if c.application_id in running:
            continue
        findings.extend(_component_findings(c, now, stale))
    findings.sort(key=lambda f: (f.region, f.kind, f.identifier, f.what))
    return findings


# --- refreshing the live configuration ---------------------------------------------

LIVE_KINDS = (
    ComponentKind.LAMBDA_FUNCTION,
    ComponentKind.SSM_FAULT_PARAMETER,
    ComponentKind.API_GATEWAY_STAGE,
    ComponentKind.ALB_LISTENER,
    ComponentKind.DYNAMODB_REPLICA,
    ComponentKind.ROUTE53_HEALTH_CHECK,
    ComponentKind.ROUTE53_RECORD,
    ComponentKind.GA_ENDPOINT_GROUP,
)


def refresh_live_config(*, application_ids=None):
    """Re-read the components that can carry a fault and store their configuration
    where it changed. Returns (components updated, warnings)."""
    components = list(
        Component.objects.filter(kind__in=LIVE_KINDS).select_related("stack__region", "stack__application")
    )
    if application_ids is not None:
        components = [c for c in components if c.stack.application_id in application_ids]
    if not components:
        return 0, []
    regions = {c.stack.region.code: c.stack.region for c in components}
    reader = discovery.Reader(regions)

    jobs = []
    load_balancers = set()
    for c in components:
        region, app = c.stack.region, c.stack.application.name
        if c.kind == ComponentKind.LAMBDA_FUNCTION:
            jobs.append((awslambda.read_function, (reader, region, app, c.identifier)))
        elif c.kind == ComponentKind.SSM_FAULT_PARAMETER:
            jobs.append((ssm.read_parameter, (reader, region, app, c.identifier)))
        elif c.kind == ComponentKind.API_GATEWAY_STAGE and c.config.get("restApiId"):
            api_name = c.name.rsplit("/", 1)[0] if "/" in c.name else None
            args = (reader, region, app, c.config["restApiId"], c.config.get("stageName"), api_name)
            jobs.append((apigateway.read_stage, args))
        elif c.kind == ComponentKind.ALB_LISTENER and c.config.get("LoadBalancerArn"):
            key = (region.code, app, c.config["LoadBalancerArn"])
            if key not in load_balancers:
                load_balancers.add(key)
                jobs.append((elbv2.read_load_balancer, (reader, region, app, c.config["LoadBalancerArn"])))
        elif c.kind == ComponentKind.DYNAMODB_REPLICA:
            jobs.append((dynamodb.read_table, (reader, region, app, c.identifier, c.name)))
    kinds = {c.kind for c in components}
    seen = set()
    for region in regions.values():
        key = (region.role_arn, region.external_id)
        if key in seen:
            continue
        seen.add(key)
        if kinds & {ComponentKind.ROUTE53_HEALTH_CHECK, ComponentKind.ROUTE53_RECORD}:
            jobs.append((route53.scan, (reader, region)))
        if ComponentKind.GA_ENDPOINT_GROUP in kinds:
            jobs.append((globalaccelerator.scan, (reader, region)))
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda job: job[0](*job[1]), jobs))

    updated = 0
    for c in components:
        found = reader.found.get((c.stack.application.name, c.stack.region.code, c.kind, c.identifier))
        if found is not None and found.config != c.config:
            updated += Component.objects.filter(pk=c.pk).update(config=found.config)
    return updated, reader.warnings
