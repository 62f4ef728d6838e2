"""Scenarios: the built-in recipes, and validation of the ones operators write.

`validate_scenario` raises one ValidationError with a message per field (fault_kind,
target_selector, parameters, hypothesis, stop_conditions, max_duration); it is what
`Scenario.clean()` runs, so the console form (forms.ScenarioForm), the admin and a drill
request agree. It reads the scenario's fields only: the model module imports it.
"""

from datetime import timedelta

from django.apps import apps as installed_apps
from django.conf import settings
from django.core.exceptions import ValidationError

from experiments.faults import REGISTRY, FaultKind
from regions.models import Architecture, ComponentKind

# Operators cannot create scenarios that run longer than this (settings may lower it).

STOP_METRICS = {
    "global_error_rate": "Error rate through the global endpoint above threshold_percent for for_seconds",
    "global_p95_latency": "p95 latency through the global endpoint above threshold_ms for for_seconds",
    "other_region_unhealthy": "Any other region of the application unhealthy",
    "replication_lag": "Replication lag above threshold_ms for for_seconds",
}
STEADY_STATE_CHECKS = (
    "global_success_rate", "global_p95_latency_ms", "regions_healthy", "replication_lag_ms",
)
# The keys each check or condition takes (the runner evaluates every one; anything else
# is refused, so that a typo never turns a check off); the required ones first.
STEADY_STATE_KEYS = {
    "global_success_rate": ((), ("min_percent",)),
    "global_p95_latency_ms": (("max_ms",), ()),
    "regions_healthy": ((), ()),
    "replication_lag_ms": (("max_ms",), ()),
}
STOP_KEYS = {
    "global_error_rate": (("threshold_percent",), ("for_seconds",)),
    "global_p95_latency": (("threshold_ms",), ("for_seconds",)),
    "replication_lag": (("threshold_ms",), ("for_seconds",)),
    "other_region_unhealthy": ((), ()),
}
# Hypothesis figures of replication drills (experiments/replication.py measures them).
REPLICATION_HYPOTHESIS = ("max_replication_lag_ms", "max_time_to_converge_seconds")
HYPOTHESIS_KEYS = ("steady_state", "max_time_to_failover_seconds", *REPLICATION_HYPOTHESIS)

_HYPOTHESIS_A = {
    "steady_state": [{"check": "global_success_rate", "min_percent": 99}],
    "max_time_to_failover_seconds": 60,
}
_STOP = [
    {"metric": "global_error_rate", "threshold_percent": 20, "for_seconds": 30},
    {"metric": "other_region_unhealthy"},
]

BUILTIN_SCENARIOS = [
    {
        "slug": "fail-region-health-check",
        "name": "Fail the region's health check",
        "description": "Invert the region's Route 53 health check: Route 53 treats the region as "
        "unhealthy and DNS answers with the other regions.",
        "fault_kind": FaultKind.HEALTH_CHECK_INVERT,
        "target_selector": {"component_kind": ComponentKind.ROUTE53_HEALTH_CHECK},
        "parameters": {},
        "architecture": Architecture.DNS,
    },
    {
        "slug": "dial-region-to-zero",
        "name": "Dial the region to zero",
        "description": "Set the region's Global Accelerator endpoint group traffic dial to 0 %: "
        "the accelerator sends its traffic to the next region.",
        "fault_kind": FaultKind.GA_TRAFFIC_DIAL,
        "target_selector": {"component_kind": ComponentKind.GA_ENDPOINT_GROUP},
        "parameters": {"percentage": 0},
        "architecture": Architecture.ANYCAST,
    },
    {
        "slug": "throttle-region-functions",
        "name": "Throttle the region's functions",
        "description": "Set reserved concurrency 0 on every Lambda function of the region, the API's "
        "and the one behind /health: every invocation is throttled (429) and the health check fails.",
        "fault_kind": FaultKind.LAMBDA_CONCURRENCY_ZERO,
        "target_selector": {"component_kind": ComponentKind.LAMBDA_FUNCTION},
        "parameters": {"reserved_concurrency": 0},
        "architecture": "",
    },
    {
        "slug": "error-rate-50",
        "name": "Half the requests fail with 503",
        "description": "Turn on the region's failure-injection flag (SSM): status code 503 for half "
        "the requests. A partial failure: does the health check notice?",
        "fault_kind": FaultKind.SSM_FAILURE_FLAG,
        "target_selector": {"component_kind": ComponentKind.SSM_FAULT_PARAMETER},
        "parameters": {"fault_type": "status_code", "error_code": 503, "rate": 0.5, "delay": 0},
        "architecture": "",
    },
    {
        "slug": "pause-replication",
        "name": "Pause replication to the region",
        "description": "Pause DynamoDB global table replication to the region's replica (sandbox: the "
        "sandbox:replication-paused tag; AWS: FIS aws:dynamodb:global-table-pause-replication). "
        "Measures lag during and after.",
        "fault_kind": FaultKind.PAUSE_REPLICATION,
        "target_selector": {"component_kind": ComponentKind.DYNAMODB_REPLICA},
        "parameters": {"method": "tag"},
        "architecture": "",
        "hypothesis": {
            "steady_state": [{"check": "replication_lag_ms", "max_ms": 2000}],
            "max_time_to_failover_seconds": 0,
            "max_time_to_converge_seconds": 30,
        },
        "stop_conditions": [{"metric": "other_region_unhealthy"}],
    },
]


