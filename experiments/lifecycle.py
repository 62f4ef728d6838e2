"""The drill lifecycle as the console and the API drive it: request, approve or reject,
dispatch, abort, halt all, and the scheduler that queues approved drills when their
window opens and expires what waited too long.

Every function checks the role, makes its change with a conditional UPDATE (through
`experiments.services.transition`), writes the audit event, and dispatches work only
after the transaction commits, with ids only.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane import audit
from controlplane.celery import PUBLISH_ERRORS
from controlplane.models import AuditSource
from experiments import faults, services
from experiments.models import (
    APPROVAL_TTL,
    NOT_STARTED_STATES,
    RUNNING_STATES,
    SCHEDULED_STATES,
    Decision,
    Drill,
    DrillState,
    DrillStep,
    StepKind,
)

log = logging.getLogger(__name__)

def dispatch(drill_id):
    """Send the run message for a queued drill. Never raises: when the broker is down
    the drill stays queued and the reaper's pass sends it again later."""
    from experiments.tasks import run_drill

    now = timezone.now()
    resend_before = now - timedelta(seconds=settings.DRILL_REDISPATCH_AFTER_SECONDS)
    claimed = (
        Drill.objects.filter(pk=drill_id, state=DrillState.QUEUED)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before))
        .update(dispatched_at=now)
    )
    if not claimed:
        return False
    try:
        # Publish timeouts and the retry policy are the app's (settings: a silent broker
        # costs this call ~2 x CONTROLPLANE_BROKER_TIMEOUT, not minutes).
        run_drill.apply_async(args=[drill_id], queue=settings.DRILL_QUEUE)
    except PUBLISH_ERRORS as exc:
        log.warning("drill %s: dispatch failed (%s); will retry", drill_id, exc)
        Drill.objects.filter(pk=drill_id, state=DrillState.QUEUED).update(dispatched_at=None)
        DrillStep.add(
            drill_id,
            StepKind.NOTE,
            f"The task broker did not take the run message ({type(exc).__name__}); kept queued, "
            "it is sent again when the broker is back",
        )
        return False
    return True


def waiting_for_broker(drill):
    """Whether a queued drill's run message was not taken by the broker (dispatch resets
    `dispatched_at` when the publish fails; the reaper sends it again). Read it after the
    transaction that queued the drill has committed, when its dispatch has run."""
    return drill.state == DrillState.QUEUED and drill.dispatched_at is None


def dispatch_on_commit(drill_id):
    transaction.on_commit(lambda: dispatch(drill_id))


def request(
    *,
    user,
    scenario,
    application,
    region,
    window_start=None,
    window_end=None,
    source=AuditSource.CONSOLE,
    request_id="",
):
    """An operator requests a drill. Raises PermissionDenied or ValidationError (with a
    message per field); returns the Drill in `requested`."""
    if not user.has_perm("experiments.request_drill"):
        raise PermissionDenied("Requesting drills needs the operator role.")
    errors = {}
    if services.is_halted():
        errors["__all__"] = "Drills are halted; an admin must clear the halt first."
    if not scenario.applies_to(application):
        errors["scenario"] = (
            f"{scenario.name} applies to architecture {scenario.architecture}, "
            f"not {application.name}'s {application.architecture}."
        )
    if not application.stacks.filter(region=region).exists():
        errors["region"] = f"{application.name} has no stack in {region.code}."
    if window_start and window_end and window_end <= window_start:
        errors["window_end"] = "The window must end after it starts."
    if window_end and window_end <= timezone.now():
        errors["window_end"] = "The window has already ended."
    if errors:
        raise ValidationError(errors)
    try:
        return services.request_drill(
            scenario=scenario,
            application=application,
            region=region,
            requested_by=user,
            window_start=window_start,
            window_end=window_end,
            source=source,
            request_id=request_id,
        )
    except faults.FaultError as exc:
        raise ValidationError({"scenario": str(exc)}) from exc


