"""Drills on a schedule under a standing approval: every change of a schedule, and the
beat pass that turns its due times into drills.

An operator proposes a schedule (scenario, application, one region or each region in
turn, five cron fields read in a time zone, a run window, an expiry at most
SCHEDULE_MAX_LIFETIME out); its plans are made then, one per region, and their hashes
are what an approver approves, once, under the four-eyes rule of a drill
(services.why_cannot_decide: the proposer cannot approve). Each due time then requests
a drill through the drills service, as an operator would; while that drill's freshly
made plan hashes as approved, it is approved by the schedule's standing approval (the
decision names it); otherwise it waits for an approver and says why. A due time that
cannot run (missed while beat was down, outside its run window, the halt on, the
request refused) is recorded as skipped with the reason (`record_skip`), never run
late: one drill at most per pass, for the latest due time.

Roles: proposing needs a drill's request permission, approving a drill's approval,
pausing and resuming a drill's abort (whoever may stop a drill may stop its schedule).
"""

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from controlplane import audit, events
from controlplane.models import AuditSource
from experiments import faults, plans, services
from experiments.models import (
    SCHEDULE_MAX_LIFETIME,
    DrillStep,
    OccurrenceState,
    Schedule,
    ScheduleOccurrence,
    ScheduleState,
    StepKind,
)
from experiments.scenarios import validate_scenario
from regions.models import Region

log = logging.getLogger(__name__)

MIN_RUN_WINDOW = timedelta(minutes=1)
MAX_RUN_WINDOW = timedelta(hours=24)
# Due times missed in one stretch that are recorded one by one; older ones are counted
# in the oldest recorded row's reason (a minutely schedule with beat down for a week).
MAX_MISSED_RECORDED = 20


def _zone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recurrence_problems(cron, time_zone, run_window, expires_at, now):
    """{field: message} for what is wrong with a schedule's timing."""
    errors = {}
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        errors["cron"] = (
            f"{cron!r} is not a cron expression of five fields (minute hour day-of-month month "
            'day-of-week), e.g. "0 3 * * 1" for Mondays at 03:00.'
        )
    if _zone(time_zone) is None:
        errors["time_zone"] = f"{time_zone!r} is not a time zone name such as UTC or Europe/Berlin."
    if not MIN_RUN_WINDOW <= run_window <= MAX_RUN_WINDOW:
        errors["run_window"] = "The run window must be between 1 minute and 24 hours."
    if expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    elif expires_at > now + SCHEDULE_MAX_LIFETIME:
        errors["expires_at"] = (
            f"A schedule may run at most {SCHEDULE_MAX_LIFETIME.days} days: expire it by "
            f"{now + SCHEDULE_MAX_LIFETIME:%Y-%m-%d %H:%M} UTC and propose it again then."
        )
    return errors


def target_regions(application, region):
    """The regions a schedule runs in, by code: `region`, or each of the application's."""
    if region is not None:
        return [region]
    return list(Region.objects.filter(stacks__application=application).order_by("code"))


def plan_digest(hashes):
    """One hash of a schedule's {region: plan hash}: what its page shows and the API's
    approve compares with the `plan_hash` the approver reviewed."""
    return faults.plan_hash(hashes)


def propose(*, user, scenario, application, region, cron, time_zone, run_window, expires_at,
            source=AuditSource.CONSOLE, request_id=""):
    """An operator proposes a schedule: validated (one message per field), its plans made
    and hashed per region, created `proposed` (audit `schedule.proposed`). Raises
    PermissionDenied or ValidationError."""
    if not user.has_perm("experiments.request_drill"):
        raise PermissionDenied("Proposing a schedule needs the operator role.")
    cron = " ".join((cron or "").split())
    errors = services.request_problems(scenario, application, region)
    errors |= recurrence_problems(cron, time_zone, run_window, expires_at, timezone.now())
    regions = target_regions(application, region) if application else []
    if application and not regions:
        errors["region"] = f"{application.name} has no stack to drill."
    if errors:
        raise ValidationError(errors)
    validate_scenario(scenario)
    try:
        hashes = {r.code: plans.make_plan(scenario, application, r)[1] for r in regions}
    except faults.FaultError as exc:
        raise ValidationError({"scenario": str(exc)}) from exc
    with transaction.atomic():
        schedule = Schedule.objects.create(
            scenario=scenario, application=application, region=region, cron=cron, time_zone=time_zone,
            run_window=run_window, expires_at=expires_at, plan_hashes=hashes, requested_by=user,
        )
        audit.record(
            user, "schedule.proposed", source=source, obj=schedule, object_repr=schedule.audit_repr(),
            request_id=request_id,
            after={"cron": cron, "time_zone": time_zone, "run_window_seconds": run_window.total_seconds(),
                   "expires_at": expires_at.isoformat(), "plan_hashes": hashes},
        )
    return schedule


