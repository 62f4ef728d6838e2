"""Drills end to end: a real Celery worker process runs them against the sandbox.

Every test gets its own queue (settings.DRILL_QUEUE and `-Q`), so stale messages of
other runs never reach its worker.
"""

import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, connection
from django.utils import timezone

from controlplane.models import AuditEvent
from experiments import runner, services
from experiments.models import Approval, Compensation, Drill, DrillState, Scenario
from regions.models import Application, Region
from tests.processes import CeleryProcess, child_env, start_worker, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drill_queue_prefix():
    """The world's queue (tests/experiments/conftest.py) is the one these tests' workers consume."""
    return "drills"


def _fresh(model, pk):
    close_old_connections()
    return model.objects.get(pk=pk)


def _request(operator, slug="fail-region-health-check", app="orders", region="us-east-1"):
    return services.request(
        user=operator,
        scenario=Scenario.objects.get(slug=slug),
        application=Application.objects.get(name=app),
        region=Region.objects.get(code=region),
    )


def _worker(settings, tmp_path, **env):
    return start_worker(
        settings.DRILL_QUEUE, tmp_path, concurrency=1,
        CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE, **env,
    )


def _final(drill_id, timeout, log=lambda: ""):
    return wait_for(
        lambda: (d := _fresh(Drill, drill_id)).is_final and d,
        timeout, message=f"drill {drill_id} to end:\n{log()}",
    )


def _drill_audit(drill):
    events = AuditEvent.objects.filter(object_type="experiments.drill", object_id=str(drill.pk))
    return list(events.order_by("seq"))


def _inverted(world, app="orders", region="us-east-1"):
    check = world.stack(app, region).health_check_id
    return world.client("route53", "us-east-1").get_health_check(HealthCheckId=check)["HealthCheck"][
        "HealthCheckConfig"
    ].get("Inverted", False)


def test_a_drill_on_orders_fails_over_reverts_and_passes(world, settings, operator, approver, tmp_path):
    worker = _worker(settings, tmp_path)
    try:
        drill = _request(operator)
        assert services.approve(drill, approver, comment="go") is not None
        drill = _final(drill.pk, 120, worker.log)
    finally:
        worker.stop()
    assert drill.state == DrillState.PASSED, drill.outcome_reason
    figures = drill.figures
    assert 0 < figures["time_to_failover"] < 20
    assert figures["time_to_recover"] is not None and figures["time_to_recover"] >= 0
    assert figures["time_to_detect"] is not None
    assert "us-west-2" in figures["regions_during"]
    assert drill.plan_hash == Approval.objects.get(drill=drill).plan_hash
    assert not Compensation.objects.filter(drill=drill).exclude(state="reverted").exists()
    assert _inverted(world) is False
    events = _drill_audit(drill)
    assert [e.action for e in events] == [
        "drill.requested", "drill.approved", "drill.queued", "drill.running", "drill.fault_injected",
        "drill.reverting", "drill.fault_reverted", "drill.passed",
    ]
    [row] = Compensation.objects.filter(drill=drill)
    injected, reverted = (e for e in events if e.action.startswith("drill.fault_"))
    assert injected.after["call"]["operation"] == "UpdateHealthCheck"
    assert injected.after["call"]["params"]["Inverted"] is True
    assert injected.after["inverse"]["params"]["Inverted"] is False
    assert injected.after["previous_value"] == {"Inverted": False}
    assert reverted.after["call"] == {k: v for k, v in row.inverse.items() if k != "inverse"}
    assert reverted.after["verified"] is True
    assert {e.after["compensation"] for e in (injected, reverted)} == {row.pk}
    assert {e.after["worker"] for e in (injected, reverted)} == {drill.worker}


def test_abort_reverts_the_fault_within_two_seconds(world, settings, operator, approver, tmp_path):
    worker = _worker(settings, tmp_path, DRILL_HOLD_SECONDS=120, DRILL_RECOVERY_TIMEOUT_SECONDS=5)
    try:
        drill = _request(operator)
        services.approve(drill, approver)
        wait_for(lambda: Compensation.objects.filter(drill=drill, state="injected").exists(), 60,
                 message=f"injection:\n{worker.log()}")
        assert _inverted(world) is True
        pressed = time.monotonic()
        assert services.abort(_fresh(Drill, drill.pk), operator, reason="enough") == "abort requested"
        wait_for(lambda: not Compensation.objects.filter(drill=drill).exclude(state="reverted").exists(), 2,
                 message="the revert after abort")
        reverted_in = time.monotonic() - pressed
        drill = _final(drill.pk, 60, worker.log)
    finally:
        worker.stop()
    assert reverted_in <= 2
    assert _inverted(world) is False
    assert drill.state == DrillState.ABORTED
    assert "enough" in drill.outcome_reason