def ensure_builtin_scenarios(apps=None, schema_editor=None):
    """Create or update the built-ins by slug (idempotent; used by a data migration)."""
    model = (apps if apps is not None else installed_apps).get_model("experiments", "Scenario")
    for spec in BUILTIN_SCENARIOS:
        values = {
            "hypothesis": _HYPOTHESIS_A,
            "stop_conditions": _STOP,
            "max_duration": timedelta(minutes=10),
            **{k: v for k, v in spec.items() if k != "slug"},
            "built_in": True,
        }
        values["fault_kind"] = str(values["fault_kind"])
        values["target_selector"] = {k: str(v) for k, v in values["target_selector"].items()}
        values["architecture"] = str(values["architecture"])
        model.objects.update_or_create(slug=spec["slug"], defaults=values)


# --- validation ------------------------------------------------------------------------


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_selector(fault, selector):
    if not isinstance(selector, dict):
        return 'An object such as {"component_kind": "lambda_function"}.'
    unknown = set(selector) - {"component_kind", "name"}
    if unknown:
        return f"Unknown key(s): {', '.join(sorted(unknown))}. Use component_kind and name."
    kind = selector.get("component_kind")
    if kind is not None and kind not in ComponentKind.values:
        return f"Unknown component kind {kind!r}."
    if fault is not None and kind is not None and kind != fault.target_kind:
        return f"{fault.label} acts on {ComponentKind(fault.target_kind).label} components, not {kind}."
    if "name" in selector and not isinstance(selector["name"], str):
        return "name: a pattern such as *-api."
    return None


def _keys_problem(given, spec, name):
    """A message when `given` (a dict's keys) lacks a required key of `spec` or has one
    it does not take; None when it fits."""
    required, optional = spec
    missing = [k for k in required if k not in given]
    unknown = sorted(set(given) - set(required) - set(optional) - {"check", "metric"})
    if missing:
        return f"{name} needs {', '.join(missing)}."
    if unknown:
        takes = ", ".join((*required, *optional)) or "no other key"
        return f"{name} does not take {', '.join(unknown)} (it takes {takes})."
    return None


