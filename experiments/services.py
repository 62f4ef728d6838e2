"""The drills service: every change of a drill's state goes through this module.

Requesting (the one place a request is validated: role, halt, architecture, region,
window, the scenario's own rules; one message per field), approving or rejecting,
queueing and dispatching the run message, aborting, taking over a drill whose worker is
gone, halting and clearing the halt, expiring what waited too long.

Every function checks the role, makes its change with a conditional UPDATE
(`transition`: only when the UPDATE changed a row are the audit event and the timeline
step written, in the same transaction), and dispatches work only after the transaction
commits, with ids only. Callers act only on a true result: double clicks and
redelivered tasks then do nothing. Forms and the API parse input and call this module;
Celery tasks, the runner and the reaper call it; AWS changes go through
`experiments.ledger`.
"""

import logging
import socket
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane import audit, events
from controlplane.celery import PUBLISH_ERRORS
from controlplane.celery import app as celery_app
from controlplane.models import AuditSource
from experiments import faults, ledger, plans
from experiments.models import (
    APPROVAL_TTL,
    NOT_STARTED_STATES,
    OPEN_COMPENSATION_STATES,
    RUNNING_STATES,
    SCHEDULED_STATES,
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

log = logging.getLogger(__name__)

# The run message's task (experiments.tasks.run_drill), sent by name.
RUN_DRILL_TASK = "experiments.tasks.run_drill"

# The states whose entry is told to the notification channels (controlplane/events.py).
STATE_EVENTS = {
    DrillState.RUNNING: events.EventKind.DRILL_STARTED,
    DrillState.PASSED: events.EventKind.DRILL_PASSED,
    DrillState.FAILED: events.EventKind.DRILL_FAILED,
    DrillState.INCONCLUSIVE: events.EventKind.DRILL_INCONCLUSIVE,
    DrillState.ABORTED: events.EventKind.DRILL_ABORTED,
    DrillState.ERRORED: events.EventKind.DRILL_ERRORED,
}


def _publish(kind, drill, what):
    """Tell the channels about `drill`: "Drill #3 <scenario> on <app>/<region> <what>"."""
    name = drill.audit_repr()
    summary = f"{name[:1].upper()}{name[1:]} {what}"[:500]
    events.publish(
        kind, summary, drill=drill.pk, state=drill.state, scenario=drill.scenario.slug,
        application=drill.application.name, region=drill.region.code, url=drill.get_absolute_url(),
        reason=drill.outcome_reason,
    )


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
            object_repr=drill.audit_repr(),
            before={"state": list(map(str, from_states))},
            after=after,
            request_id=request_id,
        )
        DrillStep.add(drill_id, StepKind.STATE, f"{to_state.label}", {"state": to_state.value}, at=now)
        if to_state in STATE_EVENTS:
            reason = f": {drill.outcome_reason}" if drill.outcome_reason else ""
            _publish(STATE_EVENTS[to_state], drill, f"{to_state.label.lower()}{reason}")
    return True


# --- request ---------------------------------------------------------------------------


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
    announce=True,
):
    """An operator requests a drill: planned, hashed and created in `requested` (audit
    `drill.requested`), and the channels are told an approval is wanted, unless
    `announce` is false (a schedule or game day about to approve it under its standing
    approval: it calls `announce_request` when that approval does not apply). The one
    validation of a request: raises PermissionDenied, or ValidationError with a message
    per field (the console's form and the API put them on their fields)."""
    if not user.has_perm("experiments.request_drill"):
        raise PermissionDenied("Requesting drills needs the operator role.")
    errors = {}
    if is_halted():
        errors["__all__"] = "Drills are halted; an admin must clear the halt first."
    errors |= request_problems(scenario, application, region, window_start, window_end)
    if window_end and window_end <= timezone.now():
        errors["window_end"] = "The window has already ended."
    if errors:
        raise ValidationError(errors)
    # A scenario saved before a rule existed (or written around the form) is checked
    # again: a check the runner would not evaluate is refused, never ignored.
    validate_scenario(scenario)
    try:
        plan, digest = plans.make_plan(scenario, application, region)
    except faults.FaultError as exc:
        raise ValidationError({"scenario": str(exc)}) from exc
    with transaction.atomic():
        drill = Drill.objects.create(
            scenario=scenario, application=application, region=region, requested_by=user,
            window_start=window_start, window_end=window_end, plan=plan, plan_hash=digest,
        )
        audit.record(
            user, "drill.requested", source=source, obj=drill, request_id=request_id,
            after={"scenario": scenario.slug, "application": application.name, "region": region.code,
                   "plan_hash": digest},
        )
        DrillStep.add(drill.pk, StepKind.PLAN, f"Planned {len(plan['calls'])} call(s)", {"plan_hash": digest})
        if announce:
            announce_request(drill)
    return drill