def approve(schedule, approver, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Approve a proposed schedule once, bound to the plan hashes proposed (audit
    `schedule.approved`). The four-eyes rule is a drill's (services.ensure_can_decide).
    True if this call approved it; False when it was no longer proposed."""
    services.ensure_can_decide(schedule, approver)
    now = timezone.now()
    if schedule.expires_at <= now:
        raise ValidationError(f"Schedule #{schedule.pk} expired at {schedule.expires_at:%Y-%m-%d %H:%M} UTC.")
    with transaction.atomic():
        changed = Schedule.objects.filter(pk=schedule.pk, state=ScheduleState.PROPOSED).update(
            state=ScheduleState.APPROVED, approved_hashes=schedule.plan_hashes, approved_by=approver,
            approved_at=now, active_since=now, approval_comment=comment,
        )
        if changed:
            audit.record(
                approver, "schedule.approved", source=source, obj=schedule, object_repr=schedule.audit_repr(),
                request_id=request_id, before={"state": ScheduleState.PROPOSED},
                after={"state": ScheduleState.APPROVED, "plan_hashes": schedule.plan_hashes,
                       "comment": comment},
            )
    return bool(changed)


def _switch(schedule, actor, action, from_state, to_state, *, reason, source, request_id, **fields):
    if not actor.has_perm("experiments.abort_drill"):
        raise PermissionDenied("Pausing and resuming schedules needs the operator, approver or admin role.")
    with transaction.atomic():
        changed = Schedule.objects.filter(pk=schedule.pk, state=from_state).update(state=to_state, **fields)
        if changed:
            audit.record(
                actor, action, source=source, obj=schedule, object_repr=schedule.audit_repr(),
                request_id=request_id, before={"state": from_state},
                after={"state": to_state, "reason": reason},
            )
    return bool(changed)


def pause(schedule, actor, *, reason="", source=AuditSource.CONSOLE, request_id=""):
    """Stop an approved schedule's occurrences until it is resumed (audit
    `schedule.paused`); True if it was running."""
    return _switch(schedule, actor, "schedule.paused", ScheduleState.APPROVED, ScheduleState.PAUSED,
                   reason=(reason or "").strip()[:500], source=source, request_id=request_id)


def resume(schedule, actor, *, reason="", source=AuditSource.CONSOLE, request_id=""):
    """Run a paused schedule again from now, under its approval (audit
    `schedule.resumed`): the due times while it was paused are not occurrences."""
    now = timezone.now()
    if schedule.expires_at <= now:
        raise ValidationError(f"Schedule #{schedule.pk} expired at {schedule.expires_at:%Y-%m-%d %H:%M} UTC.")
    return _switch(schedule, actor, "schedule.resumed", ScheduleState.PAUSED, ScheduleState.APPROVED,
                   reason=(reason or "").strip()[:500], source=source, request_id=request_id,
                   active_since=now)


# --- the beat pass ------------------------------------------------------------------


def due_times(schedule, after, until):
    """The schedule's due times in (after, until], in UTC, read in its time zone."""
    zone = ZoneInfo(schedule.time_zone)
    times = croniter(schedule.cron, after.astimezone(zone))
    found = []
    while (due := times.get_next(datetime)) <= until:
        found.append(due.astimezone(UTC))
    return found


def next_due(schedule, after):
    """The schedule's first due time after `after`, in UTC: what its pages show next."""
    times = croniter(schedule.cron, after.astimezone(ZoneInfo(schedule.time_zone)))
    return times.get_next(datetime).astimezone(UTC)


def record_skip(schedule, due_at, region, reason, now=None):
    """Record that the due time `due_at` of `schedule` did not run, and why (audit
    `schedule.occurrence_skipped`), and tell the notification channels (SCHEDULE_SKIPPED,
    once it commits): the one place a skip is recorded.
    Returns the occurrence, or None when that due time already has one."""
    now = now or timezone.now()
    code = region.code if region else None  # None: the application had no region to drill
    where = code or "no region"
    try:
        with transaction.atomic():
            occurrence = ScheduleOccurrence.objects.create(
                schedule=schedule, due_at=due_at, region=region, state=OccurrenceState.SKIPPED,
                reason=reason[:500], created_at=now,
            )
            audit.record(
                None, "schedule.occurrence_skipped", source=AuditSource.SYSTEM, obj=schedule,
                object_repr=schedule.audit_repr(),
                after={"due_at": due_at.isoformat(), "region": code, "reason": reason[:500]},
            )
            # Inside the block: a due time that already had its occurrence tells nobody.
            name = schedule.audit_repr()
            events.publish(
                events.EventKind.SCHEDULE_SKIPPED,
                f"{name[:1].upper()}{name[1:]}: its time {due_at:%Y-%m-%d %H:%M} UTC in {where} "
                f"was skipped: {reason}"[:500],
                schedule=schedule.pk, occurrence=occurrence.pk, due_at=due_at.isoformat(),
                region=code, reason=reason[:500], url=schedule.get_absolute_url(),
            )
    except IntegrityError:
        return None
    return occurrence


