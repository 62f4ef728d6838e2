"""The compensation ledger: every AWS change a drill makes, and its undoing.

This module owns `Compensation` rows. `inject` writes the row *before* the call (so a
worker killed between the two leaves a row the reaper can act on), reads the value the
call will overwrite into it, makes the call, then moves the row to `injected` and
writes the audit event in one transaction; `revert` replays the stored inverse and
closes the row the same way (`reverted`, `failed` and retried, or `gone` when the target
no longer exists); `revert_open` reverts a drill's open rows newest first for the runner
and the reaper; `close_ledger_row` is an admin's way out, audited. The AWS side (what
to call, what undoes it) is the fault library's; the credentials of a target's region
are read here, from the inventory, and passed to it.
"""

import time

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit, aws
from controlplane.models import AuditSource
from experiments import faults
from experiments.models import OPEN_COMPENSATION_STATES, Compensation, CompensationState, DrillStep, StepKind
from regions.models import Region


def credentials_for(region_code):
    """The credentials AWS is called with for a region: the role and external id of its
    inventory row, or the default credentials for a region not in the inventory."""
    region = Region.objects.filter(code=region_code).first()
    if region is None:
        return faults.Credentials()
    return faults.Credentials(region.role_arn, region.external_id)


def _target(compensation):
    """The row's target, with the credentials of its region as they are now."""
    target = faults.Target.from_dict(compensation.target)
    return target.with_credentials(credentials_for(target.region))


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
        object_repr=drill.audit_repr(),
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
    target = target.with_credentials(credentials_for(target.region))
    call = fault.plan(target)[0]  # the inverse is rebuilt from the value read below
    compensation = open_compensation(drill, fault, target, call, deadline=deadline, step=step)
    key = f"drill-{compensation.drill_id}-compensation-{compensation.pk}"
    previous, call = fault.prepare_inject(target, key)
    compensation.previous_value, compensation.previous_read = previous, True
    compensation.call, compensation.inverse = _call_only(call) | {"inverse": None}, call.inverse.as_dict()
    Compensation.objects.filter(pk=compensation.pk).update(
        previous_value=previous, previous_read=True, call=compensation.call, inverse=compensation.inverse,
    )
    event = {"call": _call_only(call), "previous_value": previous}
    # When the call went out (the drill's clock starts at its first injection call).
    compensation.called_at, compensation.called_at_monotonic = timezone.now(), time.monotonic()
    try:
        response = faults.execute(call, target.credentials)
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
    target = _target(compensation)
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
            verified = verify_reverted(compensation, target)
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


def verify_reverted(compensation, target=None):
    """True when the row's target holds again the value read before injecting (read
    now); a row whose value was never read was never called, so nothing changed."""
    if not compensation.previous_read:
        return True
    fault = faults.get_fault(compensation.fault_kind)
    inverse = faults.Call.from_dict(compensation.inverse)
    return fault.verify_reverted(target or _target(compensation), compensation.previous_value, inverse)


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
        DrillStep.add(row.drill_id, StepKind.NOTE,
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
            DrillStep.add(drill_id, StepKind.ERROR, f"{by}Revert of {operation} failed: {exc}"[:500],
                          {"compensation": compensation.pk})
            continue
        if problem:
            problems.append(f"{compensation}: {problem}")
        if compensation.state == CompensationState.GONE:
            DrillStep.add(drill_id, StepKind.ERROR, f"{by}Not reverted {operation}: {problem}"[:500],
                               {"compensation": compensation.pk, "state": compensation.state})
            continue
        DrillStep.add(drill_id, StepKind.REVERT, f"{by}Reverted {operation}",
                      {"compensation": compensation.pk, "state": compensation.state})
    return problems


