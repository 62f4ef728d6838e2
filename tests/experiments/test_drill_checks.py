"""Every check that scenario validation accepts is evaluated by the runner: for each, a
drill in the sandbox that trips it and one that does not; INCONCLUSIVE when the
hypothesis could not be tested.

The drills run in the test process (`runner.run`, as the Celery task calls it) against
the session's sandbox; tests/experiments/test_drill_runner.py runs them on real worker
processes.
"""

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections

from controlplane.celery import probe_queue
from controlplane.models import AuditEvent
from experiments import runner, services
from experiments.models import Compensation, Drill, DrillState, DrillStep, ObserverBatch, Scenario
from experiments.scenarios import ensure_builtin_scenarios, validate_scenario
from regions.models import Application, Region
from sandbox.replication import PAUSE_TAG
from sandbox.seed import FAULT_OFF
from tests.processes import start_worker, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(world, settings):
    """The shared world (tests/experiments/conftest.py; the test process runs the drill),
    with short steady-state and hold phases."""
    settings.DRILL_STEADY_STATE_SECONDS = 1.0
    settings.DRILL_HOLD_SECONDS = 2.0
    return world


def scenario(base, **changes):
    """A copy of built-in `base` with `changes`, valid by the scenario rules."""
    source = Scenario.objects.get(slug=base)
    row = Scenario(
        slug=f"t-{uuid.uuid4().hex[:8]}",
        name=f"{source.name} (test)",
        fault_kind=source.fault_kind,
        target_selector=source.target_selector,
        parameters=source.parameters,
        hypothesis=source.hypothesis,
        stop_conditions=source.stop_conditions,
        max_duration=source.max_duration,
        architecture=source.architecture,
    )
    for key, value in changes.items():
        setattr(row, key, value)
    validate_scenario(row)
    row.save()
    return row


def drill(operator, approver, scenario_row, app="orders", region="us-east-1"):
    """Request, approve and run one drill in this process -> the ended Drill row."""
    row = services.request(
        user=operator,
        scenario=scenario_row,
        application=Application.objects.get(name=app),
        region=Region.objects.get(code=region),
    )
    services.approve(row, approver)
    runner.run(row.pk)
    close_old_connections()
    row = Drill.objects.get(pk=row.pk)
    assert row.is_final, row.state
    assert not Compensation.objects.filter(drill=row).exclude(state="reverted").exists()
    return row


def set_flag(world, region, app="orders", **flag):
    stack = world.stack(app, region)
    value = {**FAULT_OFF, **flag} if flag else FAULT_OFF
    world.client("ssm", region).put_parameter(
        Name=stack.ssm_fault_parameter, Value=json.dumps(value), Type="String", Overwrite=True
    )


def pause_replication(world, region, app="orders"):
    stack = world.stack(app, region)
    world.client("dynamodb", region).tag_resource(
        ResourceArn=stack.table_arn, Tags=[{"Key": PAUSE_TAG, "Value": "true"}]
    )


A_OK = {
    "steady_state": [{"check": "global_success_rate", "min_percent": 90}],
    "max_time_to_failover_seconds": 60,
}


# A replication drill with no steady-state check of its own (the stop conditions alone).
NO_FAILOVER = {"steady_state": [], "max_time_to_failover_seconds": 0}


# --- stop conditions -------------------------------------------------------------------


def test_the_global_error_rate_stop_condition_trips(world, operator, approver):
    row = scenario(
        "error-rate-50",
        parameters={"fault_type": "status_code", "error_code": 503, "rate": 1.0, "delay": 0},
        stop_conditions=[{"metric": "global_error_rate", "threshold_percent": 10, "for_seconds": 0}],
    )
    ended = drill(operator, approver, row)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert ended.outcome_reason.startswith("Stop condition: global error rate")


