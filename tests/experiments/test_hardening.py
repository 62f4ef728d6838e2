"""Hardening of the drill core (issue 11): the approval covers everything the runner
reads (a frozen, hashed plan), expiry is enforced where it matters, and no drill can be
stuck in `running` forever (a target that no longer exists, an abort when the worker is
gone, an admin closing a stuck ledger row)."""

import copy
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone

from controlplane.models import AuditEvent
from experiments import faults, ledger, reaper, runner, services
from experiments.faults import plan_hash
from experiments.models import (
    Approval,
    Compensation,
    CompensationState,
    Decision,
    Drill,
    DrillState,
    FaultKind,
    Scenario,
)
from regions.models import Application, Region


def _fresh(pk):
    close_old_connections()
    return Drill.objects.get(pk=pk)


def _actions(drill):
    return list(
        AuditEvent.objects.filter(object_type="experiments.drill", object_id=str(drill.pk))
        .order_by("seq").values_list("action", flat=True)
    )


def _own_scenario():
    source = Scenario.objects.get(slug="fail-region-health-check")
    row = copy.copy(source)
    row.pk, row.slug, row.built_in = None, f"t-{uuid.uuid4().hex[:8]}", False
    row.hypothesis = {"steady_state": [{"check": "global_success_rate", "min_percent": 90}],
                      "max_time_to_failover_seconds": 60}
    row.stop_conditions = [{"metric": "global_error_rate", "threshold_percent": 50, "for_seconds": 5}]
    row.save()
    return row


def _request(operator, scenario=None, app="orders", region="us-east-1", **window):
    return services.request(
        user=operator,
        scenario=scenario or Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name=app),
        region=Region.objects.get(code=region),
        **window,
    )


# --- 1. the approval covers everything the runner reads ----------------------------------------


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_plan_holds_the_hypothesis_stop_conditions_duration_and_vantages(
    world, settings, operator, approver, client_for
):
    settings.CONTROLPLANE_PROBE_VANTAGES = ["us-east-1", "eu-central-1"]
    scenario = _own_scenario()
    drill = _request(operator, scenario)
    assert drill.plan["hypothesis"] == scenario.hypothesis
    assert drill.plan["stop_conditions"] == scenario.stop_conditions
    assert drill.plan["max_duration_seconds"] == scenario.max_duration.total_seconds()
    assert drill.plan["vantages"] == ["us-east-1", "eu-central-1"]
    assert plan_hash(drill.plan) == drill.plan_hash
    page = client_for(approver).get(reverse("experiments:approval", args=[drill.pk])).content.decode()
    assert "&quot;max_time_to_failover_seconds&quot;: 60" in page
    assert "&quot;threshold_percent&quot;: 50" in page
    for key, value in [("hypothesis", {"max_time_to_failover_seconds": 0}), ("stop_conditions", []),
                       ("vantages", ["us-east-1"]), ("max_duration_seconds", 1)]:
        assert plan_hash({**drill.plan, key: value}) != drill.plan_hash, key


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_editing_the_scenario_after_approval_stops_the_drill_before_any_fault(world, operator, approver):
    """The attack: approve with a window a little in the future, then set the hypothesis's
    limit to 0 and remove the stop conditions. The runner runs from the approved plan,
    and preflight refuses a plan that no longer hashes the same."""
    scenario = _own_scenario()
    drill = _request(operator, scenario, window_start=timezone.now() + timedelta(seconds=2))
    services.approve(drill, approver)
    hypothesis = {**scenario.hypothesis, "max_time_to_failover_seconds": 0}
    Scenario.objects.filter(pk=scenario.pk).update(hypothesis=hypothesis, stop_conditions=[])

    drill = _fresh(drill.pk)
    run = runner.DrillRun(drill)  # what the runner would read: the approved values
    assert run.hypothesis["max_time_to_failover_seconds"] == 60
    assert run.stop_conditions == [{"metric": "global_error_rate", "threshold_percent": 50, "for_seconds": 5}]

    Drill.objects.filter(pk=drill.pk).update(window_start=timezone.now())
    services.transition(drill.pk, [DrillState.APPROVED], DrillState.QUEUED)
    assert runner.run(drill.pk) == DrillState.ABORTED
    drill = _fresh(drill.pk)
    assert "plan changed since it was approved (hypothesis, stop_conditions differ)" in drill.outcome_reason
    assert not Compensation.objects.filter(drill=drill).exists()


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_a_stored_plan_edited_in_the_database_does_not_run(world, operator, approver):
    drill = _request(operator)
    services.approve(drill, approver)
    plan = {**drill.plan, "stop_conditions": []}  # the hash column left as approved
    Drill.objects.filter(pk=drill.pk).update(plan=plan)
    assert runner.run(drill.pk) == DrillState.ABORTED
    assert "plan changed since it was approved" in _fresh(drill.pk).outcome_reason
    assert not Compensation.objects.filter(drill_id=drill.pk).exists()