def announce_request(drill, why=""):
    """Tell the channels that `drill` waits for an approver (APPROVAL_WANTED), and `why`
    when it is not the usual reason (a schedule's plan that changed)."""
    what = f"requested by {audit.actor_name(drill.requested_by)}, waits for approval"
    _publish(events.EventKind.APPROVAL_WANTED, drill, f"{what}: {why}" if why else what)


def request_problems(scenario, application, region, window_start=None, window_end=None):
    """{field: message} for what is wrong with the choices of a drill request, whatever
    the time: the architecture, the region's stack, the window's order; a choice that is
    None (not given, or not understood) is left out. `request` runs it; so does the
    request form, on the choices that parsed, so that its preview and a bad request say
    everything at once."""
    errors = {}
    if scenario and application and not scenario.applies_to(application):
        errors["scenario"] = (
            f"{scenario.name} applies to architecture {scenario.architecture}, not "
            f"{application.name}'s {application.architecture} ({application.get_architecture_display()})."
        )
    if application and region and not application.stacks.filter(region=region).exists():
        errors["region"] = f"{application.name} has no stack in {region.code}."
    if window_start and window_end and window_end <= window_start:
        errors["window_end"] = "The window must end after it starts."
    return errors


# --- approvals ------------------------------------------------------------------------


def why_cannot_decide(drill, user):
    """Why `user` may not approve or reject `drill` ("" when they may): they requested
    it, or they do not hold the approver role. Schedules and game days
    (experiments.schedules, experiments.gamedays) are decided by the same rule: their
    proposer is their `requested_by`."""
    if user.pk == drill.requested_by_id:
        return f"The requester of a {drill._meta.verbose_name} cannot approve or reject it."
    if not user.has_perm("experiments.approve_drill"):
        return "Approving drills needs the approver role."
    return ""


def awaiting_decision_by(user):
    """The drills waiting for `user`'s decision, as `why_cannot_decide` has it:
    requested, not by `user`; none for a user without the approver role. The approvals
    queue and the count in the navigation read this."""
    if not user.has_perm("experiments.approve_drill"):
        return Drill.objects.none()
    return Drill.objects.filter(state=DrillState.REQUESTED).exclude(requested_by_id=user.pk)


def ensure_can_decide(drill, user):
    """Raise PermissionDenied when `user` may not approve or reject `drill`."""
    if why := why_cannot_decide(drill, user):
        raise PermissionDenied(why)


def valid_approval(drill, now=None):
    """The approval that currently authorises the drill's plan, or None: decision
    approve, for the drill's current plan hash, not expired, not by the requester."""
    now = now or timezone.now()
    for approval in Approval.objects.filter(drill_id=drill.pk, decision=Decision.APPROVE):
        if approval.is_valid_for(drill, now):
            return approval
    return None


def plan_changed_message(seen, drill):
    """Why a decision on the plan an approver reviewed (hash `seen`) was refused: the
    console and the API say it alike."""
    return (
        f"The plan changed since you reviewed it (you saw {seen[:12]}…, it is now "
        f"{drill.plan_hash[:12]}…): review the new plan."
    )


def not_waiting_message(drill):
    """Why a decision on a drill that no longer waits for one was refused."""
    return f"Drill #{drill.pk} is {drill.state}: it is no longer waiting for a decision; nothing was done."