def _request_drill(schedule, due_at, region, now):
    """Create the occurrence of `due_at` and its drill, approved by the schedule's
    standing approval while the drill's plan hashes as approved. Returns the occurrence,
    or None when that due time already has one (a second beat pass)."""
    try:
        with transaction.atomic():
            occurrence = ScheduleOccurrence.objects.create(
                schedule=schedule, due_at=due_at, region=region, state=OccurrenceState.CREATED,
                created_at=now,
            )
            drill = services.request(
                user=schedule.requested_by, scenario=schedule.scenario, application=schedule.application,
                region=region, window_end=due_at + schedule.run_window, source=AuditSource.SYSTEM,
                announce=False,
            )
    except IntegrityError:
        return None  # a second pass: this due time has its occurrence
    except (ValidationError, PermissionDenied) as exc:
        messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
        reason = "the drill request was refused: " + " ".join(messages)
        return record_skip(schedule, due_at, region, reason, now)
    DrillStep.add(drill.pk, StepKind.NOTE,
                  f"Requested by schedule #{schedule.pk} for its time {due_at:%Y-%m-%d %H:%M} UTC")
    approved = schedule.approved_hashes.get(region.code)
    waits = drill.plan_hash != approved
    if not waits:
        reason = f"standing approval of schedule #{schedule.pk}"
        try:
            services.approve(drill, schedule.approved_by, comment=reason, source=AuditSource.SYSTEM)
        except (ValidationError, PermissionDenied) as exc:
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            reason = "waits for approval: the standing approval could not be applied: " + " ".join(messages)
            waits = True
    else:
        reason = (
            f"waits for approval: its plan changed since schedule #{schedule.pk} was approved "
            f"(approved {(approved or 'none')[:12]}…, now {drill.plan_hash[:12]}…)"
        )
        DrillStep.add(drill.pk, StepKind.NOTE, f"This drill {reason}: an approver must review the new plan.")
    if waits:
        services.announce_request(drill, reason)
    ScheduleOccurrence.objects.filter(pk=occurrence.pk).update(drill=drill, reason=reason[:500])
    occurrence.refresh_from_db()
    return occurrence


def _expire(schedule, now):
    with transaction.atomic():
        if Schedule.objects.filter(pk=schedule.pk, state=schedule.state).update(state=ScheduleState.EXPIRED):
            audit.record(
                None, "schedule.expired", source=AuditSource.SYSTEM, obj=schedule,
                object_repr=schedule.audit_repr(), before={"state": schedule.state},
                after={"state": ScheduleState.EXPIRED, "expires_at": schedule.expires_at.isoformat()},
            )


def run_schedule(schedule, now):
    """Turn the schedule's due times since its last occurrence (or since it became
    active) into occurrences: the latest, when it is within the run window and drills
    are not halted, requests a drill; every other one is skipped with the reason.
    Returns the occurrences recorded."""
    last = schedule.occurrences.aggregate(last=Max("due_at"))["last"]
    since = max(t for t in (schedule.active_since, last) if t is not None)
    times = due_times(schedule, since, min(now, schedule.expires_at))
    if not times:
        return []
    regions = target_regions(schedule.application, schedule.region)
    if not regions:
        return [record_skip(schedule, times[-1], schedule.region, "the application has no stack left", now)]
    turn = schedule.occurrences.count()
    unrecorded = times[:-MAX_MISSED_RECORDED - 1]
    times = times[-MAX_MISSED_RECORDED - 1:]
    recorded = []
    for n, due_at in enumerate(times):
        region = regions[(turn + len(unrecorded) + n) % len(regions)]
        late = now - due_at
        if due_at != times[-1]:
            reason = (
                f"missed: not run by {due_at + schedule.run_window:%Y-%m-%d %H:%M} UTC, the end of its run "
                "window (the scheduler, beat, did not run then); a later time superseded it"
            )
            if n == 0 and unrecorded:
                reason += f"; and {len(unrecorded)} earlier time(s) since {unrecorded[0]:%Y-%m-%d %H:%M} UTC"
            recorded.append(record_skip(schedule, due_at, region, reason, now))
        elif late > schedule.run_window:
            recorded.append(record_skip(schedule, due_at, region, (
                f"missed: the scheduler ran {late.total_seconds() / 60:.0f} min after the time, past its "
                f"run window of {schedule.run_window.total_seconds() / 60:g} min (was beat down?)"
            ), now))
        elif services.is_halted():
            halt = services.halt_state()
            recorded.append(record_skip(schedule, due_at, region, f"drills are halted: {halt.reason}", now))
        else:
            recorded.append(_request_drill(schedule, due_at, region, now))
    return [o for o in recorded if o is not None]


def run_due(now=None):
    """Beat, every 10 s: expire the schedules past their expiry, and run the due times
    of every approved one (run_schedule). Returns {schedule id: [occurrence ids]}."""
    now = now or timezone.now()
    done = {}
    running = Schedule.objects.filter(
        state__in=[ScheduleState.APPROVED, ScheduleState.PAUSED]
    ).select_related("scenario", "application", "region", "requested_by", "approved_by")
    for schedule in running:
        if schedule.state == ScheduleState.APPROVED:
            try:
                done[schedule.pk] = [o.pk for o in run_schedule(schedule, now)]
            except Exception:
                # One broken schedule must not stop the others; the log says which.
                log.exception("schedule %s: the beat pass failed", schedule.pk)
        if schedule.expires_at <= now:
            _expire(schedule, now)
    return done
