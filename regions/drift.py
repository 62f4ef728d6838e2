"""Drift: a fault left on while no drill is running on that application.

`find_drift()` is pure: the inventory's last-seen configuration (Component.config) and
the stored AWS observations in, findings out. The configuration is kept fresh by
`refresh_live_config()` (beat, every CONTROLPLANE_LIVE_CONFIG_INTERVAL seconds), which
re-reads each component through the same reads as discovery (a `regions.discovery.Reader`
and the service modules of regions/discovery/) and stamps `Component.config_read_at`
(updating `config` where it changed; no audit event: the config is an observation, not
an intent).

Not drift: the faults of an application whose drill is live (queued, running,
reverting), and a fault a drill has reverted since its evidence was read (the
configuration read, or the observation made, before the revert: `DeliberateChanges`
from the drills app, registered with regions.monitoring.set_deliberate_changes).

regions.drift_events.report_drift() (the same beat task, after the refresh) tells the
notification channels of each finding once, when it appears.

Each finding carries its undo as data (`Undo`: service, region, operation, parameters),
shown as one readable line; `apply_undo()` makes that call through controlplane.aws,
audited (the stack page's "Apply undo", regions.views.apply_drift_undo).

| component | fault | undo |
|---|---|---|
| route53_health_check | Inverted / Disabled | UpdateHealthCheck Inverted=false / Disabled=false |
| ga_endpoint_group | TrafficDialPercentage 0, endpoint Weight 0 | UpdateEndpointGroup dial 100 / Weight 128 |
| lambda_function | reserved concurrency 0 | DeleteFunctionConcurrency |
| ssm_fault_parameter | `is_enabled: true` | PutParameter with is_enabled=false |
| api_gateway_stage | a throttling rate limit of 0 | UpdateStage removing that method setting |
| alb_listener | default action fixed-response | ModifyListener back to forward (its target group) |
| arc_routing_control | state Off (observation) | UpdateRoutingControlState On |
| dynamodb_replica | replication paused (observation) | see below |

Replication paused: in the sandbox, the receiving table carries the tag
`sandbox:replication-paused=true` (undo: UntagResource); on AWS, FIS's
`aws:dynamodb:global-table-pause-replication` adds a resource-policy statement denying
replication to the receiving replica, which DescribeTable shows as
REPLICATION_NOT_AUTHORIZED (undo, by hand: remove that statement from the table's
resource policy; the console does not apply it).
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from controlplane.aws import GLOBAL_SERVICE_REGIONS, SANDBOX_PAUSE_TAG
from controlplane.jsonvalues import canonical_json, json_safe
from regions import discovery
from regions.discovery import apigateway, awslambda, dynamodb, elbv2, globalaccelerator, route53, ssm
from regions.models import Component, ComponentKind, ObservationKind


@dataclass(frozen=True, eq=True)
class Undo:
    """The call that undoes a finding's fault: `operation` is the API name
    (`UpdateHealthCheck`), `parameters` its request parameters as the API and boto3 spell
    them, `region` where the API is called (Route 53 in us-east-1, Global Accelerator
    in us-west-2). `endpoint_urls`: the ARC cluster endpoints, tried in order. `manual`
    says why the console cannot make the call itself ("": it can)."""

    service: str
    region: str
    operation: str
    parameters: dict = field(hash=False)
    endpoint_urls: tuple = ()
    manual: str = ""

    def __str__(self):
        params = " ".join(
            f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
            for key, value in self.parameters.items()
        )
        where = f"{self.service} in {self.region}"
        return f"{self.operation} {params} ({where}{'; ' + self.manual if self.manual else ''})"

    def __hash__(self):  # the overview escapes each value once, by value
        return hash(str(self))

    def as_dict(self):
        return {
            "service": self.service,
            "region": self.region,
            "operation": self.operation,
            "parameters": json_safe(self.parameters),
        }

    @property
    def key(self):
        """A short fingerprint: what the stack page's form names the undo by."""
        return hashlib.sha256(canonical_json(self.as_dict()).encode()).hexdigest()[:16]


class Finding(NamedTuple):
    component: int  # Component pk
    application_id: int
    kind: str  # ComponentKind
    region: str
    identifier: str
    what: str
    undo: Undo
    evidence_at: object = None  # when the configuration or observation was read (None: unknown)

    def as_dict(self):
        return {
            "region": self.region,
            "component_kind": self.kind,
            "identifier": self.identifier,
            "what": self.what,
            "undo": self.undo.as_dict(),
            "undo_text": str(self.undo),
            "applicable": not self.undo.manual,
        }


