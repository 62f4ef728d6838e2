"""Service functions that change drills, approvals, the ledger and the halt switch.

Every state change is a conditional UPDATE and writes its audit event explicitly, in
the same transaction, only when the UPDATE changed a row. Callers pass ids and act only
on a True result: double clicks and redelivered tasks then do nothing.
"""

import time

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit, aws
from controlplane.models import AuditSource
from experiments import faults, plans
from experiments.models import (
    APPROVAL_TTL,
    OPEN_COMPENSATION_STATES,
    STATE_TIMESTAMP,
    Approval,
    Compensation,
    CompensationState,
    Decision,
    Drill,
    DrillState,
    DrillStep,
    HaltState,
    StepKind,
)
from experiments.scenarios import validate_scenario


def transition(drill_id, from_states, to_state, *, actor=None, source=AuditSource.SYSTEM,
               request_id="", audit_data=None, **fields):
    """Move drill `drill_id` from one of `from_states` to `to_state`, setting `fields`
    and the state's timestamp. True if this call made the change (then one audit event
    `drill.<to_state>` is written); False if the drill was not in `from_states`."""
    if isinstance(from_states, str):
        from_states = [from_states]
    to_state = DrillState(to_state)
    now = timezone.now()
    values = {"state": to_state, **fields}
    values.setdefault(STATE_TIMESTAMP[to_state], now)
    with transaction.atomic():
        changed = Drill.objects.filter(pk=drill_id, state__in=list(from_states)).update(**values)
        if changed != 1:
            return False
        drill = Drill.objects.select_related("scenario", "region", "application").get(pk=drill_id)
        after = {"state": to_state.value, **{k: v for k, v in fields.items() if k != "plan"}}
        if audit_data:
            after.update(audit_data)
        audit.record(
            actor,
            f"drill.{to_state.value}",
            source=source,
            obj=drill,
            object_repr=drill_repr(drill),
            before={"state": list(map(str, from_states))},
            after=after,
            request_id=request_id,
        )
        add_step(drill_id, StepKind.STATE, f"{to_state.label}", {"state": to_state.value}, at=now)
    return True


def drill_repr(drill):
    """How audit events name a drill (with its scenario, application and region)."""
    return f"drill #{drill.pk} {drill.scenario.slug} on {drill.application.name}/{drill.region.code}"


def add_step(drill_id, kind, message, data=None, at=None):
    return DrillStep.objects.create(
        drill_id=drill_id, kind=kind, message=message[:500], data=data or {}, at=at or timezone.now()
    )


# --- planning -------------------------------------------------------------------------


def request_drill(*, scenario, application, region, requested_by, window_start=None, window_end=None,
                  source=AuditSource.CONSOLE, request_id=""):
    """Create a drill in `requested` with its plan and hash (audit: drill.requested)."""
    # A scenario saved before a rule existed (or written around the form) is checked
    # again: a check the runner would not evaluate is refused, never ignored.
    validate_scenario(scenario)
    if not scenario.applies_to(application):
        raise ValidationError(
            {"scenario": f"{scenario.name} does not apply to architecture {application.architecture}."}
        )
    plan, digest = plans.make_plan(scenario, application, region)
    with transaction.atomic():
        drill = Drill.objects.create(
            scenario=scenario, application=application, region=region, requested_by=requested_by,
            window_start=window_start, window_end=window_end, plan=plan, plan_hash=digest,
        )
        audit.record(
            requested_by, "drill.requested", source=source, obj=drill, request_id=request_id,
            after={"scenario": scenario.slug, "application": application.name, "region": region.code,
                   "plan_hash": digest},
        )
        add_step(drill.pk, StepKind.PLAN, f"Planned {len(plan['calls'])} call(s)", {"plan_hash": digest})
    return drill


def replan(drill_id, plan, *, actor, source=AuditSource.CONSOLE, request_id=""):
    """Replace the plan of a drill not yet queued; it goes back to `requested` and any
    approval is void (it was for another hash)."""
    return transition(
        drill_id, [DrillState.REQUESTED, DrillState.APPROVED], DrillState.REQUESTED,
        actor=actor, source=source, request_id=request_id,
        plan=plan, plan_hash=faults.plan_hash(plan), approved_at=None,
        audit_data={"plan_hash": faults.plan_hash(plan)},
    )


# --- approvals ------------------------------------------------------------------------