def test_the_global_p95_latency_stop_condition_trips_and_does_not_when_latency_is_within(
    world, operator, approver
):
    slow = {"fault_type": "latency", "delay": 400, "rate": 1.0, "error_code": 503}
    hypothesis = {
        "steady_state": [{"check": "global_success_rate", "min_percent": 90}],
        "max_time_to_failover_seconds": 0,
    }
    tripping = scenario(
        "error-rate-50",
        parameters=slow,
        hypothesis=hypothesis,
        stop_conditions=[{"metric": "global_p95_latency", "threshold_ms": 200, "for_seconds": 0}],
    )
    ended = drill(operator, approver, tripping)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert "global p95 latency" in ended.outcome_reason and "> 200 ms" in ended.outcome_reason

    within = scenario(
        "error-rate-50",
        parameters=slow,
        hypothesis=hypothesis,
        stop_conditions=[{"metric": "global_p95_latency", "threshold_ms": 5000, "for_seconds": 0}],
    )
    ended = drill(operator, approver, within)
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    assert ended.figures["p95_latency_ms"] >= 300


def test_the_replication_lag_stop_condition_trips_and_does_not_under_a_high_threshold(
    world, operator, approver
):
    tripping = scenario(
        "pause-replication",
        hypothesis=NO_FAILOVER,
        stop_conditions=[{"metric": "replication_lag", "threshold_ms": 500, "for_seconds": 0}],
    )
    ended = drill(operator, approver, tripping)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert "replication lag into us-east-1" in ended.outcome_reason

    within = scenario(
        "pause-replication",
        hypothesis=NO_FAILOVER,
        stop_conditions=[{"metric": "replication_lag", "threshold_ms": 60_000, "for_seconds": 1}],
    )
    ended = drill(operator, approver, within)
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    assert ended.figures["lag_during_ms"] > 500  # replication really was paused
    assert ended.figures["time_to_converge"] is not None


def test_the_other_region_unhealthy_stop_condition_trips(world, operator, approver):
    row = scenario(
        "fail-region-health-check", hypothesis=A_OK, stop_conditions=[{"metric": "other_region_unhealthy"}]
    )

    def break_the_other_region():
        wait_for(lambda: Compensation.objects.filter(state="injected").exists(), 60, message="injection")
        set_flag(world, "us-west-2", is_enabled=True, fault_type="status_code", error_code=503, rate=1.0)

    thread = threading.Thread(target=break_the_other_region)
    thread.start()
    try:
        ended = drill(operator, approver, row)
    finally:
        thread.join(timeout=60)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert ended.outcome_reason.startswith("Stop condition: us-west-2 became unhealthy")


# --- steady-state checks ---------------------------------------------------------------


def test_the_global_success_rate_steady_state_check_aborts_before_any_fault(world, operator, approver):
    set_flag(world, "us-east-1", is_enabled=True, fault_type="status_code", error_code=503, rate=0.5)
    ended = drill(operator, approver, scenario("fail-region-health-check", hypothesis=A_OK))
    assert ended.state == DrillState.ABORTED, ended.outcome_reason
    assert "Steady state not met before injecting" in ended.outcome_reason
    assert "requests succeeded through the global endpoint (need 90 %)" in ended.outcome_reason
    assert not Compensation.objects.filter(drill=ended).exists()


def test_the_global_p95_latency_steady_state_check_aborts_and_passes_within(world, operator, approver):
    set_flag(world, "us-east-1", is_enabled=True, fault_type="latency", delay=300, rate=1.0)
    check = {"check": "global_p95_latency_ms", "max_ms": 100}
    ended = drill(
        operator, approver, scenario("fail-region-health-check", hypothesis={**A_OK, "steady_state": [check]})
    )
    assert ended.state == DrillState.ABORTED, ended.outcome_reason
    assert "p95 latency" in ended.outcome_reason and "(at most 100 ms)" in ended.outcome_reason
    assert not Compensation.objects.filter(drill=ended).exists()

    set_flag(world, "us-east-1")
    ended = drill(
        operator,
        approver,
        scenario(
            "fail-region-health-check", hypothesis={**A_OK, "steady_state": [{**check, "max_ms": 1000}]}
        ),
    )
    assert ended.state == DrillState.PASSED, ended.outcome_reason


