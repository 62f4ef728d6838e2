"""Game days: an ordered list of drills, approved once, run one after the other.

An operator proposes one (steps: scenario, application, region; a pause between steps;
whether to go on after a drill that did not pass): each step is planned now and the
game day's hash is the hash of its steps' plan hashes, which an approver other than the
proposer signs (the drills' four-eyes rule, `services.why_cannot_decide`).

Beat drives it from the database (`advance_all`, every GAMEDAY_TICK_SECONDS), so a
worker or beat restart loses nothing: each pass locks the game day's row and moves its
state machine at most one step forward, idempotently. A step's drill goes through the
drills service like any other: `services.request` plans it afresh, and only while that
plan hashes as the step's approved plan does `services.approve` approve it, in the game
day approver's name, "approved as step N of game day #M". A changed plan stops the game
day at that step, waiting for a new approval (its steps planned again for the
approver to review); a drill that did not pass stops it unless `continue_on_failure`;
the halt stops it ("halted"; the halt itself aborts the running drill).
"""

import hashlib
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane import audit, aws
from controlplane.models import AuditSource
from experiments import faults, plans, services
from experiments.models import (
    GAMEDAY_DECIDABLE_STATES,
    GAMEDAY_FINAL_STATES,
    NOT_STARTED_STATES,
    DrillState,
    GameDay,
    GameDayState,
    GameDayStep,
)
from experiments.scenarios import validate_scenario

MAX_STEPS = 20
MAX_PAUSE_SECONDS = 3600
# A plan that cannot be made: the step cannot run (the fault library's refusal, an AWS read).
PLAN_ERRORS = (faults.FaultError, aws.BotoCoreError, aws.ClientError)


def combined_hash(step_hashes):
    """The game day's plan hash: SHA-256 of its steps' plan hashes, in order."""
    return hashlib.sha256("\n".join(step_hashes).encode()).hexdigest()


def _record(actor, action, game_day, *, source=AuditSource.SYSTEM, request_id="", before=None, after=None):
    audit.record(actor, action, source=source, obj=game_day, object_repr=str(game_day)[:200],
                 before=before, after=after, request_id=request_id)


# --- propose ---------------------------------------------------------------------------


def propose(*, user, name, steps, pause_seconds=0, continue_on_failure=False,
            source=AuditSource.CONSOLE, request_id=""):
    """An operator proposes a game day: `steps` is a list of (scenario, application,
    region), in order. The one validation of a proposal: raises PermissionDenied, or
    ValidationError with a message per field ("steps" holds one per step that cannot
    run, named by its number); nothing is written then."""
    if not user.has_perm("experiments.request_drill"):
        raise PermissionDenied("Proposing game days needs the operator role.")
    errors = {}
    if services.is_halted():
        errors["__all__"] = "Drills are halted; an admin must clear the halt first."
    name = (name or "").strip()
    if not name:
        errors["name"] = "Name the game day."
    elif len(name) > GameDay._meta.get_field("name").max_length:
        errors["name"] = f"At most {GameDay._meta.get_field('name').max_length} characters."
    if not isinstance(pause_seconds, int) or isinstance(pause_seconds, bool) or not (
        0 <= pause_seconds <= MAX_PAUSE_SECONDS
    ):
        errors["pause_seconds"] = f"Whole seconds from 0 to {MAX_PAUSE_SECONDS}."
    if not steps:
        errors["steps"] = "Add at least one step: a scenario, an application and a region."
    elif len(steps) > MAX_STEPS:
        errors["steps"] = f"At most {MAX_STEPS} steps."
    else:
        planned, problems = _plan_steps(steps)
        if problems:
            errors["steps"] = problems
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        game_day = GameDay.objects.create(
            name=name, requested_by=user, pause=timedelta(seconds=pause_seconds),
            continue_on_failure=continue_on_failure,
            plan_hash=combined_hash([digest for *_, digest in planned]),
        )
        GameDayStep.objects.bulk_create(
            GameDayStep(game_day=game_day, position=n, scenario=scenario, application=application,
                        region=region, plan=plan, plan_hash=digest)
            for n, (scenario, application, region, plan, digest) in enumerate(planned, start=1)
        )
        _record(user, "gameday.proposed", game_day, source=source, request_id=request_id, after={
            "name": name, "pause_seconds": pause_seconds, "continue_on_failure": continue_on_failure,
            "plan_hash": game_day.plan_hash,
            "steps": [f"{s.slug} on {a.name}/{r.code}" for s, a, r, *_ in planned],
        })
    return game_day


