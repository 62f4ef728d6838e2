"""The fault library: one class per fault kind, registered by slug.

Every fault is one literal AWS call on one target (a `Target`: a component of the
inventory plus the scenario's parameters, and the credentials of its region) with an
exact inverse:

- `plan(target)` -> [Call]: the call and its inverse, as the approver sees them. The
  inverse carries the value read *now* (`read_current`).
- `read_current(target)`: the value the fault will overwrite (JSON-safe).
- `prepare_inject(target, idempotency_key)` -> (previous, call): reads the current
  value again, just before the call, and builds the call whose inverse restores it.
- `inverse_after(call, response)`: the inverse once the call answered (FIS: the
  experiment to stop is known only then).
- `replay_inverse(target, inverse)`: makes the inverse call (restoring the value read
  before injecting, never a default) and returns the Call made, or None when there was
  nothing to undo. Replaying an inverse twice sets the same value twice.
- `verify_reverted(target, previous, inverse)`: reads again and compares with the
  value read before injecting.

The library plans, reads, calls and inverts; it touches no database: what it needs from
the inventory (components, their region's role) is passed in. The compensation ledger
is `experiments.ledger`'s (`inject`, `revert`): the row is written *before* the call, so
a worker killed between the two leaves a row the reaper can act on, and each change of
the row's state commits with its audit event. Every AWS call goes through
`controlplane.aws`.
"""

import copy
import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from django.db.models import TextChoices

from controlplane import aws
from controlplane.aws import SANDBOX_PAUSE_TAG  # the sandbox's pause convention (docs/SANDBOX.md)
from controlplane.jsonvalues import canonical_json, json_safe
from regions.kinds import ComponentKind

# The home regions of the global services' APIs (Route 53, Global Accelerator).
ROUTE53_REGION = aws.GLOBAL_SERVICE_REGIONS["route53"]
GA_REGION = aws.GLOBAL_SERVICE_REGIONS["globalaccelerator"]
FIS_PAUSE_ACTION = "aws:dynamodb:global-table-pause-replication"


class FaultKind(TextChoices):
    # value = the registry slug of the fault class (REGISTRY below); Scenario.fault_kind
    HEALTH_CHECK_INVERT = "route53_health_check_invert", "Invert a Route 53 health check"
    GA_TRAFFIC_DIAL = "ga_traffic_dial", "Global Accelerator traffic dial"
    LAMBDA_CONCURRENCY_ZERO = "lambda_reserved_concurrency", "Lambda reserved concurrency"
    SSM_FAILURE_FLAG = "ssm_failure_flag", "SSM failure-injection flag"
    API_STAGE_THROTTLE = "api_stage_throttle", "API Gateway stage throttle"
    ALB_FIXED_RESPONSE = "alb_fixed_response", "ALB listener fixed response"
    ARC_ROUTING_CONTROL_OFF = "arc_routing_control_off", "ARC routing control Off"
    PAUSE_REPLICATION = "pause_replication", "Pause replication to a replica"
    FIS_EXPERIMENT = "fis_experiment", "Start an AWS FIS experiment template"


class FaultError(Exception):
    """A fault cannot be planned or injected on this target (not retried)."""


@dataclass(frozen=True)
class Call:
    """One literal AWS API call. `operation` is the API name (`UpdateHealthCheck`),
    `params` its request parameters as the API (and boto3) spell them. `endpoint_url`
    only for services reached at their own endpoints (ARC cluster endpoints)."""

    service: str
    region: str
    operation: str
    params: dict
    inverse: "Call | None" = None
    endpoint_urls: tuple = ()

    def as_dict(self):
        data = {
            "service": self.service,
            "region": self.region,
            "operation": self.operation,
            "params": json_safe(self.params),
        }
        if self.endpoint_urls:
            data["endpoint_urls"] = list(self.endpoint_urls)
        if self.inverse is not None:
            data["inverse"] = self.inverse.as_dict()
        return data

    @classmethod
    def from_dict(cls, data):
        if data is None:
            return None
        return cls(
            service=data["service"],
            region=data["region"],
            operation=data["operation"],
            params=data.get("params") or {},
            inverse=cls.from_dict(data.get("inverse")),
            endpoint_urls=tuple(data.get("endpoint_urls") or ()),
        )

    def __str__(self):
        return f"{self.service}:{self.operation} in {self.region} {json.dumps(self.params, sort_keys=True)}"


