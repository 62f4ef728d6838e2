"""Drills, the halt switch, schedules and monitoring publish from the one place each thing
happens."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.events import EventKind
from experiments import schedules
from experiments import services as drills
from experiments.models import Drill, DrillState, OccurrenceState, Scenario, ScheduleOccurrence
from experiments.scenarios import ensure_builtin_scenarios
from notifications import services
from notifications.models import Event
from regions import monitoring
from regions.models import Application, Architecture, Region, Stack
from regions.probes import ProbeResult
from tests.experiments.test_schedules import HOURLY, approved
from tests.experiments.test_schedules import hashes as hashes  # the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def channel(admin):
    return services.create_channel(admin, name="all", kind="webhook", target="https://hooks.example.com/x",
                                   events="all")


def _kinds():
    return list(Event.objects.order_by("pk").values_list("kind", "summary"))


def test_halt_and_clear_are_told(channel, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        drills.halt_all(admin, "game day over")
        drills.clear_halt(admin, "back to normal")
    assert _kinds() == [
        (EventKind.HALTED, "Drills halted by ada-admin: game day over"),
        (EventKind.HALT_CLEARED, "Halt cleared by ada-admin: back to normal"),
    ]


def test_drill_states_are_told_once_each(channel, operator, django_capture_on_commit_callbacks):
    ensure_builtin_scenarios()
    drill = Drill.objects.create(
        scenario=Scenario.objects.get(slug="throttle-region-functions"),
        application=Application.objects.create(name="orders", architecture=Architecture.DNS),
        region=Region.objects.create(code="us-east-1"), requested_by=operator,
        plan={"calls": []}, plan_hash="0" * 64,
    )
    with django_capture_on_commit_callbacks(execute=True):
        drills.transition(drill.pk, [DrillState.REQUESTED], DrillState.APPROVED)  # not told
        drills.transition(drill.pk, [DrillState.APPROVED], DrillState.QUEUED)
        drills.transition(drill.pk, [DrillState.QUEUED], DrillState.RUNNING)
        drills.transition(drill.pk, [DrillState.QUEUED], DrillState.RUNNING)  # lost the race: nothing
        drills.transition(drill.pk, [DrillState.RUNNING], DrillState.FAILED, outcome_reason="took 93 s")
    name = f"Drill #{drill.pk} throttle-region-functions on orders/us-east-1"
    assert _kinds() == [
        (EventKind.DRILL_STARTED, f"{name} running"),
        (EventKind.DRILL_FAILED, f"{name} failed: took 93 s"),
    ]
    assert Event.objects.last().payload["url"] == f"/drills/{drill.pk}/"


def _probe(stack, ok, at):
    return ProbeResult(
        target=monitoring.targets_for_keys([f"s:{stack.pk}"])[0], at=at, ok=ok,
        status_code=200 if ok else 503, latency_ms=5.0,
    )


def test_a_region_status_change_is_told_after_hysteresis(channel, django_capture_on_commit_callbacks):
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    stack = Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"),
                                 health_url="http://127.0.0.1:1/health")
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(10):
            monitoring.store_results([_probe(stack, True, start + timedelta(seconds=i))], "local")
        assert _kinds() == []  # unknown -> healthy at start is not news
        for i in range(10, 20):
            monitoring.store_results([_probe(stack, False, start + timedelta(seconds=i))], "local")
    [(kind, summary)] = _kinds()
    assert kind == EventKind.REGION_STATUS_CHANGED
    assert summary == "orders in us-east-1 is unhealthy (was healthy), seen from local"


def test_a_skipped_schedule_time_is_told_once(channel, hashes, operator, approver,
                                              django_capture_on_commit_callbacks):
    schedule, t0 = approved(operator, approver)
    with django_capture_on_commit_callbacks(execute=True):
        schedules.run_due(t0 + timedelta(hours=1, minutes=31))  # t0+30 missed, t0+90 runs
        schedules.run_due(t0 + timedelta(hours=1, minutes=32))  # a second pass: nothing new
    skipped = ScheduleOccurrence.objects.get(schedule=schedule, state=OccurrenceState.SKIPPED)
    with django_capture_on_commit_callbacks(execute=True):
        # the same due time recorded again (a redelivered pass): no row, nobody told
        assert schedules.record_skip(schedule, skipped.due_at, skipped.region, "again") is None

    [event] = Event.objects.filter(kind=EventKind.SCHEDULE_SKIPPED)
    assert event.summary == (
        f"Schedule #{schedule.pk} fail-region-health-check on orders/us-east-1 ({HOURLY}): its time "
        f"{skipped.due_at:%Y-%m-%d %H:%M} UTC in us-east-1 was skipped: {skipped.reason}"
    )[:500]
    assert event.payload["schedule"] == schedule.pk
    assert event.payload["occurrence"] == skipped.pk
    assert event.payload["reason"] == skipped.reason
    assert event.payload["url"] == f"/drills/schedules/{schedule.pk}/"


def test_a_scheduled_drill_wants_an_approver_only_when_its_standing_approval_does_not_apply(
    channel, hashes, operator, approver, django_capture_on_commit_callbacks
):
    schedule, t0 = approved(operator, approver)
    with django_capture_on_commit_callbacks(execute=True):
        schedules.run_due(t0 + timedelta(minutes=31))  # the plan as approved: runs under it
    assert not Event.objects.filter(kind=EventKind.APPROVAL_WANTED).exists()

    hashes["us-east-1"] = "c" * 64  # the plan changed
    with django_capture_on_commit_callbacks(execute=True):
        schedules.run_due(t0 + timedelta(minutes=91))
    [event] = Event.objects.filter(kind=EventKind.APPROVAL_WANTED)
    waiting = ScheduleOccurrence.objects.get(schedule=schedule, due_at=t0 + timedelta(minutes=90))
    assert event.payload["drill"] == waiting.drill_id
    assert "waits for approval: its plan changed since schedule" in event.summary
