"""The conditional transition: the UPDATE decides, and only the winner writes audit."""

import threading

import pytest
from django.db import connection

from controlplane.models import AuditEvent
from experiments import services
from experiments.models import DrillState, DrillStep
from experiments.services import transition

pytestmark = pytest.mark.django_db


def test_a_transition_moves_the_drill_sets_its_timestamp_and_writes_one_audit_event(make_drill):
    drill = make_drill()
    assert transition(drill.pk, [DrillState.REQUESTED], DrillState.APPROVED, actor="anna")
    drill.refresh_from_db()
    assert drill.state == DrillState.APPROVED
    assert drill.approved_at is not None
    event = AuditEvent.objects.get(action="drill.approved")
    assert (event.actor, event.object_id) == ("anna", str(drill.pk))
    assert event.after["state"] == "approved"
    assert DrillStep.objects.filter(drill=drill, kind="state").count() == 1


def test_a_second_identical_transition_returns_false_and_writes_no_audit_row(make_drill):
    drill = make_drill()
    assert transition(drill.pk, "requested", "approved")
    events = AuditEvent.objects.count()
    assert not transition(drill.pk, "requested", "approved")
    assert AuditEvent.objects.count() == events


def test_a_transition_of_a_missing_drill_returns_false():
    assert not transition(999_999, "requested", "approved")
    assert not AuditEvent.objects.exists()


def test_fields_ride_along_with_the_state(make_drill):
    drill = make_drill(state=DrillState.RUNNING)
    figures = {"error_rate": 0.3}
    assert transition(drill.pk, ["running"], "failed", outcome_reason="stop condition", figures=figures)
    drill.refresh_from_db()
    assert (drill.state, drill.outcome_reason, drill.figures) == ("failed", "stop condition", figures)
    assert drill.finished_at is not None


@pytest.mark.parametrize("live", [DrillState.RUNNING, DrillState.REVERTING])
def test_a_drill_that_could_not_test_its_hypothesis_ends_inconclusive_with_its_audit(make_drill, live):
    drill = make_drill(state=live)
    reason = "the observer saw too few requests (3)"

    assert transition(
        drill.pk, [DrillState.RUNNING, DrillState.REVERTING], DrillState.INCONCLUSIVE, outcome_reason=reason
    )

    drill.refresh_from_db()
    assert (drill.state, drill.outcome_reason, drill.is_final) == ("inconclusive", reason, True)
    assert drill.finished_at is not None
    event = AuditEvent.objects.get(object_id=str(drill.pk))
    assert event.action == "drill.inconclusive"
    assert event.after == {"state": "inconclusive", "outcome_reason": reason}
    assert DrillStep.objects.get(drill=drill, kind="state").message == "Inconclusive"
    # final: nothing moves it on, not even to passed
    assert not transition(drill.pk, [DrillState.RUNNING, DrillState.REVERTING], DrillState.PASSED)
    assert not services.abort(drill, drill.requested_by)
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_racing_approved_to_queued_have_exactly_one_winner(make_drill):
    drill = make_drill(state=DrillState.APPROVED)
    barrier = threading.Barrier(20)
    results, errors = [], []

    def race(i):
        try:
            barrier.wait()
            results.append(transition(drill.pk, [DrillState.APPROVED], DrillState.QUEUED, worker=f"w{i}"))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(results) == [False] * 19 + [True]
    drill.refresh_from_db()
    assert drill.state == DrillState.QUEUED
    assert AuditEvent.objects.filter(action="drill.queued", object_id=str(drill.pk)).count() == 1
    assert AuditEvent.objects.get(action="drill.queued").after["worker"] == drill.worker