def test_the_regions_healthy_steady_state_check_covers_the_target_region_too(world, operator, approver):
    # The preflight checks the other regions; regions_healthy also the drilled one.
    set_flag(world, "us-east-1", is_enabled=True, fault_type="status_code", error_code=503, rate=1.0)
    hypothesis = {**A_OK, "steady_state": [{"check": "regions_healthy"}]}
    ended = drill(operator, approver, scenario("fail-region-health-check", hypothesis=hypothesis))
    assert ended.state == DrillState.ABORTED, ended.outcome_reason
    assert "us-east-1 is not healthy" in ended.outcome_reason


def test_the_replication_lag_steady_state_check_aborts_when_replication_is_stuck(world, operator, approver):
    pause_replication(world, "us-east-1")
    hypothesis = {**A_OK, "steady_state": [{"check": "replication_lag_ms", "max_ms": 500}]}
    ended = drill(operator, approver, scenario("fail-region-health-check", hypothesis=hypothesis))
    assert ended.state == DrillState.ABORTED, ended.outcome_reason
    assert "no canary write reached us-east-1" in ended.outcome_reason
    assert not Compensation.objects.filter(drill=ended).exists()


# --- the hypothesis ---------------------------------------------------------------------


def test_max_time_to_failover_fails_a_drill_that_fails_over_slower(world, operator, approver):
    ended = drill(
        operator,
        approver,
        scenario("fail-region-health-check", hypothesis={**A_OK, "max_time_to_failover_seconds": 0.2}),
    )
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert ended.outcome_reason == "No failover within 0.2 s (hypothesis)"


def test_replication_hypothesis_lag_and_convergence_are_measured_and_judged(world, operator, approver):
    ended = drill(operator, approver, Scenario.objects.get(slug="pause-replication"))
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    figures = ended.figures
    assert figures["lag_during_ms"] > 1000  # paused for the 2 s hold
    assert 0 <= figures["time_to_converge"] <= 30
    assert figures["rpo_ms"] > 0
    assert 0 < figures["lag_after_ms"] < figures["lag_during_ms"]  # flowing again
    assert len(figures["lag_series"]) >= 2
    assert ended.outcome_reason.startswith("Replication converged")

    low = scenario(
        "pause-replication",
        hypothesis={"steady_state": [], "max_time_to_failover_seconds": 0, "max_replication_lag_ms": 300},
    )
    ended = drill(operator, approver, low)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert ended.outcome_reason.startswith("Replication lag reached")

    instant = scenario(
        "pause-replication",
        hypothesis={"steady_state": [], "max_time_to_failover_seconds": 0, "max_time_to_converge_seconds": 0},
    )
    ended = drill(operator, approver, instant)
    assert ended.state == DrillState.FAILED, ended.outcome_reason
    assert "more than 0 s after resume (hypothesis)" in ended.outcome_reason


def test_a_drill_whose_region_serves_no_observer_is_inconclusive_not_passed(world, operator, approver):
    # The sandbox's global endpoint sends this vantage to us-east-1: failing us-west-2
    # moves nothing this observer sees.
    ended = drill(
        operator, approver, scenario("fail-region-health-check", hypothesis=A_OK), region="us-west-2"
    )
    assert ended.state == DrillState.INCONCLUSIVE, ended.outcome_reason
    assert "never sent the observer to us-west-2" in ended.outcome_reason
    # The timeline agrees with the figures: no "Failed over" where nothing was measured.
    assert not DrillStep.objects.filter(drill=ended, message__startswith="Failed over").exists()
    assert ended.figures["time_to_failover"] is None


# --- judge() on figures (no sandbox) -------------------------------------------------------