def approve(drill, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Approve the drill's current plan (bound to its hash) and queue it now, or when its
    window opens. Returns the Approval, or None when the drill was no longer waiting
    for a decision (a double click, a concurrent approval, a changed plan)."""
    if services.is_halted():
        raise ValidationError("Drills are halted; an admin must clear the halt first.")
    now = timezone.now()
    if reason := too_late_to_approve(drill, now):
        # Not left for beat's sweep: expired now, audited, and the approver told why.
        services.transition(
            drill.pk, [DrillState.REQUESTED], DrillState.EXPIRED, outcome_reason=reason,
            audit_data={"reason": reason},
        )
        raise ValidationError(f"Drill #{drill.pk} cannot be approved: {reason}. Request it again.")
    with transaction.atomic():
        approval = services.decide(
            drill, approver, Decision.APPROVE, comment=comment, source=source, request_id=request_id
        )
        if approval is None:
            return None
        drill.refresh_from_db()
        if drill.window_start is None or drill.window_start <= timezone.now():
            _queue(drill.pk, approver, source, request_id)
    return approval


def too_late_to_approve(drill, now):
    """Why the drill can no longer be approved ('' when it can): the request waited
    longer than APPROVAL_TTL, or its window has ended."""
    if drill.requested_at and drill.requested_at < now - APPROVAL_TTL:
        return (
            f"the request is older than {APPROVAL_TTL.total_seconds() / 3600:g} h "
            f"(requested {drill.requested_at:%Y-%m-%d %H:%M} UTC) and has expired"
        )
    if drill.window_end and drill.window_end <= now:
        return f"its window ended at {drill.window_end:%Y-%m-%d %H:%M} UTC"
    return ""


def _queue(drill_id, actor, source, request_id=""):
    if services.transition(
        drill_id, [DrillState.APPROVED], DrillState.QUEUED, actor=actor, source=source, request_id=request_id
    ):
        dispatch_on_commit(drill_id)
        return True
    return False


def reject(drill, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    return services.decide(
        drill, approver, Decision.REJECT, comment=comment, source=source, request_id=request_id
    )


def abort(drill, actor, *, reason="", source=AuditSource.CONSOLE, request_id=""):
    """Abort a drill. Before it starts, it ends as aborted at once; while it runs, the
    runner sees the request within a tick (0.1 s), reverts and ends as aborted.
    Returns "aborted", "abort requested" or "" (already final)."""
    if not actor.has_perm("experiments.abort_drill"):
        raise PermissionDenied("Aborting drills needs the operator or approver role.")
    reason = (reason or "").strip()[:500] or f"aborted by {audit.actor_name(actor)}"
    if services.transition(
        drill.pk,
        NOT_STARTED_STATES,
        DrillState.ABORTED,
        actor=actor,
        source=source,
        request_id=request_id,
        outcome_reason=reason,
        audit_data={"reason": reason},
    ):
        return "aborted"
    with transaction.atomic():
        changed = Drill.objects.filter(
            pk=drill.pk, state__in=RUNNING_STATES, abort_requested_at__isnull=True
        ).update(abort_requested_at=timezone.now(), abort_reason=reason)
        if changed:
            audit.record(
                actor,
                "drill.abort_requested",
                source=source,
                obj=drill,
                after={"reason": reason},
                request_id=request_id,
            )
            DrillStep.add(drill.pk, StepKind.NOTE, f"Abort requested: {reason}")
    # A drill whose worker is gone would never see the request: revert and end it now,
    # as the reaper would (the request stays on record if a revert call fails).
    from experiments import reaper

    if reaper.take_over(
        drill.pk, final_state=DrillState.ABORTED, reason=f"{reason}; its worker was gone",
        actor=actor, source=source, request_id=request_id,
    ) is not None:
        return "aborted"
    return "abort requested" if changed else ""


def halt_all(actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """Any operator may halt: running drills abort and revert, new starts are refused."""
    if not actor.has_perm("experiments.halt_drills"):
        raise PermissionDenied("Halting drills needs the operator role.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why you halt all drills."})
    with transaction.atomic():
        changed = services.halt(actor, reason, source=source, request_id=request_id)
        for drill in Drill.objects.filter(state__in=RUNNING_STATES, abort_requested_at__isnull=True):
            abort(drill, actor, reason=f"halt: {reason}", source=source, request_id=request_id)
        for drill in Drill.objects.filter(state__in=SCHEDULED_STATES):
            abort(drill, actor, reason=f"halt: {reason}", source=source, request_id=request_id)
    return changed


def clear_halt(actor, *, source=AuditSource.CONSOLE, request_id=""):
    if not actor.has_perm("experiments.clear_halt"):
        raise PermissionDenied("Only an admin can clear the halt.")
    return services.clear_halt(actor, source=source, request_id=request_id)


def expire_requests(now=None):
    """Beat: queue approved drills whose window opened; expire drills whose approval or
    window ran out, and requests nobody decided on within the approval TTL."""
    now = now or timezone.now()
    queued, expired = [], []
    for drill in Drill.objects.filter(state=DrillState.APPROVED):
        if services.valid_approval(drill, now) is None:
            reason = "the approval expired or no longer matches the plan"
        elif drill.window_end and drill.window_end <= now:
            reason = "the window ended before the drill could start"
        else:
            if (drill.window_start is None or drill.window_start <= now) and _queue(
                drill.pk, None, AuditSource.SYSTEM
            ):
                queued.append(drill.pk)
            continue
        if services.transition(
            drill.pk,
            [DrillState.APPROVED],
            DrillState.EXPIRED,
            outcome_reason=reason,
            audit_data={"reason": reason},
        ):
            expired.append(drill.pk)
    stale = Drill.objects.filter(state=DrillState.REQUESTED, requested_at__lt=now - APPROVAL_TTL)
    for drill_id in stale.values_list("pk", flat=True):
        reason = f"no decision within {APPROVAL_TTL}"
        if services.transition(
            drill_id,
            [DrillState.REQUESTED],
            DrillState.EXPIRED,
            outcome_reason=reason,
            audit_data={"reason": reason},
        ):
            expired.append(drill_id)
    return {"queued": queued, "expired": expired}