def _plan_steps(steps):
    """([(scenario, application, region, plan, hash)], [problem per step])."""
    planned, problems = [], []
    for n, (scenario, application, region) in enumerate(steps, start=1):
        wrong = services.request_problems(scenario, application, region)
        if not wrong:
            try:
                validate_scenario(scenario)
                plan, digest = plans.make_plan(scenario, application, region)
            except ValidationError as exc:
                wrong = {"scenario": " ".join(exc.messages)}
            except PLAN_ERRORS as exc:
                wrong = {"scenario": f"cannot plan: {exc}"}
            else:
                planned.append((scenario, application, region, plan, digest))
        problems.extend(f"Step {n}: {message}" for message in wrong.values())
    return planned, problems


# --- decide ----------------------------------------------------------------------------


def why_cannot_decide(game_day, user):
    """The drills' four-eyes rule: the proposer may not decide; only an approver may."""
    return services.why_cannot_decide(game_day, user)


def plan_changed_message(seen, game_day):
    return (
        f"The game day's plans changed since you reviewed them (you saw {seen[:12]}…, they are "
        f"now {game_day.plan_hash[:12]}…): review them again."
    )


def not_waiting_message(game_day):
    return (f"Game day #{game_day.pk} is {game_day.get_state_display().lower()}: it is not waiting "
            "for a decision; nothing was done.")


def approve(game_day, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Approve the game day's plans as they hash now (`game_day.plan_hash`, what the
    approver reviewed) and start it, or resume it at the step it waits at. Returns True,
    or False when it was no longer waiting for a decision or its plans changed."""
    if why := why_cannot_decide(game_day, approver):
        raise PermissionDenied(why)
    if services.is_halted():
        raise ValidationError("Drills are halted; an admin must clear the halt first.")
    now = timezone.now()
    with transaction.atomic():
        row = GameDay.objects.select_for_update().filter(pk=game_day.pk).values("state", "started_at").first()
        changed = GameDay.objects.filter(
            pk=game_day.pk, state__in=GAMEDAY_DECIDABLE_STATES, plan_hash=game_day.plan_hash
        ).update(
            state=GameDayState.RUNNING, approved_hash=game_day.plan_hash, approved_by=approver,
            approved_at=now, decision_comment=comment, reason="", next_start_at=now,
            started_at=(row or {}).get("started_at") or now,
        )
        if not changed:
            return False
        game_day.refresh_from_db()
        _record(approver, "gameday.approved", game_day, source=source, request_id=request_id,
                before={"state": row["state"]}, after={"plan_hash": game_day.plan_hash, "comment": comment})
        _record(approver, "gameday.started", game_day, source=source, request_id=request_id,
                after={"state": GameDayState.RUNNING.value, "from_step": game_day.current})
    return True


def reject(game_day, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Reject the game day, saying why (ValidationError on the comment without one).
    True if it was waiting for a decision."""
    if why := why_cannot_decide(game_day, approver):
        raise PermissionDenied(why)
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": "Say why you reject this game day: the proposer reads it."})
    with transaction.atomic():
        changed = GameDay.objects.filter(pk=game_day.pk, state__in=GAMEDAY_DECIDABLE_STATES).update(
            state=GameDayState.REJECTED, decision_comment=comment, reason=f"rejected: {comment}",
            finished_at=timezone.now(),
        )
        if changed:
            _record(approver, "gameday.rejected", game_day, source=source, request_id=request_id,
                    after={"comment": comment, "plan_hash": game_day.plan_hash})
    return bool(changed)