@pytest.mark.parametrize(
    ("hypothesis", "figures", "state", "reason"),
    [
        (
            {"max_time_to_failover_seconds": 60},
            {"requests_during": 2},
            DrillState.INCONCLUSIVE,
            "the observer saw only 2 request(s)",
        ),
        (
            {"max_time_to_failover_seconds": 60},
            {"requests_during": 30, "served_by_target_before": True, "time_to_failover": None},
            DrillState.INCONCLUSIVE,
            "time to fail over was not measured",
        ),
        (
            {"max_time_to_failover_seconds": 60},
            {"requests_during": 30, "served_by_target_before": False, "time_to_failover": None},
            DrillState.INCONCLUSIVE,
            "never sent the observer",
        ),
        (
            {"max_time_to_failover_seconds": 60},
            {"requests_during": 30, "served_by_target_before": True, "time_to_failover": 4.2},
            DrillState.PASSED,
            "Failed over in 4.2 s and recovered",
        ),
        (
            {"max_time_to_failover_seconds": 0, "max_replication_lag_ms": 500},
            {"requests_during": 30, "lag_during_ms": None},
            DrillState.INCONCLUSIVE,
            "replication lag during the fault was not measured",
        ),
        (
            {"max_time_to_failover_seconds": 0, "max_time_to_converge_seconds": 5},
            {"requests_during": 30, "time_to_converge": None, "lag_writes_before_revert": 0},
            DrillState.INCONCLUSIVE,
            "convergence not measured",
        ),
        (
            {"max_time_to_failover_seconds": 0, "max_time_to_converge_seconds": 5},
            {"requests_during": 30, "time_to_converge": None, "lag_writes_before_revert": 3},
            DrillState.FAILED,
            "Replication did not converge, more than 5 s",
        ),
        ({"max_time_to_failover_seconds": 0}, {"requests_during": 30}, DrillState.PASSED, "Recovered"),
    ],
)
def test_judge_passes_only_what_was_measured(make_drill, hypothesis, figures, state, reason):
    # The runner judges by the approved plan's hypothesis (never the scenario row's).
    row = make_drill(scenario="fail-region-health-check", plan={"calls": [], "hypothesis": hypothesis})
    run = runner.DrillRun(Drill.objects.select_related("scenario", "application", "region").get(pk=row.pk))
    run.figures = figures
    judged, why = run.judge()
    assert judged == state
    assert reason in why


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "stop_conditions",
            [{"metric": "global_error_rate", "threshold_precent": 10}],
            "global_error_rate needs threshold_percent",
        ),
        (
            "stop_conditions",
            [{"metric": "replication_lag", "threshold_ms": 100, "window": 3}],
            "replication_lag does not take window",
        ),
        (
            "stop_conditions",
            [{"metric": "other_region_unhealthy", "threshold_ms": 1}],
            "other_region_unhealthy does not take threshold_ms",
        ),
        (
            "hypothesis",
            {"steady_state": [{"check": "global_p95_latency_ms"}]},
            "global_p95_latency_ms needs max_ms",
        ),
        (
            "hypothesis",
            {"steady_state": [{"check": "regions_healthy", "min_percent": 50}]},
            "regions_healthy does not take min_percent",
        ),
        ("hypothesis", {"max_time_to_recover_seconds": 5}, "Unknown key(s) max_time_to_recover_seconds"),
        ("hypothesis", {"max_replication_lag_ms": -1}, "max_replication_lag_ms: 0 or more."),
    ],
)
def test_validation_refuses_what_the_runner_would_not_evaluate(db, field, value, message):
    ensure_builtin_scenarios()
    row = Scenario.objects.get(slug="fail-region-health-check")
    row.pk = None
    row.slug = "copy"
    row.built_in = False
    setattr(row, field, value)
    with pytest.raises(ValidationError) as caught:
        validate_scenario(row)
    assert any(message in text for text in caught.value.message_dict[field]), caught.value.message_dict


def test_validation_accepts_every_check_the_runner_evaluates(db):
    ensure_builtin_scenarios()
    row = Scenario.objects.get(slug="pause-replication")
    row.hypothesis = {
        "steady_state": [
            {"check": "global_success_rate", "min_percent": 99},
            {"check": "global_p95_latency_ms", "max_ms": 500},
            {"check": "regions_healthy"},
            {"check": "replication_lag_ms", "max_ms": 2000},
        ],
        "max_time_to_failover_seconds": 0,
        "max_replication_lag_ms": 10_000,
        "max_time_to_converge_seconds": 30,
    }
    row.stop_conditions = [
        {"metric": "global_error_rate", "threshold_percent": 20, "for_seconds": 5},
        {"metric": "global_p95_latency", "threshold_ms": 800, "for_seconds": 5},
        {"metric": "replication_lag", "threshold_ms": 5000},
        {"metric": "other_region_unhealthy"},
    ]
    row.max_duration = timedelta(minutes=10)
    validate_scenario(row)