@dataclass(frozen=True)
class Credentials:
    """Whom AWS is called as for a target: its region's role and external id (both
    empty: the default credentials, as for a region not in the inventory)."""

    role_arn: str = ""
    external_id: str = ""


@dataclass
class Target:
    """One component to break, with the scenario's parameters. JSON-serialisable
    (`as_dict`/`from_dict`) so the ledger can rebuild it without the inventory; the
    credentials are not part of it (the ledger passes them in: `with_credentials`)."""

    kind: str
    identifier: str
    name: str
    region: str  # the stack's region code (the credentials are that region's)
    application: str
    config: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    component_id: int | None = None
    credentials: Credentials = field(default_factory=Credentials, compare=False, repr=False)

    @classmethod
    def from_component(cls, component, params=None):
        stack = component.stack
        return cls(
            kind=component.kind,
            identifier=component.identifier,
            name=component.name,
            region=stack.region.code,
            application=stack.application.name,
            config=copy.deepcopy(component.config or {}),
            params=dict(params or {}),
            component_id=component.pk,
            credentials=Credentials(stack.region.role_arn, stack.region.external_id),
        )

    def as_dict(self):
        return json_safe({key: value for key, value in asdict(self).items() if key != "credentials"})

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def with_credentials(self, credentials):
        return replace(self, credentials=credentials)

    def identity(self):
        """What the plan hash binds to: the target, not its last-seen config."""
        return {"kind": self.kind, "identifier": self.identifier, "region": self.region}


def plan_hash(plan):
    """SHA-256 of the canonical JSON of a plan (see `build_plan`)."""
    return hashlib.sha256(canonical_json(plan).encode()).hexdigest()


def error_code(exc):
    """The AWS error code of a botocore error ("" for a connection error and the like)."""
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "") or ""


def target_gone(exc):
    """True when an AWS error says the resource itself does not exist (NoSuchHealthCheck,
    ResourceNotFoundException, ParameterNotFound, EndpointGroupNotFoundException,
    ListenerNotFound, NotFoundException ...): an inverse call on it can never succeed."""
    code = error_code(exc)
    return code.startswith("NoSuch") or "NotFound" in code


def build_plan(scenario_slug, fault_kind, parameters, targets, calls, max_duration):
    """The plan an approver approves: the literal calls with their inverses, the scenario
    parameters, the target identifiers and the max duration."""
    return json_safe(
        {
            "scenario": scenario_slug,
            "fault_kind": fault_kind,
            "parameters": parameters,
            "targets": [t.identity() for t in targets],
            "calls": [c.as_dict() for c in calls],
            "max_duration_seconds": int(max_duration.total_seconds()),
        }
    )


# --- making calls -------------------------------------------------------------------

def _client(service, region_code, credentials, endpoint_url=None):
    return aws.client(
        service,
        region_code,
        role_arn=credentials.role_arn,
        external_id=credentials.external_id,
        endpoint_url=endpoint_url,
    )


def execute(call, credentials):
    """Make one `Call` through controlplane.aws as `credentials` and return the response
    (ARC: the next cluster endpoint only when one was unreachable)."""
    return aws.call(
        call.service, call.region, call.operation, call.params,
        role_arn=credentials.role_arn, external_id=credentials.external_id, endpoint_urls=call.endpoint_urls,
    )


# --- the faults ---------------------------------------------------------------------