def decide(drill, approver, decision, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Record an approver's decision on the drill's current plan and move the drill
    (requested -> approved | rejected). Raises PermissionDenied for the requester or a
    user without `experiments.approve_drill`; returns the Approval, or None when the
    drill was no longer waiting (nothing written)."""
    decision = Decision(decision)
    ensure_can_decide(drill, approver)
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


def approve(drill, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Approve the drill's current plan (bound to its hash) and queue it now, or when its
    window opens. Returns the Approval, or None when the drill was no longer waiting
    for a decision (a double click, a concurrent approval, a changed plan)."""
    if is_halted():
        raise ValidationError("Drills are halted; an admin must clear the halt first.")
    now = timezone.now()
    if reason := too_late_to_approve(drill, now):
        # Not left for beat's sweep: expired now, audited, and the approver told why.
        transition(
            drill.pk, [DrillState.REQUESTED], DrillState.EXPIRED, outcome_reason=reason,
            audit_data={"reason": reason},
        )
        raise ValidationError(f"Drill #{drill.pk} cannot be approved: {reason}. Request it again.")
    with transaction.atomic():
        approval = decide(
            drill, approver, Decision.APPROVE, comment=comment, source=source, request_id=request_id
        )
        if approval is None:
            return None
        drill.refresh_from_db()
        if drill.window_start is None or drill.window_start <= timezone.now():
            _queue(drill.pk, approver, source, request_id)
    return approval


def approval_deadline(drill):
    """When the request can no longer be approved: APPROVAL_TTL after it was made, or
    the end of its window when that comes first."""
    expires = drill.requested_at + APPROVAL_TTL
    return min(expires, drill.window_end) if drill.window_end else expires


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


def reject(drill, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Reject the drill's plan, saying why (the requester reads the comment). Raises
    ValidationError on the comment when there is none (nothing is written); otherwise as
    `decide`."""
    ensure_can_decide(drill, approver)
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": "Say why you reject this plan: the requester reads it."})
    return decide(
        drill, approver, Decision.REJECT, comment=comment, source=source, request_id=request_id
    )


# --- queue and dispatch ---------------------------------------------------------------


def _queue(drill_id, actor, source, request_id=""):
    if transition(
        drill_id, [DrillState.APPROVED], DrillState.QUEUED, actor=actor, source=source, request_id=request_id
    ):
        dispatch_on_commit(drill_id)
        return True
    return False


def dispatch(drill_id):
    """Send the run message for a queued drill. Never raises: when the broker is down
    the drill stays queued and the reaper's pass sends it again later. The message is sent
    by the task's name (the tasks module calls this one, not the other way round)."""
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
        celery_app.send_task(RUN_DRILL_TASK, args=[drill_id], queue=settings.DRILL_QUEUE)
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


def expire_requests(now=None):
    """Beat: queue approved drills whose window opened; expire drills whose approval or
    window ran out, and requests nobody decided on within the approval TTL."""
    now = now or timezone.now()
    queued, expired = [], []
    for drill in Drill.objects.filter(state=DrillState.APPROVED):
        if valid_approval(drill, now) is None:
            reason = "the approval expired or no longer matches the plan"
        elif drill.window_end and drill.window_end <= now:
            reason = "the window ended before the drill could start"
        else:
            if (drill.window_start is None or drill.window_start <= now) and _queue(
                drill.pk, None, AuditSource.SYSTEM
            ):
                queued.append(drill.pk)
            continue
        if transition(
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
        if transition(
            drill_id,
            [DrillState.REQUESTED],
            DrillState.EXPIRED,
            outcome_reason=reason,
            audit_data={"reason": reason},
        ):
            expired.append(drill_id)
    return {"queued": queued, "expired": expired}


# --- abort, take over, halt ------------------------------------------------------------


def abort(drill, actor, *, reason="", source=AuditSource.CONSOLE, request_id=""):
    """Abort a drill. Before it starts, it ends as aborted at once; while it runs, the
    runner sees the request within a tick (0.1 s), reverts and ends as aborted.
    Returns "aborted", "abort requested" or "" (already final)."""
    if not actor.has_perm("experiments.abort_drill"):
        raise PermissionDenied("Aborting drills needs the operator or approver role.")
    reason = (reason or "").strip()[:500] or f"aborted by {audit.actor_name(actor)}"
    if transition(
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
    if take_over(
        drill.pk, final_state=DrillState.ABORTED, reason=f"{reason}; its worker was gone",
        actor=actor, source=source, request_id=request_id,
    ) is not None:
        return "aborted"
    return "abort requested" if changed else ""


def reaper_name():
    """How the reaper names itself in audit events and ledger rows."""
    return f"reaper@{socket.gethostname()}"


def worker_gone(now):
    """Drills whose worker stopped beating: no heartbeat within
    DRILL_HEARTBEAT_TIMEOUT_SECONDS (a Q for Drill querysets)."""
    timeout = timedelta(seconds=settings.DRILL_HEARTBEAT_TIMEOUT_SECONDS)
    return Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True)


def take_over(drill_id, *, now=None, final_state=DrillState.ERRORED, reason="worker lost", actor=None,
              source=None, request_id=""):
    """Claim a live drill whose worker stopped beating (or whose ledger is overdue),
    revert its open ledger rows and end it as `final_state`. Returns the outcome reason,
    or None when it was not ours to take (alive, already claimed, or a revert call
    failed: then it stays live and the reaper's next pass retries). Called by the reaper's
    pass (experiments.reaper) and by `abort`."""
    now = now or timezone.now()
    me = reaper_name()
    overdue = Compensation.objects.filter(
        drill_id=drill_id, state__in=OPEN_COMPENSATION_STATES, deadline__lt=now
    )
    row = Drill.objects.filter(pk=drill_id, state__in=RUNNING_STATES).values(
        "state", "worker"
    ).first()
    if row is None:
        return None
    claimed = Drill.objects.filter(
        worker_gone(now) | Q(pk__in=overdue.values("drill_id")),
        pk=drill_id, state=row["state"], worker=row["worker"],
    ).update(worker=me, heartbeat_at=now)
    if not claimed:
        return None
    problems = ledger.revert_open(drill_id, by="Reaper: ", worker=me, verify=False)
    if Compensation.objects.filter(drill_id=drill_id, state__in=OPEN_COMPENSATION_STATES).exists():
        # A revert call failed: leave it live for the next pass; errors are in the rows.
        log.error("drill %s: %s; revert failed, retrying: %s", drill_id, reason, "; ".join(problems))
        return None
    outcome = f"{reason}, fault reverted" if not problems else f"{reason}; " + "; ".join(problems)
    closed = Compensation.objects.filter(drill_id=drill_id, state=CompensationState.CLOSED).count()
    if closed:
        outcome += f"; {closed} ledger row(s) closed by an admin without a revert"
    transition(
        drill_id,
        RUNNING_STATES,
        final_state,
        actor=actor,
        source=source or AuditSource.SYSTEM,
        request_id=request_id,
        outcome_reason=f"{outcome} (last worker {row['worker'] or 'unknown'})"[:2000],
        audit_data={"reason": outcome[:500], "worker": row["worker"]},
    )
    return outcome


def halt_all(actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """Halt all drills, saying why: running drills abort and revert, new starts are
    refused. Anyone who may abort a drill may (operators, approvers, admins). Audit
    `halt.halted`; True if it was not halted."""
    if not actor.has_perm("experiments.halt_drills"):
        raise PermissionDenied("Halting drills needs the operator, approver or admin role.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why you halt all drills."})
    with transaction.atomic():
        changed = _halt_on(actor, reason, source=source, request_id=request_id)
        for drill in Drill.objects.filter(state__in=RUNNING_STATES, abort_requested_at__isnull=True):
            abort(drill, actor, reason=f"halt: {reason}", source=source, request_id=request_id)
        for drill in Drill.objects.filter(state__in=SCHEDULED_STATES):
            abort(drill, actor, reason=f"halt: {reason}", source=source, request_id=request_id)
    return changed


def halt_state():
    state, _ = HaltState.objects.get_or_create(pk=1)
    return state


def is_halted():
    return HaltState.objects.filter(pk=1, halted=True).exists()


def _halt_on(actor, reason, *, source, request_id):
    """Turn the halt switch on; True if it was off."""
    halt_state()
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=False).update(
            halted=True, reason=reason, halted_by=audit.actor_name(actor), halted_at=timezone.now(),
            cleared_by="", cleared_at=None,
        )
        if changed:
            audit.record(actor, "halt.halted", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", after={"halted": True, "reason": reason},
                         request_id=request_id)
            who = audit.actor_name(actor)
            events.publish(events.EventKind.HALTED, f"Drills halted by {who}: {reason}"[:500],
                           by=who, reason=reason)
    return bool(changed)


def clear_halt(actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """An admin turns the halt off, saying why (audit `halt.cleared` with the reason);
    True if it was on. Raises ValidationError on the reason when there is none (nothing
    changes)."""
    if not actor.has_perm("experiments.clear_halt"):
        raise PermissionDenied("Only an admin can clear the halt.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why drills may run again."})
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=True).update(
            halted=False, cleared_by=audit.actor_name(actor), cleared_at=timezone.now()
        )
        if changed:
            audit.record(actor, "halt.cleared", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", before={"halted": True},
                         after={"halted": False, "reason": reason}, request_id=request_id)
            events.publish(events.EventKind.HALT_CLEARED,
                           f"Halt cleared by {audit.actor_name(actor)}: {reason}"[:500],
                           by=audit.actor_name(actor), reason=reason)
    return bool(changed)
