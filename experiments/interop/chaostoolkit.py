"""Scenarios as Chaos Toolkit experiments, and back.

`export`: the steady-state hypothesis is an HTTP probe of the application's global
endpoint (checked before the method, and again after it while the fault is on: the
endpoint must keep answering, served by another region); the method is the plan's calls,
each as the chaosaws action that makes it where there is one, else as a process running
the AWS CLI with the call's own parameters (`--cli-input-json`); the rollbacks are the
plan's inverses, newest first. The scenario itself rides in the `controlplane`
extension (selector, hypothesis, stop conditions, max duration), for the way back.

`import_experiment`: the method's actions the fault library knows (Lambda reserved
concurrency, the SSM failure flag, a Route 53 health check inverted, a Global
Accelerator traffic dial) become one scenario, created through ScenarioForm (the
console's validation) and audited as `scenario.created`. Every action it cannot map is
named and nothing is created. Rollbacks are not read: the fault library has its own
inverse for every call.
"""

import json
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.duration import duration_string
from django.utils.text import slugify

from controlplane import audit
from experiments import plans
from experiments.faults import REGISTRY, Call, FaultKind
from experiments.forms import ScenarioForm
from experiments.interop import ExportError

EXTENSION = "controlplane"
# (service, operation) -> (chaosaws module, function, {API parameter: argument}).
CHAOSAWS = {
    ("lambda", "PutFunctionConcurrency"): (
        "chaosaws.awslambda.actions", "put_function_concurrency",
        {"FunctionName": "function_name", "ReservedConcurrentExecutions": "concurrent_executions"},
    ),
    ("lambda", "DeleteFunctionConcurrency"): (
        "chaosaws.awslambda.actions", "delete_function_concurrency", {"FunctionName": "function_name"},
    ),
    ("ssm", "PutParameter"): (
        "chaosaws.ssm.actions", "put_parameter",
        {"Name": "name", "Value": "value", "Type": "type", "Overwrite": "overwrite"},
    ),
}
CLI_OPERATIONS = {  # the AWS CLI's spelling of the operations a plan makes
    "UpdateHealthCheck": "update-health-check",
    "UpdateEndpointGroup": "update-endpoint-group",
    "PutFunctionConcurrency": "put-function-concurrency",
    "DeleteFunctionConcurrency": "delete-function-concurrency",
    "PutParameter": "put-parameter",
    "DeleteParameter": "delete-parameter",
    "UpdateStage": "update-stage",
    "ModifyListener": "modify-listener",
    "UpdateRoutingControlState": "update-routing-control-state",
    "TagResource": "tag-resource",
    "UntagResource": "untag-resource",
    "StartExperiment": "start-experiment",
    "StopExperiment": "stop-experiment",
}
# The fault each importable call makes, and the scenario parameters it carries.
IMPORTABLE = {
    ("lambda", "PutFunctionConcurrency"): FaultKind.LAMBDA_CONCURRENCY_ZERO,
    ("ssm", "PutParameter"): FaultKind.SSM_FAILURE_FLAG,
    ("route53", "UpdateHealthCheck"): FaultKind.HEALTH_CHECK_INVERT,
    ("globalaccelerator", "UpdateEndpointGroup"): FaultKind.GA_TRAFFIC_DIAL,
}


# --- export ---------------------------------------------------------------------------


def export(scenario, application, region):
    """(experiment, plan_hash): `scenario` on `application` in `region` as a Chaos
    Toolkit experiment (a dict, JSON-serialisable)."""
    if not application.global_endpoint_url:
        raise ExportError(
            f"application {application.name} has no global endpoint URL: the steady-state "
            "hypothesis probes it."
        )
    plan, digest = plans.make_plan(scenario, application, region)
    calls = [Call.from_dict(c) for c in plan["calls"]]
    method = [_activity(f"{call.operation} {i}", call) for i, call in enumerate(calls, 1)]
    failover = (scenario.hypothesis or {}).get("max_time_to_failover_seconds")
    if method and failover:
        method[-1]["pauses"] = {"after": failover}  # traffic has moved by then, or it failed
    rollbacks = [
        _activity(f"undo {call.operation} {i}", call.inverse)
        for i, call in reversed(list(enumerate(calls, 1)))
        if call.inverse is not None
    ]
    experiment = {
        "version": "1.0.0",
        "title": f"{scenario.name}: {application.name} in {region.code}",
        "description": scenario.description or scenario.name,
        "tags": ["controlplane", scenario.fault_kind, application.name, region.code],
        "configuration": {"aws_region": region.code},
        "steady-state-hypothesis": {
            "title": f"{application.name} answers through its global endpoint",
            "probes": [{
                "type": "probe",
                "name": "global-endpoint-answers",
                "tolerance": 200,
                "provider": {"type": "http", "url": application.global_endpoint_url, "timeout": 5},
            }],
        },
        "method": method,
        "rollbacks": rollbacks,
        "extensions": [{
            "name": EXTENSION,
            "scenario": scenario.slug,
            "scenario_name": scenario.name,
            "fault_kind": scenario.fault_kind,
            "target_selector": scenario.target_selector,
            "hypothesis": scenario.hypothesis,
            "stop_conditions": scenario.stop_conditions,
            "max_duration_seconds": int(scenario.max_duration.total_seconds()),
            "architecture": scenario.architecture,
            "plan_hash": digest,
        }],
    }
    return experiment, digest