class Fault:
    slug = ""
    label = ""
    target_kind = ""  # ComponentKind the fault acts on
    # Why there is no "time to detect" for this fault ("" when a failure is there to detect).
    nothing_to_detect = ""
    # parameter name -> default; `validate` checks them
    defaults = {}

    # -- to implement

    def call(self, target, previous):
        """The Call (with its inverse built from `previous`)."""
        raise NotImplementedError

    def read_current(self, target):
        raise NotImplementedError

    def validate(self, params):
        """{parameter: message} for bad parameters."""
        return {}

    # -- shared

    def params(self, target):
        return {**self.defaults, **(target.params or {})}

    def client(self, service, target, region=None):
        return _client(service, region or target.region, target.credentials)

    def effective(self, target, fis_templates=()):
        """(fault, target) that will really act; PauseReplication may hand over to FIS:
        `fis_templates`, the application's FIS experiment template components, are
        iterated only then."""
        return self, target

    def plan(self, target):
        self.check_target(target)
        return [self.call(target, self.read_current(target))]

    def check_target(self, target):
        if target.kind != self.target_kind:
            raise FaultError(f"{self.slug} acts on {self.target_kind}, not {target.kind}")

    def prepare_inject(self, target, idempotency_key):
        """(previous, call): the value read now, just before the call, and the call whose
        inverse restores it. `idempotency_key` names this injection (the ledger row):
        an API that takes a client token gets it, so a repeated call changes nothing."""
        self.check_target(target)
        previous = self.read_current(target)
        return json_safe(previous), self.call_for_inject(target, previous, idempotency_key)

    def call_for_inject(self, target, previous, idempotency_key):
        return self.call(target, previous)

    def inverse_after(self, call, response):
        """The inverse once `call` answered `response` (FIS: the experiment started)."""
        return call.inverse

    def replay_inverse(self, target, inverse):
        """Make the inverse call; the Call made, or None when there was nothing to undo."""
        execute(inverse, target.credentials)
        return inverse

    def verify_reverted(self, target, previous, inverse):
        """True when the value read now is `previous`, the one read before injecting."""
        return json_safe(self.read_current(target)) == previous


class HealthCheckInversion(Fault):
    slug = FaultKind.HEALTH_CHECK_INVERT
    label = FaultKind.HEALTH_CHECK_INVERT.label
    target_kind = ComponentKind.ROUTE53_HEALTH_CHECK

    def read_current(self, target):
        r53 = self.client("route53", target, ROUTE53_REGION)
        config = r53.get_health_check(HealthCheckId=target.identifier)["HealthCheck"]["HealthCheckConfig"]
        return {"Inverted": bool(config.get("Inverted", False))}

    def call(self, target, previous):
        def update(inverted):
            return Call("route53", ROUTE53_REGION, "UpdateHealthCheck",
                        {"HealthCheckId": target.identifier, "Inverted": inverted})

        return Call(**{**update(True).__dict__, "inverse": update(previous["Inverted"])})


class TrafficDial(Fault):
    slug = FaultKind.GA_TRAFFIC_DIAL
    label = FaultKind.GA_TRAFFIC_DIAL.label
    nothing_to_detect = (
        "a traffic dial moves clients away while the region stays healthy: no failure for "
        "probes or health checks to detect"
    )
    target_kind = ComponentKind.GA_ENDPOINT_GROUP
    defaults = {"percentage": 0}

    def validate(self, params):
        pct = params.get("percentage", 0)
        if not isinstance(pct, int | float) or isinstance(pct, bool) or not 0 <= pct <= 100:
            return {"percentage": "percentage: a number from 0 to 100."}
        return {}

    def read_current(self, target):
        ga = self.client("globalaccelerator", target, GA_REGION)
        group = ga.describe_endpoint_group(EndpointGroupArn=target.identifier)["EndpointGroup"]
        return {"TrafficDialPercentage": group.get("TrafficDialPercentage", 100.0)}

    def call(self, target, previous):
        def update(pct):
            return Call("globalaccelerator", GA_REGION, "UpdateEndpointGroup",
                        {"EndpointGroupArn": target.identifier, "TrafficDialPercentage": float(pct)})

        pct = self.params(target)["percentage"]
        return Call(**{**update(pct).__dict__, "inverse": update(previous["TrafficDialPercentage"])})