def test_a_killed_worker_s_fault_is_reverted_by_the_reaper(world, settings, operator, approver, tmp_path):
    env = {"DRILL_HOLD_SECONDS": 300, "DRILL_HEARTBEAT_TIMEOUT_SECONDS": 4, "DRILL_REAPER_INTERVAL": 1}
    first = _worker(settings, tmp_path, **env)
    fresh = beat = None
    try:
        drill = _request(operator)
        services.approve(drill, approver)
        wait_for(lambda: Compensation.objects.filter(drill=drill, state="injected").exists(), 60,
                 message=f"injection:\n{first.log()}")
        first.kill()  # SIGKILL to the whole process group, right after injection
        killed = time.monotonic()
        assert _inverted(world) is True
        # A supervisor starts a fresh worker; beat keeps running the reaper.
        fresh = _worker(settings, tmp_path, **env)
        beat = CeleryProcess(
            ["beat", "--loglevel", "INFO", "-s", str(tmp_path / "beat-schedule")],
            child_env(CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE, **env), tmp_path / "beat.log",
        )
        drill = _final(drill.pk, 30, lambda: fresh.log() + beat.log())
        reaped_in = time.monotonic() - killed
    finally:
        for process in (first, fresh, beat):
            if process is not None:
                process.stop()
    assert drill.state == DrillState.ERRORED
    assert "worker lost, fault reverted" in drill.outcome_reason
    assert reaped_in <= 30
    assert _inverted(world) is False
    assert not Compensation.objects.filter(drill=drill).exclude(state="reverted").exists()
    # The audit lists every injection and every revert: the killed worker's, the reaper's.
    events = _drill_audit(drill)
    assert [e.action for e in events] == [
        "drill.requested", "drill.approved", "drill.queued", "drill.running", "drill.fault_injected",
        "drill.fault_reverted", "drill.errored",
    ]
    [row] = Compensation.objects.filter(drill=drill)
    injected, reverted = events[4:6]
    assert injected.after["compensation"] == reverted.after["compensation"] == row.pk
    assert injected.after["call"]["operation"] == reverted.after["call"]["operation"] == "UpdateHealthCheck"
    assert not injected.after["worker"].startswith("reaper@")
    assert reverted.after["worker"].startswith("reaper@")