def _activity(name, call):
    """One action making `call`: chaosaws where it has the call, else the AWS CLI."""
    if (call.service, call.operation) in CHAOSAWS and not call.endpoint_urls:
        module, func, names = CHAOSAWS[(call.service, call.operation)]
        arguments = {names[key]: value for key, value in call.params.items()}
        # chaosaws calls the configuration's aws_region: the drilled region, as these calls'
        provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
        return {"type": "action", "name": name, "provider": provider}
    arguments = [call.service, CLI_OPERATIONS[call.operation], "--region", call.region,
                 "--cli-input-json", json.dumps(call.params, sort_keys=True)]
    if call.endpoint_urls:
        arguments += ["--endpoint-url", call.endpoint_urls[0]]
    provider = {"type": "process", "path": "aws", "arguments": arguments}
    return {"type": "action", "name": name, "provider": provider}


# --- import ---------------------------------------------------------------------------


class ImportRefused(Exception):
    """The experiment cannot become a scenario; `errors` is {field: [messages]}."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def import_experiment(experiment, user, *, source, request_id="", slug=""):
    """Create the scenario `experiment` (a Chaos Toolkit experiment, parsed JSON)
    describes, as `user` (who may add scenarios, else PermissionDenied), through
    ScenarioForm; audited as scenario.created. Raises ImportRefused naming every action
    it cannot map and every invalid field; nothing is created then."""
    if not user.has_perm("experiments.add_scenario"):
        raise PermissionDenied("Importing an experiment creates a scenario: the operator role may.")
    if not isinstance(experiment, dict):
        raise ImportRefused({"non_field_errors": ["The experiment must be a JSON object."]})
    if "\\u0000" in json.dumps(experiment):  # no text column takes NUL
        raise ImportRefused({"non_field_errors": ["Text must not contain NUL characters (\\u0000)."]})
    fault_kind, parameters, names = _fault_of(experiment)
    extension = next(
        (e for e in experiment.get("extensions") or [] if isinstance(e, dict) and e.get("name") == EXTENSION),
        {},
    )
    fault = REGISTRY[fault_kind]
    selector = extension.get("target_selector")
    if selector is None:
        selector = {"component_kind": str(fault.target_kind)}
        if len(names) == 1:
            selector["name"] = names[0]
    title = str(experiment.get("title") or "")
    seconds = extension.get("max_duration_seconds", 600)
    data = {
        "slug": slug or extension.get("scenario") or slugify(title)[:63],
        "name": extension.get("scenario_name") or title[:100],
        "description": str(experiment.get("description") or ""),
        "fault_kind": fault_kind,
        "target_selector": json.dumps(selector),
        "parameters": json.dumps(parameters),
        "hypothesis": json.dumps(extension.get("hypothesis") or {}),
        "stop_conditions": json.dumps(extension.get("stop_conditions") or []),
        "max_duration": duration_string(_seconds(seconds)),
        "architecture": extension.get("architecture") or "",
    }
    form = ScenarioForm(data, user=user)
    with transaction.atomic():
        if not form.is_valid():
            raise ImportRefused({name: [str(m) for m in errors] for name, errors in form.errors.items()})
        scenario = form.save()
        audit.record(
            user, "scenario.created", source=source, obj=scenario, request_id=request_id,
            after={"slug": scenario.slug, "fault_kind": scenario.fault_kind, "imported_from": "chaostoolkit"},
        )
    return scenario


def _seconds(value):
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 10**9:
        raise ImportRefused({"max_duration": ["max_duration_seconds: a number of seconds above 0."]})
    return timedelta(seconds=value)


def _fault_of(experiment):
    """(fault kind, parameters, target names) the method's actions make together."""
    method = experiment.get("method")
    if not isinstance(method, list) or not method:
        raise ImportRefused({"method": ["The experiment has no method: nothing to inject."]})
    found, refused = [], []
    for i, activity in enumerate(method, 1):
        if not isinstance(activity, dict) or activity.get("type") not in ("action", "probe"):
            refused.append(f"#{i}: not an action or probe.")
            continue
        if activity["type"] == "probe":
            continue  # a probe reads; it injects nothing
        label = f"#{i} {activity.get('name') or '(unnamed)'}"
        call, why = _call_of(activity.get("provider"), experiment)
        mapped = _mapped(call) if call is not None else None
        if mapped is None:
            refused.append(f"{label}: {why or _why_not(call)}")
        else:
            found.append((label, *mapped))
    if refused:
        raise ImportRefused({"method": [f"Cannot map action {r}" for r in refused]})
    if not found:
        raise ImportRefused({"method": ["The method has no action: nothing to inject."]})
    kinds = {(kind, json.dumps(params, sort_keys=True)) for _, kind, params, _ in found}
    if len(kinds) > 1:
        listed = "; ".join(f"{label}: {kind} {json.dumps(params, sort_keys=True)}"
                           for label, kind, params, _ in found)
        message = f"The actions make different faults ({listed}); a scenario makes one."
        raise ImportRefused({"method": [message]})
    _, kind, params, _ = found[0]
    return kind, params, sorted({name for *_, name in found})