def abort(game_day, actor, *, reason="", source=AuditSource.CONSOLE, request_id=""):
    """Stop a game day that has not ended; its running drill, if any, is aborted as
    any drill is (services.abort). True if this call stopped it."""
    if not actor.has_perm("experiments.abort_drill"):
        raise PermissionDenied("Aborting game days needs the operator or approver role.")
    reason = (reason or "").strip()[:500]
    why = f"aborted by {audit.actor_name(actor)}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        locked = GameDay.objects.select_for_update().filter(pk=game_day.pk).first()
        if locked is None or not _stop(locked, why, actor=actor, source=source, request_id=request_id):
            return False
        step = locked.steps.filter(position=locked.current, drill__isnull=False).select_related(
            "drill", "drill__scenario", "drill__application", "drill__region").first()
        if step is not None and not step.drill.is_final:
            services.abort(step.drill, actor, reason=f"game day #{locked.pk} {why}"[:500], source=source,
                           request_id=request_id)
    return True


def _stop(game_day, reason, *, actor=None, source=AuditSource.SYSTEM, request_id="",
          to_state=GameDayState.STOPPED):
    """Stop (or, with WAITING, pause) a game day that is not final: the conditional
    UPDATE, then the audit event `gameday.stopped` with the reason."""
    before = game_day.state
    changed = GameDay.objects.filter(pk=game_day.pk, state=before).exclude(
        state__in=GAMEDAY_FINAL_STATES
    ).update(state=to_state, reason=reason[:2000],
             finished_at=timezone.now() if to_state == GameDayState.STOPPED else None)
    if changed:
        game_day.state, game_day.reason = to_state, reason
        _record(actor, "gameday.stopped", game_day, source=source, request_id=request_id,
                before={"state": before}, after={"state": to_state.value, "reason": reason[:500],
                                                 "step": game_day.current})
    return bool(changed)


# --- run -------------------------------------------------------------------------------


def advance_all(now=None):
    """Beat: move every running game day on ({id: what happened})."""
    running = GameDay.objects.filter(state=GameDayState.RUNNING).values_list("pk", flat=True)
    return {pk: advance(pk, now=now) for pk in list(running)}


def advance(game_day_id, now=None):
    """One pass of a running game day's state machine, under its row's lock: stop it
    if drills are halted; start the current step once its pause is over; once the
    step's drill has ended, go on to the next step, stop or finish. Returns what it did
    ("" when it is not running); a second pass at the same moment does nothing more."""
    now = now or timezone.now()
    with transaction.atomic():
        running = GameDay.objects.select_for_update(of=("self",)).filter(
            pk=game_day_id, state=GameDayState.RUNNING
        )
        game_day = running.select_related("requested_by", "approved_by").first()
        if game_day is None:
            return ""
        if services.is_halted():
            _stop(game_day, f"halted: {services.halt_state().reason}")
            return "stopped: halted"
        step = game_day.steps.select_related("scenario", "application", "region", "drill").get(
            position=game_day.current
        )
        if step.drill is None:
            if game_day.next_start_at and game_day.next_start_at > now:
                return "pausing"
            return _start(game_day, step)
        if not step.drill.is_final:
            return "running"
        return _step_ended(game_day, step, now)


def _start(game_day, step):
    """Request the step's drill and approve it with the game day's approval, if its
    fresh plan is the one approved; otherwise wait for a new approval."""
    n = step.position
    try:
        plan, digest = plans.make_plan(step.scenario, step.application, step.region)
    except PLAN_ERRORS as exc:
        _stop(game_day, f"step {n} cannot be planned: {exc}")
        return "stopped: cannot plan"
    if digest != step.plan_hash:
        return _wait(game_day, step, plan, digest)
    try:
        drill = services.request(user=game_day.requested_by, scenario=step.scenario,
                                 application=step.application, region=step.region,
                                 source=AuditSource.SYSTEM, announce=False)
    except (ValidationError, PermissionDenied) as exc:
        _stop(game_day, f"step {n}'s drill could not be requested: {' '.join(_messages(exc))}")
        return "stopped: not requested"
    if drill.plan_hash != step.plan_hash:  # it changed between our plan and the request's
        _end_unapproved(drill, f"its plan changed since game day #{game_day.pk} was approved")
        return _wait(game_day, step, drill.plan, drill.plan_hash)
    GameDayStep.objects.filter(pk=step.pk, drill__isnull=True).update(drill=drill)
    _record(None, "gameday.step_started", game_day, after={
        "step": n, "drill": drill.pk, "plan_hash": drill.plan_hash,
        "target": f"{step.scenario.slug} on {step.application.name}/{step.region.code}",
    })
    approver = game_day.approved_by
    comment = f"approved as step {n} of game day #{game_day.pk} by {audit.actor_name(approver)}"
    try:
        approved = services.approve(drill, approver, comment=comment, source=AuditSource.SYSTEM)
    except (ValidationError, PermissionDenied) as exc:
        approved, problem = None, " ".join(_messages(exc))
    else:
        problem = "it was no longer waiting for a decision"
    if approved is None:
        _end_unapproved(drill, f"not approved as step {n} of game day #{game_day.pk}: {problem}")
        _stop(game_day, f"step {n}'s drill #{drill.pk} could not be approved: {problem}")
        return "stopped: not approved"
    return "step started"