def test_a_drill_approved_while_the_broker_is_down_runs_once_it_is_back(
    world, settings, operator, approver, tmp_path
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = f"redis://127.0.0.1:{port}/0"
    drill = _request(operator)
    # Approve from a console process whose broker is down.
    script = (
        "from experiments import services; from experiments.models import Drill;"
        "from django.contrib.auth.models import User;"
        f"print(services.approve(Drill.objects.get(pk={drill.pk}), User.objects.get(pk={approver.pk})))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        env=child_env(CONTROLPLANE_BROKER_URL=broker, CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE),
        capture_output=True, text=True, timeout=120, cwd=settings.BASE_DIR,
    )
    assert result.returncode == 0, result.stderr
    drill = _fresh(Drill, drill.pk)
    assert drill.state == DrillState.QUEUED  # kept, not dropped
    assert drill.dispatched_at is None
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    env = {"CONTROLPLANE_BROKER_URL": broker, "DRILL_REDISPATCH_AFTER_SECONDS": 1, "DRILL_REAPER_INTERVAL": 1}
    worker = _worker(settings, tmp_path, **env)
    beat = CeleryProcess(
        ["beat", "--loglevel", "INFO", "-s", str(tmp_path / "beat-schedule")],
        child_env(CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE, **env), tmp_path / "beat.log",
    )
    try:
        drill = _final(drill.pk, 120, lambda: worker.log() + beat.log())
    finally:
        worker.stop()
        beat.stop()
        redis.terminate()
        redis.wait(timeout=10)
    assert drill.state == DrillState.PASSED, drill.outcome_reason
    runs = AuditEvent.objects.filter(object_id=str(drill.pk), action="drill.running").count()
    assert runs == 1


def test_twenty_concurrent_approvals_queue_the_drill_exactly_once(world, operator, make_user):
    drill = _request(operator)
    approvers = [make_user(f"approver-{i}", "approver") for i in range(20)]
    dispatched = []
    real_dispatch = services.dispatch
    results = []
    barrier = threading.Barrier(20)

    def approve(user):
        try:
            barrier.wait()
            results.append(services.approve(Drill.objects.get(pk=drill.pk), user))
        finally:
            connection.close()

    services.dispatch = lambda pk: dispatched.append(pk) or False  # count; no worker here
    try:
        threads = [threading.Thread(target=approve, args=(u,)) for u in approvers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        services.dispatch = real_dispatch
    assert sum(1 for r in results if r is not None) == 1
    assert Approval.objects.filter(drill=drill).count() == 1
    assert dispatched == [drill.pk]
    assert AuditEvent.objects.filter(object_id=str(drill.pk), action="drill.queued").count() == 1
    assert runner.run(drill.pk + 10_000) is None  # an unknown or unclaimable drill does nothing


def _queued_without_worker(operator, approver, settings):
    drill = _request(operator)
    settings.DRILL_QUEUE = unique_queue("nobody-listens")
    services.approve(drill, approver)
    return _fresh(Drill, drill.pk)


def test_an_expired_approval_cannot_run(world, settings, operator, approver):
    drill = _queued_without_worker(operator, approver, settings)
    Approval.objects.filter(drill=drill).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert runner.run(drill.pk) == DrillState.ABORTED
    drill = _fresh(Drill, drill.pk)
    assert "no valid approval" in drill.outcome_reason
    assert not Compensation.objects.filter(drill=drill).exists()


def test_a_changed_plan_cannot_run(world, settings, operator, approver):
    drill = _queued_without_worker(operator, approver, settings)
    # Someone changes the target after approval: the plan's recorded inverse is stale.
    check = world.stack("orders", "us-east-1").health_check_id
    route53 = world.client("route53", "us-east-1")
    route53.update_health_check(HealthCheckId=check, Inverted=True)
    try:
        assert runner.run(drill.pk) == DrillState.ABORTED
    finally:
        route53.update_health_check(HealthCheckId=check, Inverted=False)
    drill = _fresh(Drill, drill.pk)
    assert "plan changed" in drill.outcome_reason
    assert not Compensation.objects.filter(drill=drill).exists()


def test_the_requester_cannot_approve_and_a_viewer_cannot_request(world, operator, viewer, make_user):
    drill = _request(operator)
    both = make_user("both-roles", "operator", "approver")
    own = _request(both)
    with pytest.raises(PermissionDenied):
        services.approve(own, both)
    with pytest.raises(PermissionDenied):
        _request(viewer)
    assert _fresh(Drill, drill.pk).state == DrillState.REQUESTED
    assert _fresh(Drill, own.pk).state == DrillState.REQUESTED


def test_a_drill_is_aborted_before_any_fault_when_another_region_is_unhealthy(
    world, settings, operator, approver, tmp_path
):
    import json

    from sandbox.seed import FAULT_OFF

    # us-west-2, where orders would fail over to, answers 503 (the sandbox's failure flag)
    ssm = world.client("ssm", "us-west-2")
    parameter = world.stack("orders", "us-west-2").ssm_fault_parameter
    fault = {"is_enabled": True, "fault_type": "status_code", "error_code": 503, "rate": 1}
    ssm.put_parameter(Name=parameter, Value=json.dumps(fault), Type="String", Overwrite=True)
    worker = _worker(settings, tmp_path)
    try:
        drill = _request(operator)
        services.approve(drill, approver, comment="go")
        drill = _final(drill.pk, 60, worker.log)
    finally:
        worker.stop()
        ssm.put_parameter(Name=parameter, Value=json.dumps(FAULT_OFF), Type="String", Overwrite=True)
    assert drill.state == DrillState.ABORTED
    assert drill.outcome_reason == "Preflight: us-west-2 is not healthy (503 from /health)"
    assert not Compensation.objects.filter(drill=drill).exists()  # nothing was injected
    assert _inverted(world) is False