def _call_of(provider, experiment):
    """(Call, None) for a provider that makes one AWS call we can read, else (None, why)."""
    if not isinstance(provider, dict):
        return None, "no provider."
    region = (experiment.get("configuration") or {}).get("aws_region")
    if provider.get("type") == "python":
        where = (provider.get("module"), provider.get("func"))
        for (service, operation), (module, func, names) in CHAOSAWS.items():
            if (module, func) == where:
                back = {arg: key for key, arg in names.items()}
                args = provider.get("arguments") or {}
                params = {back[a]: v for a, v in args.items() if a in back}
                if not isinstance(region, str):
                    return None, "no aws_region in the experiment's configuration."
                return Call(service, region, operation, params), None
        return None, f"{where[0]}.{where[1]} is not a call the fault library makes."
    if provider.get("type") == "process" and provider.get("path") == "aws":
        args = provider.get("arguments")
        if not isinstance(args, list) or len(args) < 2 or not all(isinstance(a, str) for a in args):
            return None, "an AWS CLI command whose arguments are not a list of strings."
        operations = {cli: op for op, cli in CLI_OPERATIONS.items()}
        options = dict(zip(args[2::2], args[3::2], strict=False))
        if args[1] not in operations or "--cli-input-json" not in options:
            return None, f"aws {args[0]} {args[1]} is not a call the fault library makes."
        try:
            params = json.loads(options["--cli-input-json"])
        except ValueError:
            return None, "--cli-input-json is not JSON."
        return Call(args[0], options.get("--region", region or ""), operations[args[1]], params), None
    return None, f"a {provider.get('type')} provider: only chaosaws actions and AWS CLI calls are read."


def _mapped(call):
    """(fault kind, parameters, target name) for a call the fault library makes, or None."""
    kind = IMPORTABLE.get((call.service, call.operation))
    p = call.params if isinstance(call.params, dict) else {}
    if kind == FaultKind.LAMBDA_CONCURRENCY_ZERO and isinstance(p.get("FunctionName"), str):
        name = p["FunctionName"].split(":")[-1]  # a name or an ARN
        return kind, {"reserved_concurrency": p.get("ReservedConcurrentExecutions")}, name
    if kind == FaultKind.SSM_FAILURE_FLAG and isinstance(p.get("Name"), str):
        try:
            flag = json.loads(p.get("Value"))
        except (TypeError, ValueError):
            return None
        keys = ("fault_type", "delay", "error_code", "rate")
        if not isinstance(flag, dict) or flag.get("is_enabled") is not True or not set(keys) <= set(flag):
            return None
        return kind, {key: flag[key] for key in keys}, p["Name"]
    inverted = p.get("Inverted") is True
    if kind == FaultKind.HEALTH_CHECK_INVERT and inverted and isinstance(p.get("HealthCheckId"), str):
        return kind, {}, p["HealthCheckId"]
    if kind == FaultKind.GA_TRAFFIC_DIAL and isinstance(p.get("EndpointGroupArn"), str):
        pct = p.get("TrafficDialPercentage")
        pct = int(pct) if isinstance(pct, float) and pct.is_integer() else pct
        return kind, {"percentage": pct}, p["EndpointGroupArn"]
    return None


def _why_not(call):
    if (call.service, call.operation) == ("ssm", "PutParameter"):
        return ('an SSM parameter that is not a failure flag ({"is_enabled": true, "fault_type", '
                '"delay", "error_code", "rate"}).')
    if (call.service, call.operation) == ("route53", "UpdateHealthCheck"):
        return "a health check update that does not invert it (Inverted: true)."
    return f"{call.service} {call.operation} is not a fault the library imports."