def _messages(exc):
    return exc.messages if isinstance(exc, ValidationError) else [str(exc) or "permission denied"]


def _end_unapproved(drill, reason):
    """A step's drill that will not run ends at once as aborted, saying why."""
    services.transition(drill.pk, NOT_STARTED_STATES, DrillState.ABORTED, outcome_reason=reason,
                        audit_data={"reason": reason})


def _wait(game_day, step, plan, digest):
    """The current step's plan changed: store the fresh plans of the steps left (what
    the approver will review), stop at this step and wait for a new approval."""
    changed = [key for key, *_ in plans.plan_diff(step.plan, plan)]
    rest = list(game_day.steps.filter(position__gte=step.position).select_related(
        "scenario", "application", "region"))
    for later in rest:
        if later.pk == step.pk:
            later.plan, later.plan_hash = plan, digest
        else:
            try:
                later.plan, later.plan_hash = plans.make_plan(later.scenario, later.application, later.region)
            except PLAN_ERRORS as exc:
                _stop(game_day, f"step {later.position} cannot be planned: {exc}")
                return "stopped: cannot plan"
        GameDayStep.objects.filter(pk=later.pk).update(plan=later.plan, plan_hash=later.plan_hash)
    hashes = list(game_day.steps.order_by("position").values_list("plan_hash", flat=True))
    GameDay.objects.filter(pk=game_day.pk).update(plan_hash=combined_hash(hashes))
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    _stop(game_day, f"step {step.position}'s plan changed since the approval ({shown or 'its hash'}): "
                    "waiting for a new approval of the game day", to_state=GameDayState.WAITING)
    return "waiting: plan changed"


def _step_ended(game_day, step, now):
    drill, n = step.drill, step.position
    last = not game_day.steps.filter(position__gt=n).exists()
    if drill.state != DrillState.PASSED and not game_day.continue_on_failure:
        why = f": {drill.outcome_reason}" if drill.outcome_reason else ""
        _stop(game_day, f"step {n} (drill #{drill.pk}) {drill.state}{why}"[:2000])
        return "stopped: step did not pass"
    if last:
        states = list(game_day.steps.order_by("position").values_list("drill__state", flat=True))
        passed = states.count(DrillState.PASSED)
        reason = f"{passed} of {len(states)} drills passed"
        if GameDay.objects.filter(pk=game_day.pk, state=GameDayState.RUNNING).update(
            state=GameDayState.FINISHED, reason=reason, finished_at=now
        ):
            _record(None, "gameday.finished", game_day, after={"reason": reason, "states": states})
        return "finished"
    GameDay.objects.filter(pk=game_day.pk, state=GameDayState.RUNNING, current=n).update(
        current=n + 1, next_start_at=(drill.finished_at or now) + game_day.pause
    )
    return "next step"


def version(game_day_id):
    """What the game day page's live part shows, cheaply (controlplane.rendering.polled):
    the game day's row and each step's drill state, figures and newest timeline row.
    None when there is no such game day."""
    row = GameDay.objects.filter(pk=game_day_id).values_list(
        "state", "current", "reason", "plan_hash", "approved_hash", "next_start_at").first()
    if row is None:
        return None
    steps = list(GameDayStep.objects.filter(game_day_id=game_day_id).order_by("position").values_list(
        "plan_hash", "drill_id", "drill__state", "drill__finished_at", "drill__abort_requested_at"))
    return [row, steps]