def valid_approval(drill, now=None):
    """The approval that currently authorises the drill's plan, or None: decision
    approve, for the drill's current plan hash, not expired, not by the requester."""
    now = now or timezone.now()
    for approval in Approval.objects.filter(drill_id=drill.pk, decision=Decision.APPROVE):
        if approval.is_valid_for(drill, now):
            return approval
    return None


def decide(drill, approver, decision, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Record an approver's decision on the drill's current plan and move the drill
    (requested -> approved | rejected). Raises PermissionDenied for the requester or a
    user without `experiments.approve_drill`; returns the Approval, or None when the
    drill was no longer waiting (nothing written)."""
    decision = Decision(decision)
    if approver.pk == drill.requested_by_id:
        raise PermissionDenied("The requester of a drill cannot approve or reject it.")
    if not approver.has_perm("experiments.approve_drill"):
        raise PermissionDenied("Approving drills needs the approver role.")
    to_state = DrillState.APPROVED if decision == Decision.APPROVE else DrillState.REJECTED
    with transaction.atomic():
        current = Drill.objects.select_for_update().filter(pk=drill.pk).values("plan_hash").first()
        if current is None or current["plan_hash"] != drill.plan_hash:
            return None  # the plan changed under the approver's eyes
        if not transition(drill.pk, [DrillState.REQUESTED], to_state, actor=approver, source=source,
                          request_id=request_id,
                          audit_data={"plan_hash": drill.plan_hash, "comment": comment}):
            return None
        now = timezone.now()
        return Approval.objects.create(
            drill=drill, approver=approver, decision=decision, comment=comment,
            plan_hash=drill.plan_hash, created_at=now, expires_at=now + APPROVAL_TTL,
        )


# --- the compensation ledger ---------------------------------------------------------
#
# Every AWS change a drill makes goes through `inject` and `revert`: the ledger row is
# written before the call, and after the call the row's new state and its audit event
# (on the drill, by the system, naming the worker and the row) commit together.

def open_compensation(drill, fault, target, call, *, deadline, step=None):
    """Write the ledger row for `call` (before it is made)."""
    return Compensation.objects.create(
        drill=drill,
        step=step,
        component_id=target.component_id,
        fault_kind=fault.slug,
        target=target.as_dict(),
        call=call.as_dict() | {"inverse": None},
        inverse=call.inverse.as_dict(),
        deadline=deadline,
    )


def _call_only(call):
    """A Call's dict without its inverse (service, region, operation, params)."""
    return {key: value for key, value in call.as_dict().items() if key != "inverse"}


def _record_ledger_event(compensation, action, *, worker, before, after):
    """The audit event of one AWS change on the drill's ledger row `compensation`."""
    drill = compensation.drill
    target = faults.Target.from_dict(compensation.target)
    audit.record(
        None,
        action,
        source=AuditSource.SYSTEM,
        obj=drill,
        object_repr=drill_repr(drill),
        before=before,
        after={
            **after,
            "compensation": compensation.pk,
            "worker": worker,
            "fault_kind": compensation.fault_kind,
            "target": target.identity() | {"name": target.name},
        },
    )


def inject(drill, fault, target, *, deadline, step=None, worker=""):
    """Make one fault's call, ledger first: the row is written, the value the call will
    overwrite is read and stored in it, then the call is made. When it succeeded, the
    row becomes `injected` with the audit event `drill.fault_injected` (the call, its
    inverse, the value read before) in one transaction. An AWS error from the call is
    recorded as `drill.inject_failed` and raised; the row stays open (the call may have
    taken effect), so the revert replays the inverse. Returns the Compensation."""
    call = fault.plan(target)[0]  # the inverse is rebuilt from the value read below
    compensation = open_compensation(drill, fault, target, call, deadline=deadline, step=step)
    previous, call = fault.prepare_inject(target, compensation)
    compensation.previous_value, compensation.previous_read = previous, True
    compensation.call, compensation.inverse = _call_only(call) | {"inverse": None}, call.inverse.as_dict()
    Compensation.objects.filter(pk=compensation.pk).update(
        previous_value=previous, previous_read=True, call=compensation.call, inverse=compensation.inverse,
    )
    event = {"call": _call_only(call), "previous_value": previous}
    # When the call went out (the drill's clock starts at its first injection call).
    compensation.called_at, compensation.called_at_monotonic = timezone.now(), time.monotonic()
    try:
        response = faults.execute(call, target.region)
    except (aws.BotoCoreError, aws.ClientError) as exc:
        _record_ledger_event(
            compensation, "drill.inject_failed", worker=worker,
            before={"state": CompensationState.PENDING.value},
            after={"state": CompensationState.PENDING.value, **event, "inverse": compensation.inverse,
                   "error": str(exc)},
        )
        raise
    inverse = fault.inverse_after(call, response).as_dict()
    now = timezone.now()
    with transaction.atomic():
        if inverse != compensation.inverse:  # FIS: the experiment to stop, whatever the state
            Compensation.objects.filter(pk=compensation.pk).update(inverse=inverse)
            compensation.inverse = inverse
        if Compensation.objects.filter(pk=compensation.pk, state=CompensationState.PENDING).update(
            state=CompensationState.INJECTED, injected_at=now
        ):
            compensation.state, compensation.injected_at = CompensationState.INJECTED, now
        else:  # the reaper took the row while the call was under way; the call was made
            compensation.refresh_from_db(fields=["state", "injected_at"])
        _record_ledger_event(
            compensation, "drill.fault_injected", worker=worker,
            before={"state": CompensationState.PENDING.value},
            after={"state": compensation.state, **event, "inverse": inverse},
        )
    return compensation


def revert(compensation, *, worker="", verify=True):
    """Undo one ledger row: replay its stored inverse, which restores the value read
    before injecting, read it back when `verify`, then close the row with the audit
    event `drill.fault_reverted` (the call made, the verify result) in one transaction.
    An AWS error from the inverse call marks the row `failed` with
    `drill.revert_failed` (the call, the error) and is raised; the row stays open for
    the reaper. An error saying the target no longer exists (`faults.target_gone`: the
    health check, function, parameter... was deleted) closes the row as `gone` with
    `drill.revert_target_gone` and returns what happened: retrying cannot succeed, and
    there is nothing left to revert. A row whose value was never read (the worker stopped before the call)
    closes without a call. Returns "" or, with `verify`, what is wrong after the revert
    (the value read back differs from the one read before injecting, or could not be
    read). Idempotent: a reverted row makes no call and writes nothing."""
    if compensation.state not in OPEN_COMPENSATION_STATES:
        return ""
    fault = faults.get_fault(compensation.fault_kind)
    target = faults.Target.from_dict(compensation.target)
    inverse = faults.Call.from_dict(compensation.inverse)
    before = {"state": compensation.state}
    made = None
    try:
        if compensation.previous_read:
            made = fault.replay_inverse(target, inverse)
    except (aws.BotoCoreError, aws.ClientError) as exc:
        if faults.target_gone(exc):
            return _close_gone(compensation, inverse, exc, worker=worker, before=before)
        with transaction.atomic():
            Compensation.objects.filter(pk=compensation.pk).update(
                state=CompensationState.FAILED, attempts=F("attempts") + 1, last_error=str(exc)[:2000]
            )
            compensation.refresh_from_db()
            _record_ledger_event(
                compensation, "drill.revert_failed", worker=worker, before=before,
                after={"state": compensation.state, "call": _call_only(inverse), "error": str(exc),
                       "attempts": compensation.attempts},
            )
        raise
    verified, problem = None, ""
    if verify:
        try:
            verified = fault.verify_reverted(compensation)
        except (aws.BotoCoreError, aws.ClientError) as exc:
            verified, problem = False, f"could not read the value back after the revert: {exc}"
        else:
            problem = "" if verified else "the value read back after the revert differs from before"
    with transaction.atomic():
        # Recorded even if another process closed the row meanwhile: this call was made.
        Compensation.objects.filter(pk=compensation.pk, state__in=OPEN_COMPENSATION_STATES).update(
            state=CompensationState.REVERTED, reverted_at=timezone.now(), attempts=F("attempts") + 1,
            last_error="",
        )
        compensation.refresh_from_db()
        after = {
            "state": compensation.state,
            "call": _call_only(made) if made else None,
            "restored_value": compensation.previous_value,
            "verified": verified,
        }
        if made is None:
            after["note"] = (
                "nothing to undo: the value was never read, so the call was never made"
                if not compensation.previous_read
                else "nothing to undo: the inverse was no longer needed"
            )
        if problem:
            after["verify_problem"] = problem
        _record_ledger_event(compensation, "drill.fault_reverted", worker=worker, before=before, after=after)
    return problem


def _close_gone(compensation, inverse, exc, *, worker, before):
    """Close a row whose target no longer exists (terminal, audited); -> the problem text."""
    problem = f"target gone, nothing to revert ({faults.error_code(exc)}: {str(exc)[:300]})"
    with transaction.atomic():
        Compensation.objects.filter(pk=compensation.pk, state__in=OPEN_COMPENSATION_STATES).update(
            state=CompensationState.GONE, attempts=F("attempts") + 1, last_error=problem[:2000]
        )
        compensation.refresh_from_db()
        _record_ledger_event(
            compensation, "drill.revert_target_gone", worker=worker, before=before,
            after={"state": compensation.state, "call": _call_only(inverse), "error": str(exc)},
        )
    return problem


def close_ledger_row(compensation_id, actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """An admin closes an open ledger row without reverting it (e.g. its account is gone,
    or it was undone by hand), with a reason: state `closed`, audited as
    `drill.ledger_row_closed`. Returns False when the row was no longer open."""
    if not actor.has_perm("experiments.close_ledger_row"):
        raise PermissionDenied("Closing a ledger row needs the admin role.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the row can be closed without a revert."})
    with transaction.atomic():
        row = Compensation.objects.select_for_update().filter(pk=compensation_id).first()
        if row is None or row.state not in OPEN_COMPENSATION_STATES:
            return False
        before = {"state": row.state}
        Compensation.objects.filter(pk=row.pk).update(
            state=CompensationState.CLOSED, last_error=f"closed by {audit.actor_name(actor)}: {reason}"[:2000]
        )
        row.refresh_from_db()
        audit.record(
            actor, "drill.ledger_row_closed", source=source, obj=row.drill, request_id=request_id,
            before=before,
            after={"state": row.state, "compensation": row.pk, "call": row.call, "inverse": row.inverse,
                   "previous_value": row.previous_value, "reason": reason[:500]},
        )
        add_step(row.drill_id, StepKind.NOTE,
                 f"Ledger row {row.call.get('operation')} closed without a revert by "
                 f"{audit.actor_name(actor)}: {reason}"[:500], {"compensation": row.pk})
    return True


def open_compensations(drill_id):
    return (
        Compensation.objects.filter(drill_id=drill_id, state__in=OPEN_COMPENSATION_STATES)
        .select_related("drill__scenario", "drill__application", "drill__region")
        .order_by("-created_at")
    )


def revert_open(drill_id, *, by="", worker="", verify=True):
    """Revert every open ledger row of the drill, newest first, each to the value read
    before its injection (`revert`: audited, naming `worker`); a timeline step per row,
    its message prefixed with `by`. Used by the runner and the reaper. Returns the
    problems (a failed call, or with `verify` a value that did not come back); the rows
    of failed calls stay open for the reaper's next pass."""
    problems = []
    for compensation in open_compensations(drill_id):
        operation = compensation.call.get("operation")
        try:
            problem = revert(compensation, worker=worker, verify=verify)
        except (aws.BotoCoreError, aws.ClientError) as exc:
            problems.append(f"{compensation}: {exc}")
            add_step(drill_id, StepKind.ERROR, f"{by}Revert of {operation} failed: {exc}"[:500],
                     {"compensation": compensation.pk})
            continue
        if problem:
            problems.append(f"{compensation}: {problem}")
        if compensation.state == CompensationState.GONE:
            add_step(drill_id, StepKind.ERROR, f"{by}Not reverted {operation}: {problem}"[:500],
                     {"compensation": compensation.pk, "state": compensation.state})
            continue
        add_step(drill_id, StepKind.REVERT, f"{by}Reverted {operation}",
                 {"compensation": compensation.pk, "state": compensation.state})
    return problems


# --- halt ------------------------------------------------------------------------------


def halt_state():
    state, _ = HaltState.objects.get_or_create(pk=1)
    return state


def is_halted():
    return HaltState.objects.filter(pk=1, halted=True).exists()


def halt(actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """Turn the halt on; True if it was off."""
    halt_state()
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=False).update(
            halted=True, reason=reason, halted_by=audit.actor_name(actor), halted_at=timezone.now(),
            cleared_by="", cleared_at=None,
        )
        if changed:
            audit.record(actor, "drills.halt", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", after={"halted": True, "reason": reason},
                         request_id=request_id)
    return bool(changed)


def clear_halt(actor, *, source=AuditSource.CONSOLE, request_id=""):
    """Turn the halt off; True if it was on."""
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=True).update(
            halted=False, cleared_by=audit.actor_name(actor), cleared_at=timezone.now()
        )
        if changed:
            audit.record(actor, "drills.clear_halt", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", before={"halted": True},
                         after={"halted": False}, request_id=request_id)
    return bool(changed)