ROUTE53_REGION = GLOBAL_SERVICE_REGIONS["route53"]
GA_REGION = GLOBAL_SERVICE_REGIONS["globalaccelerator"]
DEFAULT_WEIGHT = 128  # Global Accelerator's default endpoint weight


def _float(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _ga_weight_undo(c, cfg, zero):
    """UpdateEndpointGroup with every endpoint of the group as it is, the one of weight 0
    (`zero`) back to the default weight (EndpointConfigurations replaces the whole list)."""
    endpoints = []
    for endpoint in cfg.get("EndpointDescriptions", []):
        entry = {"EndpointId": endpoint.get("EndpointId")}
        weight = endpoint.get("Weight")
        entry["Weight"] = weight if weight is not None and endpoint is not zero else DEFAULT_WEIGHT
        if endpoint.get("ClientIPPreservationEnabled") is not None:
            entry["ClientIPPreservationEnabled"] = endpoint["ClientIPPreservationEnabled"]
        endpoints.append(entry)
    return Undo(
        "globalaccelerator", GA_REGION, "UpdateEndpointGroup",
        {"EndpointGroupArn": c.identifier, "EndpointConfigurations": endpoints},
    )


def _listener_undo(c, cfg):
    groups = cfg.get("TargetGroupArns") or []
    params = {"ListenerArn": c.identifier, "DefaultActions": [
        {"Type": "forward", "TargetGroupArn": groups[0] if len(groups) == 1 else "<target group>"}
    ]}
    manual = "" if len(groups) == 1 else (
        f"the load balancer has {len(groups)} target groups: choose the one to forward to"
    )
    return Undo("elbv2", c.region, "ModifyListener", params, manual=manual)


def _arc_undo(c):
    endpoints = c.config.get("ClusterEndpoints") or []
    params = {"RoutingControlArn": c.identifier, "RoutingControlState": "On"}
    if not endpoints:
        return Undo("route53-recovery-cluster", "us-west-2", "UpdateRoutingControlState", params,
                    manual="no cluster endpoints in the inventory (run discovery)")
    return Undo("route53-recovery-cluster", endpoints[0].get("Region") or "us-west-2",
                "UpdateRoutingControlState", params,
                endpoint_urls=tuple(e.get("Endpoint") for e in endpoints if e.get("Endpoint")))


def _replication_undo(c, obs):
    if obs.state == "paused":  # the sandbox's pause tag
        return Undo("dynamodb", c.region, "UntagResource",
                    {"ResourceArn": c.identifier, "TagKeys": [SANDBOX_PAUSE_TAG]})
    return Undo("dynamodb", c.region, "PutResourcePolicy", {"ResourceArn": c.identifier},
                manual="remove the statement denying replication (FIS's pause) from the table's "
                       "resource policy, keeping the others")


def _component_findings(c, now, stale):
    cfg = c.config or {}
    out = []

    def add(what, undo, evidence_at=c.config_read_at):
        out.append(Finding(c.pk, c.application_id, c.kind, c.region, c.identifier, what, undo, evidence_at))

    if c.kind == ComponentKind.ROUTE53_HEALTH_CHECK:
        for flag, words in (("Inverted", "inverted"), ("Disabled", "disabled")):
            if cfg.get(flag):
                params = {"HealthCheckId": c.identifier, flag: False}
                add(f"health check {c.identifier} is {words}",
                    Undo("route53", ROUTE53_REGION, "UpdateHealthCheck", params))
    elif c.kind == ComponentKind.GA_ENDPOINT_GROUP:
        dial = _float(cfg.get("TrafficDialPercentage"), 100.0)
        if dial <= 0:
            add(
                f"traffic dial of the {c.region} endpoint group is 0 %",
                Undo("globalaccelerator", GA_REGION, "UpdateEndpointGroup",
                     {"EndpointGroupArn": c.identifier, "TrafficDialPercentage": 100.0}),
            )
        for endpoint in cfg.get("EndpointDescriptions", []):
            if endpoint.get("Weight") is not None and _float(endpoint["Weight"], 1) <= 0:
                name = str(endpoint.get("EndpointId", "")).split("/")[-2:]
                add(f"endpoint {'/'.join(name)} has weight 0", _ga_weight_undo(c, cfg, endpoint))
    elif c.kind == ComponentKind.LAMBDA_FUNCTION:
        if cfg.get("ReservedConcurrentExecutions") == 0:
            name = cfg.get("FunctionName") or c.name
            add(f"Lambda {name} has reserved concurrency 0",
                Undo("lambda", c.region, "DeleteFunctionConcurrency", {"FunctionName": name}))
    elif c.kind == ComponentKind.SSM_FAULT_PARAMETER:
        value = cfg.get("Value")
        if isinstance(value, dict) and value.get("is_enabled") is True:
            fault = value.get("fault_type", "?")
            add(
                f"failure injection is enabled in {c.identifier} ({fault})",
                Undo("ssm", c.region, "PutParameter", {
                    "Name": c.identifier, "Value": json.dumps({**value, "is_enabled": False}, sort_keys=True),
                    "Type": cfg.get("Type") or "String", "Overwrite": True,
                }),
            )
    elif c.kind == ComponentKind.API_GATEWAY_STAGE:
        for key, method in sorted((cfg.get("methodSettings") or {}).items()):
            if _float(method.get("throttlingRateLimit"), 1) <= 0:
                add(
                    f"stage {c.name} is throttled (rate limit 0 on {key})",
                    Undo("apigateway", c.region, "UpdateStage", {
                        "restApiId": cfg.get("restApiId"), "stageName": cfg.get("stageName"),
                        # the value before the fault is not known: remove the override, as
                        # the drill's own inverse does when there was none before it
                        "patchOperations": [{"op": "remove", "path": f"/{key}"}],
                    }),
                )
    elif c.kind == ComponentKind.ALB_LISTENER:
        for action in cfg.get("DefaultActions") or []:
            if action.get("Type") == "fixed-response":
                code = (action.get("FixedResponseConfig") or {}).get("StatusCode", "?")
                add(f"listener {c.name} answers a fixed {code}", _listener_undo(c, cfg))
    elif c.kind == ComponentKind.ARC_ROUTING_CONTROL:
        obs = c.observations.get(ObservationKind.ROUTING_CONTROL_STATE)
        if obs is not None and obs.state == "Off" and not _stale(obs, now, stale):
            add(f"routing control {c.name} is Off", _arc_undo(c), obs.observed_at)
    elif c.kind == ComponentKind.DYNAMODB_REPLICA:
        obs = c.observations.get(ObservationKind.REPLICA_STATUS)
        paused = obs is not None and obs.state in ("paused", "REPLICATION_NOT_AUTHORIZED")
        if paused and not _stale(obs, now, stale):
            what = f"replication into {c.name} in {c.region} is paused"
            add(what, _replication_undo(c, obs), obs.observed_at)
    return out


def _stale(obs, now, stale):
    return stale is not None and now is not None and now - obs.observed_at > stale


def _reverted_since_read(finding, reverted):
    """A drill reverted this component's fault after the finding's evidence was read
    (or when it was read is unknown): that evidence shows what the drill has undone."""
    at = reverted.get(finding.component)
    return at is not None and (finding.evidence_at is None or finding.evidence_at <= at)


def find_drift(components, deliberate=None, *, now=None, stale=None):
    """Findings for ComponentView tuples (regions.routing) whose application has no live
    drill and whose fault no drill has reverted since it was read (`deliberate`: a
    regions.monitoring.DeliberateChanges, or None: nothing deliberate). Pure."""
    live = deliberate.live if deliberate is not None else frozenset()
    reverted = deliberate.reverted if deliberate is not None else {}
    findings = []
    for c in components:
        if c.application_id in live:
            continue
        found = _component_findings(c, now, stale)
        findings.extend(f for f in found if not _reverted_since_read(f, reverted))
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
    """Re-read the components that can carry a fault, store their configuration where it
    changed and stamp when each was read (`config_read_at`: when the reads began, never
    later than the read).
    Returns (components updated, warnings)."""
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

    updated, read = 0, []
    for c in components:
        found = reader.found.get((c.stack.application.name, c.stack.region.code, c.kind, c.identifier))
        if found is None:
            continue
        read.append(c.pk)
        if found.config != c.config:
            updated += Component.objects.filter(pk=c.pk).update(config=found.config)
    # When each configuration was read: drift compares it with the drills' reverts.
    Component.objects.filter(pk__in=read).update(config_read_at=reader.started_at)
    return updated, reader.warnings