def _validate_hypothesis(hypothesis, max_duration):
    if not isinstance(hypothesis, dict):
        return ["An object with steady_state and max_time_to_failover_seconds."]
    errors = []
    unknown = sorted(set(hypothesis) - set(HYPOTHESIS_KEYS))
    if unknown:
        errors.append(
            f"Unknown key(s) {', '.join(unknown)}: the runner evaluates {', '.join(HYPOTHESIS_KEYS)}."
        )
    expected = hypothesis.get("max_time_to_failover_seconds")
    if expected is not None and (not _number(expected) or expected < 0):
        errors.append("max_time_to_failover_seconds: seconds, 0 or more.")
    elif expected is not None and max_duration and expected > max_duration.total_seconds():
        errors.append("max_time_to_failover_seconds: longer than the scenario's max duration.")
    for key in REPLICATION_HYPOTHESIS:
        value = hypothesis.get(key)
        if value is not None and (not _number(value) or value < 0):
            errors.append(f"{key}: 0 or more.")
    checks = hypothesis.get("steady_state", [])
    if not isinstance(checks, list):
        return errors + ["steady_state: a list of checks."]
    for i, check in enumerate(checks, 1):
        name = check.get("check") if isinstance(check, dict) else None
        if name not in STEADY_STATE_CHECKS:
            errors.append(f"steady_state #{i}: check is one of {', '.join(STEADY_STATE_CHECKS)}.")
            continue
        problem = _keys_problem(check, STEADY_STATE_KEYS[name], name)
        if problem:
            errors.append(f"steady_state #{i}: {problem}")
            continue
        pct = check.get("min_percent")
        if pct is not None and (not _number(pct) or not 0 <= pct <= 100):
            errors.append(f"steady_state #{i}: min_percent between 0 and 100.")
        for key in ("max_ms",):
            if key in check and (not _number(check[key]) or check[key] < 0):
                errors.append(f"steady_state #{i}: {key}, 0 or more.")
    return errors


def _validate_stop_conditions(conditions, max_duration):
    if not isinstance(conditions, list):
        return ["A list of conditions."]
    errors = []
    for i, cond in enumerate(conditions, 1):
        metric = cond.get("metric") if isinstance(cond, dict) else None
        if metric not in STOP_METRICS:
            errors.append(f"#{i}: metric is one of {', '.join(STOP_METRICS)}.")
            continue
        problem = _keys_problem(cond, STOP_KEYS[metric], metric)
        if problem:
            errors.append(f"#{i}: {problem}")
            continue
        if metric == "global_error_rate":
            pct = cond.get("threshold_percent")
            if not _number(pct) or not 0 < pct <= 100:
                errors.append(f"#{i}: threshold_percent must be above 0 and at most 100.")
        if metric in ("global_p95_latency", "replication_lag"):
            ms = cond.get("threshold_ms")
            if not _number(ms) or ms <= 0:
                errors.append(f"#{i}: threshold_ms must be above 0.")
        if metric != "other_region_unhealthy":
            secs = cond.get("for_seconds", 0)
            if not _number(secs) or secs < 0:
                errors.append(f"#{i}: for_seconds must be 0 or more.")
            elif max_duration and secs > max_duration.total_seconds():
                errors.append(f"#{i}: for_seconds is longer than the scenario's max duration.")
    return errors


def validate_scenario(scenario):
    """Raise ValidationError({field: [messages]}) for everything wrong with `scenario`."""
    errors = {}
    fault = REGISTRY.get(scenario.fault_kind)
    if fault is None:
        errors["fault_kind"] = [f"Unknown fault kind {scenario.fault_kind!r}." if scenario.fault_kind
                                else "Choose a fault kind."]

    problem = _validate_selector(fault, scenario.target_selector)
    if problem:
        errors["target_selector"] = [problem]

    params = scenario.parameters
    if not isinstance(params, dict):
        errors["parameters"] = ["An object of parameters."]
    elif fault is not None:
        unknown = set(params) - set(fault.defaults)
        messages = [f"{k}: not a parameter of {fault.label}." for k in sorted(unknown)]
        messages += list(fault.validate(params).values())
        if messages:
            errors["parameters"] = messages

    cap = settings.DRILL_MAX_DURATION
    duration = scenario.max_duration
    if duration is None or duration <= timedelta(0):
        errors["max_duration"] = ["Must be longer than zero."]
        duration = None
    elif duration > cap:
        errors["max_duration"] = [f"At most {_human(cap)}."]

    problems = _validate_hypothesis(scenario.hypothesis, duration)
    if problems:
        errors["hypothesis"] = problems
    problems = _validate_stop_conditions(scenario.stop_conditions, duration)
    if problems:
        errors["stop_conditions"] = problems
    if errors:
        raise ValidationError(errors)


def _human(delta):
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