# --- 6. expiry enforced at approval and preflight ------------------------------------------------

PLAN = {"calls": [{"service": "lambda", "operation": "PutFunctionConcurrency", "params": {"x": 0}}]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"requested_at": timezone.now() - timedelta(hours=25)}, "the request is older than 24 h"),
        ({"window_end": timezone.now() - timedelta(minutes=1)}, "its window ended at"),
    ],
)
def test_a_request_past_its_time_cannot_be_approved_even_before_beat_sweeps_it(
    make_drill, approver, fields, message
):
    drill = make_drill(plan=PLAN, plan_hash=plan_hash(PLAN), **fields)
    with pytest.raises(ValidationError) as caught:
        services.approve(drill, approver)
    assert message in " ".join(caught.value.messages)
    drill.refresh_from_db()
    assert drill.state == DrillState.EXPIRED and message in drill.outcome_reason
    assert not Approval.objects.filter(drill=drill).exists()
    assert _actions(drill) == ["drill.expired"]


@pytest.mark.django_db
def test_the_api_answers_409_for_an_expired_request(make_drill, approver, client):
    from controlplane.api import issue_token

    drill = make_drill(plan=PLAN, plan_hash=plan_hash(PLAN), requested_at=timezone.now() - timedelta(days=2))
    _token, secret = issue_token(approver)
    response = client.post(
        f"/api/v1/drills/{drill.pk}/approve", data="{}", content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 409
    assert "has expired" in response.json()["error"]
    assert Drill.objects.get(pk=drill.pk).state == DrillState.EXPIRED


@pytest.mark.django_db(transaction=True)  # the runner closes its connection at the end
def test_preflight_refuses_an_approval_given_after_the_request_expired(make_drill, approver):
    """Whatever wrote the approval (a row written around `approve`), the runner checks the
    request's age itself."""
    drill = make_drill(plan=PLAN, plan_hash=plan_hash(PLAN), state=DrillState.QUEUED,
                       requested_at=timezone.now() - timedelta(hours=30))
    now = timezone.now()
    Approval.objects.create(drill=drill, approver=approver, decision=Decision.APPROVE,
                            plan_hash=drill.plan_hash, created_at=now, expires_at=now + timedelta(hours=24))
    assert runner.run(drill.pk) == DrillState.ABORTED
    drill = _fresh(drill.pk)
    assert "after the request, which had expired after 1 day" in drill.outcome_reason


# --- 7. no drill stuck in running forever -------------------------------------------------------


def _running_with_a_dead_worker(operator, approver):
    drill = _request(operator)
    services.approve(drill, approver)
    services.transition(drill.pk, [DrillState.QUEUED], DrillState.RUNNING, worker="gone@nowhere",
                        heartbeat_at=timezone.now() - timedelta(minutes=5))
    return _fresh(drill.pk)


def _inject(drill):
    fault = faults.get_fault(drill.plan["fault_kinds"][0])
    target = faults.Target.from_dict(drill.plan["target_snapshots"][0])
    return ledger.inject(drill, fault, target, deadline=timezone.now() + timedelta(minutes=10),
                           worker="gone@nowhere")


def _inverted(world, app="orders", region="us-east-1"):
    check = world.stack(app, region).health_check_id
    config = world.client("route53", "us-east-1").get_health_check(HealthCheckId=check)["HealthCheck"]
    return config["HealthCheckConfig"].get("Inverted", False)


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_a_revert_whose_target_no_longer_exists_ends_the_drill_instead_of_retrying_forever(
    world, operator, approver
):
    """The attack: kill -9 the worker after injection, restart with a fresh sandbox (new
    health-check ids): the ledger's inverse answers NoSuchHealthCheck on every retry."""
    drill = _running_with_a_dead_worker(operator, approver)
    snapshot = {**drill.plan["target_snapshots"][0], "identifier": str(uuid.uuid4())}
    inverse = copy.deepcopy(drill.plan["calls"][0]["inverse"])
    inverse["params"]["HealthCheckId"] = snapshot["identifier"]
    row = Compensation.objects.create(
        drill=drill, fault_kind=FaultKind.HEALTH_CHECK_INVERT, target=snapshot, call=drill.plan["calls"][0],
        inverse=inverse, previous_value={"Inverted": False}, previous_read=True,
        deadline=timezone.now() + timedelta(minutes=10), state=CompensationState.INJECTED,
    )

    result = reaper.reap()

    assert result["drills"] == [drill.pk]
    drill, row = _fresh(drill.pk), Compensation.objects.get(pk=row.pk)
    assert drill.state == DrillState.ERRORED
    assert "target gone, nothing to revert (NoSuchHealthCheck" in drill.outcome_reason
    assert row.state == CompensationState.GONE
    assert _actions(drill)[-2:] == ["drill.revert_target_gone", "drill.errored"]
    gone = AuditEvent.objects.get(action="drill.revert_target_gone", object_id=str(drill.pk))
    assert gone.after["call"]["operation"] == "UpdateHealthCheck"
    assert "NoSuchHealthCheck" in gone.after["error"]
    assert reaper.reap()["drills"] == []  # terminal: nothing retried
    # The application is free again: a new drill is not refused because "#N is running".
    assert _request(operator).state == DrillState.REQUESTED


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_abort_of_a_drill_whose_worker_is_gone_reverts_and_ends_it_at_once(world, operator, approver):
    drill = _running_with_a_dead_worker(operator, approver)
    _inject(drill)
    assert _inverted(world) is True
    try:
        assert services.abort(drill, operator, reason="the worker died") == "aborted"
    finally:
        if _inverted(world):  # never leave the session's sandbox broken
            world.client("route53", "us-east-1").update_health_check(
                HealthCheckId=world.stack("orders", "us-east-1").health_check_id, Inverted=False)
    drill = _fresh(drill.pk)
    assert drill.state == DrillState.ABORTED
    assert drill.outcome_reason.startswith("the worker died; its worker was gone, fault reverted")
    assert _inverted(world) is False
    assert _actions(drill)[-4:] == [
        "drill.fault_injected", "drill.abort_requested", "drill.fault_reverted", "drill.aborted"
    ]


@pytest.mark.django_db
def test_an_admin_closes_a_stuck_ledger_row_with_a_reason_and_the_reaper_ends_the_drill(
    make_drill, admin, operator, client_for
):
    drill = make_drill(plan=PLAN, plan_hash=plan_hash(PLAN), state=DrillState.RUNNING, worker="gone@nowhere",
                       heartbeat_at=timezone.now() - timedelta(minutes=5))
    row = Compensation.objects.create(
        drill=drill, fault_kind=FaultKind.LAMBDA_CONCURRENCY_ZERO, target={"identifier": "f"},
        call={"service": "lambda", "operation": "PutFunctionConcurrency"}, inverse={},
        deadline=timezone.now() + timedelta(hours=1), state=CompensationState.FAILED, attempts=19,
    )
    url = reverse("experiments:close-ledger-row", args=[drill.pk, row.pk])
    page = client_for(admin).get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert f'data-ledger-row="{row.pk}"' in page  # the admin sees the form
    assert client_for(admin).post(url, {"reason": ""}).status_code == 302
    assert Compensation.objects.get(pk=row.pk).state == CompensationState.FAILED  # no reason: nothing
    assert client_for(operator).post(url, {"reason": "x"}).status_code == 403
    assert f'data-ledger-row="{row.pk}"' not in client_for(operator).get(
        reverse("experiments:detail", args=[drill.pk])).content.decode()

    response = client_for(admin).post(url, {"reason": "the account was deleted; checked by hand"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.state == CompensationState.CLOSED
    event = AuditEvent.objects.get(action="drill.ledger_row_closed")
    assert event.actor == admin.username
    assert event.after["reason"] == "the account was deleted; checked by hand"
    assert event.after["compensation"] == row.pk

    assert reaper.reap()["drills"] == [drill.pk]
    drill.refresh_from_db()
    assert drill.state == DrillState.ERRORED
    assert "1 ledger row(s) closed by an admin without a revert" in drill.outcome_reason


@pytest.mark.django_db
def test_the_command_closes_a_row_only_for_an_admin(make_drill, admin, operator):
    from django.core.management.base import CommandError

    drill = make_drill(plan=PLAN, plan_hash=plan_hash(PLAN))
    row = Compensation.objects.create(
        drill=drill, fault_kind=FaultKind.LAMBDA_CONCURRENCY_ZERO, target={}, call={}, inverse={},
        deadline=timezone.now(), state=CompensationState.INJECTED,
    )
    with pytest.raises(CommandError, match="needs the admin role"):
        call_command("close_ledger_row", row.pk, reason="x", user=operator.username)
    call_command("close_ledger_row", row.pk, reason="undone by hand", user=admin.username)
    assert Compensation.objects.get(pk=row.pk).state == CompensationState.CLOSED
    with pytest.raises(CommandError, match="is not open"):
        call_command("close_ledger_row", row.pk, reason="again", user=admin.username)
    assert AuditEvent.objects.get(action="drill.ledger_row_closed").source == "command"
