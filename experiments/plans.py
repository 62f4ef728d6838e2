"""A drill's plan: what an approver approves and the runner runs.

`make_plan` freezes and hashes everything the runner will read (the literal calls with
their inverses, read now, the targets, the hypothesis, the stop conditions, the maximum
duration, the vantages); `targets_for` is what a scenario's selector picks in the
inventory; `measurability_for` says from which vantages failover could be measured.
For the pages: `plan_calls` (each call beside its inverse), `plan_targets` (what it
breaks, a row each), `plan_summary` (the plan in one line, for the approvals queue) and
`plan_diff` (what changed since the last plan). The fault library builds the calls; this module reads the
inventory for it and writes no rows.
"""

import json
from collections import Counter

from django.conf import settings
from django.utils import timezone

from controlplane.durations import format_duration
from controlplane.jsonvalues import json_safe
from experiments import faults
from experiments.observer import measurability
from regions.kinds import ComponentKind
from regions.models import Component
from regions.monitoring import serving_by_vantage


def targets_for(scenario, application, region):
    """The Targets the scenario's selector picks in the application's stack in `region`
    (with the fault that really acts on each: PauseReplication may hand over to FIS)."""
    fault = faults.get_fault(scenario.fault_kind)
    components = Component.objects.filter(
        stack__application=application, stack__region=region
    ).select_related("stack__region", "stack__application")
    picked = faults.select_targets(components, fault, scenario.target_selector, scenario.parameters)
    if not picked:
        raise faults.FaultError(
            f"{scenario.slug}: no {fault.target_kind} component in {application.name}/{region.code}"
        )
    return [fault.effective(t) for t in picked]


def make_plan(scenario, application, region):
    """(plan, plan_hash): everything the runner will read, frozen and hashed: the literal
    calls (with inverses built from values read now) and targets, the hypothesis (its
    steady-state checks and limits), the stop conditions, the maximum duration and the
    vantages that will observe. The runner runs from this plan, never from the scenario
    row, so an edit of the scenario after approval changes the hash and is refused."""
    pairs = targets_for(scenario, application, region)
    calls = []
    for fault, target in pairs:
        calls.extend(fault.plan(target))
    plan = faults.build_plan(
        scenario.slug, scenario.fault_kind, scenario.parameters, [t for _, t in pairs], calls,
        scenario.max_duration,
    )
    plan["fault_kinds"] = [f.slug for f, _ in pairs]
    plan["target_snapshots"] = [t.as_dict() for _, t in pairs]
    plan["hypothesis"] = json_safe(scenario.hypothesis or {})
    plan["stop_conditions"] = json_safe(scenario.stop_conditions or [])
    plan["vantages"] = list(dict.fromkeys(settings.CONTROLPLANE_PROBE_VANTAGES))
    return plan, faults.plan_hash(plan)


def measurability_for(application, region, *, hypothesis, vantages=None, now=None):
    """Which of `vantages` (default: the configured ones) a drill of `region` with
    `hypothesis` could measure failover from, read from the latest probes of the
    application's global endpoint (experiments.observer.measurability)."""
    now = now or timezone.now()
    expected = (hypothesis or {}).get("max_time_to_failover_seconds")
    if vantages is None:
        vantages = list(dict.fromkeys(settings.CONTROLPLANE_PROBE_VANTAGES))
    return measurability(
        serving_by_vantage(application.pk, now), vantages, region.code,
        expects_failover=expected is None or float(expected) > 0,
    )


def drill_measurability(drill):
    """measurability_for a requested drill, from its frozen plan."""
    plan = drill.plan or {}
    return measurability_for(
        drill.application, drill.region, hypothesis=plan.get("hypothesis"), vantages=plan.get("vantages")
    )


# --- showing plans ----------------------------------------------------------------------


def _flatten(value, prefix=""):
    """{"calls[0].params.Inverted": True, ...}: a plan as dotted keys, for the diff."""
    out = {}
    if isinstance(value, dict):
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        if not value:
            out[prefix] = []
    else:
        out[prefix] = value
    return out


def plan_diff(old_plan, new_plan):
    """[(key, old, new)] for every key whose value differs (missing = None)."""
    old, new = _flatten(old_plan or {}), _flatten(new_plan or {})
    rows = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, None) != new.get(key, None) or (key in old) != (key in new):
            before = show_value(old[key]) if key in old else "—"
            after = show_value(new[key]) if key in new else "—"
            rows.append((key, before, after))
    return rows


def show_value(value):
    """A JSON value as one line of text (a string as it is)."""
    return json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value


def plan_calls(plan):
    """The plan's calls, each beside its inverse, params as pretty JSON."""
    rows = []
    for call in (plan or {}).get("calls", []):
        inverse = call.get("inverse") or {}
        rows.append({
            "service": call.get("service", ""),
            "region": call.get("region", ""),
            "operation": call.get("operation", ""),
            "params": json.dumps(call.get("params", {}), indent=2, sort_keys=True, default=str),
            "inverse": {
                "service": inverse.get("service", ""),
                "region": inverse.get("region", ""),
                "operation": inverse.get("operation", ""),
                "params": json.dumps(inverse.get("params", {}), indent=2, sort_keys=True, default=str),
            } if inverse else None,
        })
    return rows


def plan_targets(plan):
    """The plan's targets, one row each (kind as its label, name, identifier, region, the
    fault's parameters): from the snapshots taken when it was planned, or, in a plan
    without them, the identities its hash binds to."""
    plan = plan or {}
    rows = []
    for target in plan.get("target_snapshots") or plan.get("targets") or []:
        kind, params = target.get("kind", ""), target.get("params") or {}
        rows.append({
            "kind": ComponentKind(kind).label if kind in ComponentKind.values else kind,
            "name": target.get("name", ""),
            "identifier": target.get("identifier", ""),
            "region": target.get("region", ""),
            "params": ", ".join(f"{key}={show_value(value)}" for key, value in sorted(params.items())),
        })
    return rows


def plan_summary(plan):
    """A plan in brief, for lists: its calls by service and operation (how many of each),
    how many targets, its maximum duration."""
    plan = plan or {}
    operations = Counter(f"{c.get('service', '')} {c.get('operation', '')}" for c in plan.get("calls", []))
    seconds = plan.get("max_duration_seconds")
    return {
        "calls": ", ".join(f"{op} x{n}" if n > 1 else op for op, n in operations.items()) or "no call",
        "targets": len(plan.get("targets") or []),
        "max_duration": format_duration(seconds) if isinstance(seconds, int) else None,
    }