def test_time_to_detect_uses_the_status_engine_s_interval_and_hysteresis_and_says_who(
    world, settings, operator, approver
):
    ended = drill(operator, approver, scenario("throttle-region-functions", hypothesis=A_OK))
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    figures = ended.figures
    # CONTROLPLANE_STATUS_FAILURES failures, CONTROLPLANE_PROBE_INTERVAL apart, as the
    # status API would need: not the runner's own faster loop.
    least = (settings.CONTROLPLANE_STATUS_FAILURES - 1) * settings.CONTROLPLANE_PROBE_INTERVAL
    assert figures["time_to_detect"] >= least
    assert figures["detected_by"] == (
        f"probes from {settings.CONTROLPLANE_VANTAGE}: /health failed "
        f"{settings.CONTROLPLANE_STATUS_FAILURES} times in a row"
    )


@pytest.mark.parametrize("app, region, other", [
    ("orders", "us-east-1", "us-west-2"),      # A: Route 53 health check on /health
    ("payments", "us-west-2", "eu-central-1"),  # B: Global Accelerator health check on /health
])
def test_throttling_the_region_s_functions_moves_clients_away_and_back(
    world, operator, approver, app, region, other
):
    """The region's /health runs on a function of its own: the scenario throttles every
    function of the region (each call in the plan with its inverse), so the health check
    fails, clients fail over, and come back once the concurrency is restored."""
    throttle = scenario("throttle-region-functions", hypothesis=A_OK)
    ended = drill(operator, approver, throttle, app=app, region=region)

    calls = ended.plan["calls"]
    functions = sorted(c["params"]["FunctionName"].rsplit(":", 1)[-1] for c in calls)
    assert functions == [f"{app}-api", f"{app}-health"]
    assert {(c["operation"], c["params"]["ReservedConcurrentExecutions"]) for c in calls} == {
        ("PutFunctionConcurrency", 0)
    }
    assert [c["inverse"]["operation"] for c in calls] == ["DeleteFunctionConcurrency"] * 2
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    figures = ended.figures
    assert figures["time_to_failover"] is not None and other in figures["regions_during"]
    assert region not in figures["regions_during"]
    assert figures["time_to_recover"] is not None
    lam = world.client("lambda", region)
    for function in (f"{app}-api", f"{app}-health"):
        assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=function)


def test_a_stage_throttle_drill_on_a_stage_without_an_override_leaves_its_method_settings_as_they_were(
    world, operator, approver
):
    stack = world.stack("orders", "us-east-1")
    apigw = world.client("apigateway", "us-east-1")
    before = apigw.get_stage(restApiId=stack.rest_api_id, stageName="prod")["methodSettings"]
    assert "*/*" not in before
    throttle = scenario(
        "fail-region-health-check", fault_kind="api_stage_throttle", hypothesis=A_OK,
        target_selector={"component_kind": "api_gateway_stage"}, parameters={},
    )

    ended = drill(operator, approver, throttle)

    assert ended.state == DrillState.PASSED, ended.outcome_reason
    [call] = ended.plan["calls"]
    assert call["inverse"]["params"]["patchOperations"] == [{"op": "remove", "path": "/*/*"}]
    reverted = AuditEvent.objects.get(action="drill.fault_reverted", object_id=str(ended.pk))
    assert reverted.after["verified"] is True and "verify_problem" not in reverted.after
    assert apigw.get_stage(restApiId=stack.rest_api_id, stageName="prod")["methodSettings"] == before


def test_a_scenario_saved_around_validation_cannot_be_requested(world, operator):
    row = scenario("fail-region-health-check", hypothesis=A_OK)
    Scenario.objects.filter(pk=row.pk).update(  # written around the form: no validation
        stop_conditions=[{"metric": "global_error_rate", "threshold_precent": 10}]
    )
    with pytest.raises(ValidationError) as caught:
        services.request(
            user=operator, scenario=Scenario.objects.get(pk=row.pk),
            application=Application.objects.get(name="orders"), region=Region.objects.get(code="us-east-1"),
        )
    assert "global_error_rate needs threshold_percent" in str(caught.value.message_dict["stop_conditions"])
    assert not Drill.objects.exists()


