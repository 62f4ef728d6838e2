"""Schedules: drills on a recurrence under a standing approval (experiments.schedules),
with explicit `now` values for beat's pass."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from controlplane.api import issue_token
from controlplane.models import AuditEvent
from experiments import plans, schedules, services
from experiments.models import (
    Approval,
    Drill,
    DrillState,
    OccurrenceState,
    Scenario,
    Schedule,
    ScheduleOccurrence,
    ScheduleState,
)
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Architecture, Region, Stack
from tests.experiments.test_views import PLAN

HOURLY = "30 * * * *"  # every hour at :30


@pytest.fixture
def hashes(db, monkeypatch):
    """orders (architecture A) with stacks in us-east-1 and us-west-2; any plan can be
    made, and `hashes[region]` is the hash its plan has now (the fault library is not
    under test: a changed value read or target is a changed hash)."""
    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    for code in ("us-east-1", "us-west-2"):
        Stack.objects.create(application=app, region=Region.objects.create(code=code))
    current = {"us-east-1": "a" * 64, "us-west-2": "b" * 64}
    monkeypatch.setattr(plans, "make_plan", lambda scenario, app, region: (PLAN, current[region.code]))
    return current


def propose(user, *, region="us-east-1", cron=HOURLY, time_zone="UTC", run_window=timedelta(minutes=15),
            expires_in=timedelta(days=30)):
    return schedules.propose(
        user=user, scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"),
        region=Region.objects.get(code=region) if region else None,
        cron=cron, time_zone=time_zone, run_window=run_window, expires_at=timezone.now() + expires_in,
    )


def approved(operator, approver, **kw):
    """A schedule proposed by `operator`, approved by `approver`, active since the next
    whole hour (t0), and t0."""
    schedule = propose(operator, **kw)
    assert schedules.approve(schedule, approver)
    t0 = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    Schedule.objects.filter(pk=schedule.pk).update(active_since=t0)
    schedule.refresh_from_db()
    return schedule, t0


def occurrences(schedule):
    return list(ScheduleOccurrence.objects.filter(schedule=schedule).order_by("due_at"))


def test_an_approved_schedule_makes_approved_drills_at_its_times(hashes, operator, approver):
    schedule, t0 = approved(operator, approver)

    assert schedules.run_due(t0 + timedelta(minutes=29)) == {schedule.pk: []}
    schedules.run_due(t0 + timedelta(minutes=31))
    schedules.run_due(t0 + timedelta(minutes=32))  # a second pass: nothing more

    (first,) = occurrences(schedule)
    assert first.due_at == t0 + timedelta(minutes=30)
    assert first.state == OccurrenceState.CREATED
    drill = first.drill
    assert drill.state == DrillState.QUEUED
    assert drill.requested_by == operator
    assert drill.window_end == first.due_at + timedelta(minutes=15)
    approval = Approval.objects.get(drill=drill)
    assert approval.approver == approver
    assert approval.comment == f"standing approval of schedule #{schedule.pk}"
    assert approval.plan_hash == drill.plan_hash == hashes["us-east-1"]

    schedules.run_due(t0 + timedelta(minutes=90, seconds=5))
    assert [o.due_at for o in occurrences(schedule)] == [t0 + timedelta(minutes=m) for m in (30, 90)]
    assert Drill.objects.filter(occurrence__schedule=schedule).count() == 2


def test_due_times_are_read_in_the_schedules_time_zone(db):
    schedule = Schedule(cron="30 3 * * *", time_zone="America/New_York")
    after = datetime(2026, 3, 7, 12, tzinfo=UTC)  # New York moves to summer time on 8 March
    times = schedules.due_times(schedule, after, after + timedelta(days=2))
    assert times == [datetime(2026, 3, 8, 7, 30, tzinfo=UTC), datetime(2026, 3, 9, 7, 30, tzinfo=UTC)]


def test_a_changed_plan_makes_the_next_occurrence_wait_and_say_why(hashes, operator, approver):
    schedule, t0 = approved(operator, approver)
    hashes["us-east-1"] = "c" * 64  # a target or a value read changed since the approval

    schedules.run_due(t0 + timedelta(minutes=31))

    (occurrence,) = occurrences(schedule)
    assert occurrence.drill.state == DrillState.REQUESTED
    assert not Approval.objects.filter(drill=occurrence.drill).exists()
    assert occurrence.reason.startswith(f"waits for approval: its plan changed since schedule #{schedule.pk}")
    assert "aaaaaaaaaaaa" in occurrence.reason and "cccccccccccc" in occurrence.reason
    assert occurrence.drill.steps.filter(message__contains="an approver must review the new plan").exists()


def test_missed_times_are_skipped_with_the_reason_and_never_run_late_in_a_burst(hashes, operator, approver):
    schedule, t0 = approved(operator, approver)

    # beat was down for three hours: the times at :30 of t0, t0+1h, t0+2h were missed
    schedules.run_due(t0 + timedelta(hours=3, minutes=31))

    rows = occurrences(schedule)
    assert [o.due_at for o in rows] == [t0 + timedelta(hours=h, minutes=30) for h in range(4)]
    assert [o.state for o in rows] == [OccurrenceState.SKIPPED] * 3 + [OccurrenceState.CREATED]
    assert all(o.reason.startswith("missed: not run by") and o.drill is None for o in rows[:3])
    assert Drill.objects.count() == 1
    assert AuditEvent.objects.filter(action="schedule.occurrence_skipped").count() == 3

    # the next time, seen only after its run window: skipped, no drill
    schedules.run_due(t0 + timedelta(hours=4, minutes=50))
    last = occurrences(schedule)[-1]
    assert last.due_at == t0 + timedelta(hours=4, minutes=30)
    assert last.state == OccurrenceState.SKIPPED
    assert "past its run window of 15 min" in last.reason
    assert Drill.objects.count() == 1


def test_halt_on_skips_the_occurrence_with_the_halts_reason(hashes, operator, approver):
    schedule, t0 = approved(operator, approver)
    services.halt_all(approver, "region incident in us-east-1")

    schedules.run_due(t0 + timedelta(minutes=31))

    (occurrence,) = occurrences(schedule)
    assert occurrence.state == OccurrenceState.SKIPPED
    assert occurrence.reason == "drills are halted: region incident in us-east-1"
    assert not Drill.objects.exists()


def test_each_region_in_turn(hashes, operator, approver):
    schedule, t0 = approved(operator, approver, region=None)
    assert schedule.approved_hashes == {"us-east-1": "a" * 64, "us-west-2": "b" * 64}

    for minutes in (31, 91, 151):
        schedules.run_due(t0 + timedelta(minutes=minutes))

    assert [o.drill.region.code for o in occurrences(schedule)] == ["us-east-1", "us-west-2", "us-east-1"]
    assert all(o.drill.state == DrillState.QUEUED for o in occurrences(schedule))


def test_each_region_in_turn_with_no_stack_left_skips_its_time_and_says_why(hashes, operator, approver):
    schedule, t0 = approved(operator, approver, region=None)
    Stack.objects.all().delete()

    schedules.run_due(t0 + timedelta(minutes=31))

    (skipped,) = occurrences(schedule)
    assert (skipped.state, skipped.region, skipped.reason) == (
        OccurrenceState.SKIPPED, None, "the application has no stack left")
    event = AuditEvent.objects.get(action="schedule.occurrence_skipped")
    assert event.after["region"] is None


def test_pause_and_resume_are_audited_and_no_time_runs_while_paused(hashes, operator, approver):
    schedule, t0 = approved(operator, approver)

    assert schedules.pause(schedule, operator, reason="change freeze")
    assert not schedules.pause(schedule, operator)  # a double click does nothing
    schedules.run_due(t0 + timedelta(minutes=31))
    assert occurrences(schedule) == []

    assert schedules.resume(schedule, approver, reason="freeze over")
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.APPROVED
    assert schedule.active_since > t0 - timedelta(hours=1)
    events = AuditEvent.objects.filter(action__in=["schedule.paused", "schedule.resumed"]).order_by("seq")
    assert [(e.action, e.actor, e.after["reason"]) for e in events] == [
        ("schedule.paused", operator.username, "change freeze"),
        ("schedule.resumed", approver.username, "freeze over"),
    ]


def test_a_schedule_expires_at_its_expiry(hashes, operator, approver):
    schedule, _ = approved(operator, approver, expires_in=timedelta(days=1))

    schedules.run_due(schedule.expires_at + timedelta(minutes=1))

    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.EXPIRED
    assert AuditEvent.objects.filter(action="schedule.expired").count() == 1


def test_roles_and_the_four_eyes_rule(hashes, viewer, operator, approver, admin):
    with pytest.raises(PermissionDenied):
        propose(viewer)
    with pytest.raises(PermissionDenied):
        propose(approver)
    schedule = propose(admin)
    with pytest.raises(PermissionDenied, match="The requester of a schedule cannot approve"):
        schedules.approve(schedule, admin)
    with pytest.raises(PermissionDenied, match="approver role"):
        schedules.approve(schedule, operator)
    assert schedules.approve(schedule, approver)
    assert not schedules.approve(schedule, approver)  # once
    with pytest.raises(PermissionDenied):
        schedules.pause(schedule, viewer)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.APPROVED


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"cron": "every monday"}, "cron", "is not a cron expression of five fields"),
    ({"cron": "0 0 3 * * *"}, "cron", "five fields"),
    ({"cron": "61 * * * *"}, "cron", "five fields"),
    ({"time_zone": "Mars/Olympus"}, "time_zone", "is not a time zone name"),
    ({"expires_in": timedelta(days=91)}, "expires_at", "at most 90 days"),
    ({"expires_in": timedelta(minutes=-1)}, "expires_at", "in the future"),
    ({"run_window": timedelta(0)}, "run_window", "between 1 minute and 24 hours"),
])
def test_bad_input_is_refused_with_a_message_and_changes_nothing(hashes, operator, fields, field, message):
    with pytest.raises(ValidationError) as caught:
        propose(operator, **fields)
    assert message in " ".join(caught.value.message_dict[field])
    assert not Schedule.objects.exists()
    assert not AuditEvent.objects.filter(action="schedule.proposed").exists()


# --- the API ------------------------------------------------------------------------


def api(client, user, method, path, body=None):
    token = issue_token(user)[1]
    return getattr(client, method)(path, body, content_type="application/json",
                                   headers={"Authorization": f"Bearer {token}"})


def test_api_proposes_approves_pauses_resumes_and_lists_a_schedules_drills(
    hashes, client, operator, approver
):
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    body = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1",
            "cron": HOURLY, "time_zone": "Europe/Berlin", "run_window": 20, "expires_at": expires}
    created = api(client, operator, "post", reverse("api-schedules"), body)
    assert created.status_code == 201, created.content
    schedule = created.json()
    assert schedule["state"] == "proposed"
    assert schedule["plan_hashes"] == {"us-east-1": "a" * 64}
    assert schedule["run_window_minutes"] == 20
    pk = schedule["id"]

    own = api(client, operator, "post", reverse("api-schedule-approve", args=[pk]), {})
    assert own.status_code == 403
    stale = api(client, approver, "post", reverse("api-schedule-approve", args=[pk]), {"plan_hash": "f" * 64})
    assert stale.status_code == 409
    ok = api(client, approver, "post", reverse("api-schedule-approve", args=[pk]),
             {"plan_hash": schedule["plan_hash"], "comment": "weekly proof"})
    assert ok.status_code == 200 and ok.json()["approved_by"] == approver.username

    row = Schedule.objects.get(pk=pk)
    due = schedules.due_times(row, row.active_since, row.active_since + timedelta(hours=1))[0]
    schedules.run_due(due + timedelta(minutes=1))
    listed = api(client, operator, "get", reverse("api-drills") + f"?schedule={pk}")
    assert listed.status_code == 200
    (drill,) = listed.json()["drills"]
    assert drill["id"] == ScheduleOccurrence.objects.get(schedule_id=pk, state="created").drill_id
    assert api(client, operator, "get", reverse("api-drills") + "?schedule=x").status_code == 400

    paused = api(client, operator, "post", reverse("api-schedule-pause", args=[pk]), {})
    assert paused.json()["state"] == "paused"
    again = api(client, operator, "post", reverse("api-schedule-pause", args=[pk]), {})
    assert again.status_code == 409
    resumed = api(client, approver, "post", reverse("api-schedule-resume", args=[pk]), {"reason": "go"})
    assert resumed.json()["state"] == "approved"


def test_api_bad_input_is_a_400_per_field(hashes, client, operator, viewer):
    body = {"scenario": "fail-region-health-check", "application": "orders", "cron": "nope",
            "time_zone": "Nowhere/Else", "expires_at": (timezone.now() + timedelta(days=200)).isoformat()}
    response = api(client, operator, "post", reverse("api-schedules"), body)
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert set(fields) == {"cron", "time_zone", "expires_at"}
    for run_window, message in (("15", "run_window must be an integer, not a string."),
                                (True, "run_window must be an integer, not a boolean."),
                                (0, "Must be from 1 to 1000000.")):
        wrong = api(client, operator, "post", reverse("api-schedules"), {**body, "run_window": run_window})
        assert wrong.status_code == 400 and wrong.json()["fields"]["run_window"] == [message]
    assert api(client, viewer, "post", reverse("api-schedules"), body).status_code == 403
    assert not Schedule.objects.exists()