class ReservedConcurrency(Fault):
    slug = FaultKind.LAMBDA_CONCURRENCY_ZERO
    label = FaultKind.LAMBDA_CONCURRENCY_ZERO.label
    target_kind = ComponentKind.LAMBDA_FUNCTION
    defaults = {"reserved_concurrency": 0}

    def validate(self, params):
        value = params.get("reserved_concurrency", 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return {"reserved_concurrency": "reserved_concurrency: a whole number, 0 or more."}
        return {}

    def read_current(self, target):
        lam = self.client("lambda", target)
        result = lam.get_function_concurrency(FunctionName=target.identifier)
        return {"ReservedConcurrentExecutions": result.get("ReservedConcurrentExecutions")}

    def call(self, target, previous):
        fn = target.identifier
        before = previous["ReservedConcurrentExecutions"]
        if before is None:
            inverse = Call("lambda", target.region, "DeleteFunctionConcurrency", {"FunctionName": fn})
        else:
            inverse = Call("lambda", target.region, "PutFunctionConcurrency",
                           {"FunctionName": fn, "ReservedConcurrentExecutions": before})
        value = self.params(target)["reserved_concurrency"]
        return Call("lambda", target.region, "PutFunctionConcurrency",
                    {"FunctionName": fn, "ReservedConcurrentExecutions": value}, inverse)


FAULT_TYPES = ("latency", "exception", "status_code")


class FailureFlag(Fault):
    """The chaos_lambda / failure-lambda flag in SSM, read by the functions."""

    slug = FaultKind.SSM_FAILURE_FLAG
    label = FaultKind.SSM_FAILURE_FLAG.label
    target_kind = ComponentKind.SSM_FAULT_PARAMETER
    defaults = {"fault_type": "status_code", "delay": 400, "error_code": 503, "rate": 1}

    def validate(self, params):
        errors = {}
        p = {**self.defaults, **params}
        if p["fault_type"] not in FAULT_TYPES:
            errors["fault_type"] = f"fault_type: one of {', '.join(FAULT_TYPES)}."
        rate = p["rate"]
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            errors["rate"] = "rate: a number between 0 and 1."
        delay = p["delay"]
        if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
            errors["delay"] = "delay: milliseconds, 0 or more."
        code = p["error_code"]
        if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
            errors["error_code"] = "error_code: an HTTP error status, 4xx or 5xx."
        return errors

    def flag(self, target):
        p = self.params(target)
        return {
            "is_enabled": True,
            "fault_type": p["fault_type"],
            "delay": p["delay"],
            "error_code": p["error_code"],
            "rate": p["rate"],
        }

    def read_current(self, target):
        ssm = self.client("ssm", target)
        try:
            param = ssm.get_parameter(Name=target.identifier)["Parameter"]
        except aws.ClientError as exc:
            if exc.response["Error"]["Code"] == "ParameterNotFound":
                return {"Value": None, "Type": None}
            raise
        return {"Value": param["Value"], "Type": param.get("Type", "String")}

    def call(self, target, previous):
        name = target.identifier
        if previous["Value"] is None:
            inverse = Call("ssm", target.region, "DeleteParameter", {"Name": name})
        else:
            inverse = Call("ssm", target.region, "PutParameter", {
                "Name": name, "Value": previous["Value"], "Type": previous["Type"], "Overwrite": True,
            })
        return Call("ssm", target.region, "PutParameter",
                    {"Name": name, "Value": json.dumps(self.flag(target), sort_keys=True),
                     "Type": previous["Type"] or "String", "Overwrite": True}, inverse)


# AWS's answer to removing a method setting a stage does not have.
NO_METHOD_SETTING = "no method setting for this method"


class StageThrottle(Fault):
    slug = FaultKind.API_STAGE_THROTTLE
    label = FaultKind.API_STAGE_THROTTLE.label
    target_kind = ComponentKind.API_GATEWAY_STAGE
    defaults = {"rate_limit": 0, "burst_limit": 0, "resource_path": "/*/*"}

    def validate(self, params):
        errors = {}
        p = {**self.defaults, **params}
        for key in ("rate_limit", "burst_limit"):
            v = p[key]
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                errors[key] = f"{key}: requests per second, 0 or more."
        return errors

    def _ids(self, target):
        rest_api_id = target.config.get("restApiId") or target.identifier.split("/restapis/")[1].split("/")[0]
        stage = target.config.get("stageName") or target.identifier.rsplit("/", 1)[1]
        return rest_api_id, stage

    def _key(self, target):
        return self.params(target)["resource_path"].lstrip("/")  # "*/*": methodSettings key

    def read_current(self, target):
        apigw = self.client("apigateway", target)
        rest_api_id, stage = self._ids(target)
        settings = apigw.get_stage(restApiId=rest_api_id, stageName=stage).get("methodSettings", {})
        current = settings.get(self._key(target), {})
        return {
            "throttlingRateLimit": current.get("throttlingRateLimit"),
            "throttlingBurstLimit": current.get("throttlingBurstLimit"),
        }

    def call(self, target, previous):
        rest_api_id, stage = self._ids(target)
        path = "/" + self._key(target)
        p = self.params(target)

        def ops(rate, burst):
            return [
                {"op": "replace", "path": f"{path}/throttling/{name}", "value": _num(value)}
                for name, value in (("rateLimit", rate), ("burstLimit", burst))
                if value is not None
            ]

        def update(patch):
            return Call("apigateway", target.region, "UpdateStage",
                        {"restApiId": rest_api_id, "stageName": stage, "patchOperations": patch})

        before = (previous["throttlingRateLimit"], previous["throttlingBurstLimit"])
        # No override for this path before the drill: the one the fault creates is
        # removed as a whole, the way AWS deletes a method setting (remove on its path,
        # "/*/*"); moto needs the sandbox for it (sandbox/motofixes.py).
        restore = [{"op": "remove", "path": path}] if before == (None, None) else ops(*before)
        inverse = update(restore)
        return Call(**{**update(ops(p["rate_limit"], p["burst_limit"])).__dict__, "inverse": inverse})

    def replay_inverse(self, target, inverse):
        """A removal replayed (the reaper after a worker died between the call and the
        ledger row's update) finds no method setting: AWS says so with a
        BadRequestException, and there is nothing left to undo."""
        try:
            execute(inverse, target.credentials)
        except aws.ClientError as exc:
            removal = [op["op"] for op in inverse.params["patchOperations"]] == ["remove"]
            if removal and error_code(exc) == "BadRequestException" and NO_METHOD_SETTING in str(exc):
                return None
            raise
        return inverse


def _num(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else str(value)


class ListenerFixedResponse(Fault):
    slug = FaultKind.ALB_FIXED_RESPONSE
    label = FaultKind.ALB_FIXED_RESPONSE.label
    target_kind = ComponentKind.ALB_LISTENER
    defaults = {"status_code": 503, "content_type": "application/json",
                "message_body": '{"message": "Service Unavailable (failover drill)"}'}

    def validate(self, params):
        code = {**self.defaults, **params}["status_code"]
        if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
            return {"status_code": "status_code: an HTTP error status, 4xx or 5xx."}
        return {}

    def read_current(self, target):
        elb = self.client("elbv2", target)
        listener = elb.describe_listeners(ListenerArns=[target.identifier])["Listeners"][0]
        return {"DefaultActions": listener["DefaultActions"]}

    def call(self, target, previous):
        p = self.params(target)
        fixed = [{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": str(p["status_code"]), "ContentType": p["content_type"],
            "MessageBody": p["message_body"]}}]
        inverse = Call("elbv2", target.region, "ModifyListener", {
            "ListenerArn": target.identifier,
            "DefaultActions": _clean_actions(previous["DefaultActions"]),
        })
        return Call("elbv2", target.region, "ModifyListener",
                    {"ListenerArn": target.identifier, "DefaultActions": fixed}, inverse)

    def verify_reverted(self, target, previous, inverse):
        now = _clean_actions(self.read_current(target)["DefaultActions"])
        return json_safe(now) == json_safe(_clean_actions(previous["DefaultActions"]))


def _clean_actions(actions):
    """DescribeListeners adds read-only detail ModifyListener does not take back as is
    (a ForwardConfig mirroring TargetGroupArn); keep what restores the same actions."""
    out = []
    for action in actions:
        action = dict(action)
        if action.get("TargetGroupArn") and "ForwardConfig" in action:
            groups = action["ForwardConfig"].get("TargetGroups", [])
            if len(groups) == 1 and groups[0].get("TargetGroupArn") == action["TargetGroupArn"]:
                action.pop("ForwardConfig")
        out.append(action)
    return out


class RoutingControlOff(Fault):
    slug = FaultKind.ARC_ROUTING_CONTROL_OFF
    label = FaultKind.ARC_ROUTING_CONTROL_OFF.label
    nothing_to_detect = (
        "a routing control Off takes the region out while it stays healthy: no failure for "
        "probes or health checks to detect"
    )
    target_kind = ComponentKind.ARC_ROUTING_CONTROL

    def _endpoints(self, target):
        endpoints = target.config.get("ClusterEndpoints") or []
        if not endpoints:
            raise FaultError(f"routing control {target.identifier}: no cluster endpoints in the inventory")
        return endpoints

    def read_current(self, target):
        endpoints = self._endpoints(target)
        call = Call("route53-recovery-cluster", endpoints[0]["Region"], "GetRoutingControlState",
                    {"RoutingControlArn": target.identifier},
                    endpoint_urls=tuple(e["Endpoint"] for e in endpoints))
        return {"RoutingControlState": execute(call, target.credentials)["RoutingControlState"]}

    def call(self, target, previous):
        endpoints = self._endpoints(target)

        def update(state):
            return Call("route53-recovery-cluster", endpoints[0]["Region"], "UpdateRoutingControlState",
                        {"RoutingControlArn": target.identifier, "RoutingControlState": state},
                        endpoint_urls=tuple(e["Endpoint"] for e in endpoints))

        return Call(**{**update("Off").__dict__, "inverse": update(previous["RoutingControlState"])})


class PauseReplication(Fault):
    """Pause replication *to* the region's replica.

    method "tag" (the default, what the sandbox honours): TagResource
    `sandbox:replication-paused=true` on the receiving table / UntagResource (or the
    previous tag value). In AWS the same effect is FIS's
    `aws:dynamodb:global-table-pause-replication` action, which attaches a deny resource
    policy to the replica for the duration: method "fis" starts the application's FIS
    experiment template with that action targeting the table (see FisExperiment)."""

    slug = FaultKind.PAUSE_REPLICATION
    label = FaultKind.PAUSE_REPLICATION.label
    nothing_to_detect = (
        "with replication paused the region keeps serving: no failure for probes or health "
        "checks to detect (the drill measures lag)"
    )
    target_kind = ComponentKind.DYNAMODB_REPLICA
    defaults = {"method": "tag"}

    def validate(self, params):
        method = {**self.defaults, **params}["method"]
        if method not in ("tag", "fis"):
            return {"method": 'method: "tag" (sandbox) or "fis" (AWS FIS template).'}
        return {}

    def effective(self, target, fis_templates=()):
        if self.params(target)["method"] != "fis":
            return self, target
        for template in fis_templates:
            actions = (template.config or {}).get("actions", {}).values()
            arns = [
                arn
                for t in (template.config or {}).get("targets", {}).values()
                for arn in t.get("resourceArns", [])
            ]
            if any(a.get("actionId") == FIS_PAUSE_ACTION for a in actions) and target.identifier in arns:
                return REGISTRY[FaultKind.FIS_EXPERIMENT], Target.from_component(template)
        raise FaultError(
            f"no FIS experiment template with {FIS_PAUSE_ACTION} on {target.identifier} in the inventory"
        )

    def read_current(self, target):
        ddb = self.client("dynamodb", target)
        tags = ddb.list_tags_of_resource(ResourceArn=target.identifier).get("Tags", [])
        value = next((t["Value"] for t in tags if t["Key"] == SANDBOX_PAUSE_TAG), None)
        return {"tag": value}

    def call(self, target, previous):
        arn = target.identifier
        if previous["tag"] is None:
            inverse = Call("dynamodb", target.region, "UntagResource",
                           {"ResourceArn": arn, "TagKeys": [SANDBOX_PAUSE_TAG]})
        else:
            tags = [{"Key": SANDBOX_PAUSE_TAG, "Value": previous["tag"]}]
            inverse = Call("dynamodb", target.region, "TagResource", {"ResourceArn": arn, "Tags": tags})
        return Call("dynamodb", target.region, "TagResource",
                    {"ResourceArn": arn, "Tags": [{"Key": SANDBOX_PAUSE_TAG, "Value": "true"}]}, inverse)


class FisExperiment(Fault):
    """StartExperiment on a template; the inverse is StopExperiment of the experiment
    started (its id is known only after the call: stored in the ledger's inverse)."""

    slug = FaultKind.FIS_EXPERIMENT
    label = FaultKind.FIS_EXPERIMENT.label
    target_kind = ComponentKind.FIS_EXPERIMENT_TEMPLATE
    EXPERIMENT_ID = "${experiment.id}"  # placeholder in the planned inverse
    STOPPED = ("stopping", "stopped", "completed", "failed", "cancelled")

    def read_current(self, target):
        fis = self.client("fis", target)
        running = [
            e["id"]
            for e in fis.list_experiments().get("experiments", [])
            if e.get("experimentTemplateId") == target.identifier
            and e.get("state", {}).get("status") in ("pending", "initiating", "running")
        ]
        return {"running_experiments": sorted(running)}

    def call(self, target, previous):
        inverse = Call("fis", target.region, "StopExperiment", {"id": self.EXPERIMENT_ID})
        return Call("fis", target.region, "StartExperiment",
                    {"experimentTemplateId": target.identifier,
                     "tags": {"controlplane:drill-target": target.application}}, inverse)

    def call_for_inject(self, target, previous, idempotency_key):
        # A deterministic client token: a redelivered inject starts no second experiment.
        call = self.call(target, previous)
        return Call(**{**call.__dict__, "params": {**call.params, "clientToken": idempotency_key}})

    def inverse_after(self, call, response):
        return Call(**{**call.inverse.__dict__, "params": {"id": response["experiment"]["id"]}})

    def replay_inverse(self, target, inverse):
        if inverse.params.get("id") == self.EXPERIMENT_ID:
            return None  # the start call never answered: nothing known to stop
        fis = self.client("fis", target)
        status = fis.get_experiment(id=inverse.params["id"])["experiment"]["state"]["status"]
        if status in self.STOPPED:
            return None
        execute(inverse, target.credentials)
        return inverse

    def verify_reverted(self, target, previous, inverse):
        if inverse.params.get("id") == self.EXPERIMENT_ID:
            return True
        fis = self.client("fis", target)
        status = fis.get_experiment(id=inverse.params["id"])["experiment"]["state"]["status"]
        return status in self.STOPPED


REGISTRY = {
    fault.slug: fault
    for fault in (
        HealthCheckInversion(),
        TrafficDial(),
        ReservedConcurrency(),
        FailureFlag(),
        StageThrottle(),
        ListenerFixedResponse(),
        RoutingControlOff(),
        PauseReplication(),
        FisExperiment(),
    )
}
assert set(REGISTRY) == set(FaultKind.values), "every FaultKind has a fault class"


def get_fault(slug):
    try:
        return REGISTRY[slug]
    except KeyError:
        raise FaultError(f"unknown fault kind {slug!r}") from None


def select_targets(components, fault, selector, params=None):
    """The Targets a scenario's selector picks among a stack's components."""
    kind = (selector or {}).get("component_kind") or fault.target_kind
    pattern = (selector or {}).get("name") or "*"
    return [
        Target.from_component(c, params)
        for c in components
        if c.kind == kind and fnmatch.fnmatchcase(c.name or c.identifier, pattern)
    ]