# --- observers per vantage -----------------------------------------------------------------


def test_a_latency_routed_app_drilled_in_its_other_region_is_measured_from_the_vantage_it_serves(
    world, settings, operator, approver, tmp_path
):
    """orders is latency-routed: clients near us-east-1 (this process, vantage "local") are
    served by us-east-1, clients at us-west-2 by us-west-2. A probe worker for the vantage
    us-west-2 (a real Celery process on probes.us-west-2) observes the drill of us-west-2
    and measures its failover; the local observer says why it cannot."""
    settings.CONTROLPLANE_VANTAGE = "local"
    settings.CONTROLPLANE_PROBE_VANTAGES = ["local", "us-west-2"]
    worker = start_worker(probe_queue("us-west-2"), tmp_path, CONTROLPLANE_VANTAGE="us-west-2")
    try:
        wait_for(lambda: "ready" in worker.log(), 60, message=f"the probe worker:\n{worker.log()}")
        ended = drill(
            operator, approver, scenario("fail-region-health-check", hypothesis=A_OK), region="us-west-2"
        )
    finally:
        worker.stop()
    assert ended.state == DrillState.PASSED, f"{ended.outcome_reason}\n{worker.log()}"
    figures = ended.figures
    assert figures["measured_from"] == ["us-west-2"]
    remote, local = figures["vantages"]["us-west-2"], figures["vantages"]["local"]
    assert remote["served_by_target_before"] is True
    assert local["served_by_target_before"] is False
    assert remote["time_to_failover"] == figures["time_to_failover"] > 0
    assert "us-east-1" in remote["regions_during"]  # (us-west-2 too, until Route 53 noticed)
    assert local["regions_during"] == ["us-east-1"]  # never saw us-west-2 at all
    assert figures["time_to_recover"] == remote["time_to_recover"] is not None
    assert "did not serve local" in figures["note"]
    # Route 53's checkers saw it first, by Route 53's own rule (as the status API reads it).
    assert figures["detected_by"].startswith("Route 53's checkers (")
    assert 0 < figures["time_to_detect"] <= figures["time_to_failover"] + 1
    # The timeline names the vantage that saw the failover, and only that one.
    steps = DrillStep.objects.filter(drill=ended, message__startswith="Failed over")
    assert list(steps.values_list("message", flat=True)) == [
        f"Failed over: us-east-1 served {remote['time_to_failover']:.1f} s after injection "
        "(observer at us-west-2)"
    ]
    assert ObserverBatch.objects.filter(drill=ended, vantage="us-west-2").count() >= 5


def test_a_vantage_whose_probe_worker_never_answers_is_named_and_the_drill_goes_on(
    world, settings, operator, approver
):
    settings.CONTROLPLANE_VANTAGE = "local"
    settings.CONTROLPLANE_PROBE_VANTAGES = ["local", f"nowhere-{uuid.uuid4().hex[:6]}"]
    nowhere = settings.CONTROLPLANE_PROBE_VANTAGES[1]
    ended = drill(operator, approver, scenario("fail-region-health-check", hypothesis=A_OK))
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    assert f"is a worker consuming probes.{nowhere}?" in ended.figures["vantages_missing"][nowhere]
    assert list(ended.figures["vantages"]) == ["local"]
    assert DrillStep.objects.filter(drill=ended, message__startswith=f"Not observed from {nowhere}").exists()


def test_a_traffic_dial_drill_says_there_was_no_failure_to_detect(world, operator, approver, client_for):
    """Dialling a region to 0 % moves clients away while it stays healthy: "time to detect"
    does not apply, and the page says so instead of a bare dash."""
    from django.urls import reverse

    dial = scenario("dial-region-to-zero", hypothesis=A_OK)
    ended = drill(operator, approver, dial, app="payments", region="us-west-2")
    assert ended.state == DrillState.PASSED, ended.outcome_reason
    assert ended.figures["time_to_detect"] is None
    assert ended.figures["detect_note"].startswith("a traffic dial moves clients away")
    page = client_for(operator).get(reverse("experiments:detail", args=[ended.pk])).content.decode()
    assert "not applicable: a traffic dial moves clients away while the region stays healthy" in page
