"""A drill under the run command's own process set (scripts/supervise.py on Procfile.dev,
what ./run.sh runs): SIGKILL the worker in the middle of a drill; supervisor starts it
again within seconds, the reaper on the new worker reverts the fault, and the console,
beat and sandbox stay up."""

import os
import signal
import socket
import time
import urllib.request

import pytest
from django.db import close_old_connections

from controlplane import aws
from experiments import services
from experiments.models import Compensation, Drill, DrillState, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Component, ComponentKind, Region, Stack
from sandbox import world
from tests.processes import RunCommand, child_env, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh(pk):
    close_old_connections()
    return Drill.objects.get(pk=pk)


def test_a_worker_killed_mid_drill_under_the_run_command_comes_back_and_the_fault_is_reverted(
    settings, operator, approver, tmp_path, monkeypatch
):
    for key, value in world.SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(key, value)  # our own boto3 clients sign with these
    aws_port, console_port = _free_port(), _free_port()
    endpoint = f"http://127.0.0.1:{aws_port}"
    settings.DRILL_QUEUE = unique_queue("drills")
    vantage = unique_queue("vantage")
    # This process requests the drill: its plan names the vantages the run command's
    # processes observe from (web and workers share them, or preflight refuses the plan).
    settings.CONTROLPLANE_PROBE_VANTAGES = [vantage]
    env = child_env(
        CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE,
        CONTROLPLANE_VANTAGE=vantage,
        CONTROLPLANE_AWS_ENDPOINT_URL=endpoint,
        CONSOLE_PORT=console_port,
        SANDBOX_AWS_PORT=aws_port,
        SANDBOX_BASE_PORT=0,
        SANDBOX_TIME_SCALE=0.2,
        DRILL_HOLD_SECONDS=300,
        DRILL_HEARTBEAT_TIMEOUT_SECONDS=4,
        DRILL_REAPER_INTERVAL=1,
        **world.SANDBOX_CREDENTIALS,
    )
    run = RunCommand(tmp_path, env)
    try:
        for name in ("sandbox", "discover", "web", "worker", "probes", "beat"):
            run.wait_for_line(rf"success: {name} entered RUNNING", 60)
        wait_for(
            lambda: "discovered" in run.log("discover"), 60, message=f"discovery:\n{run.log('discover')}"
        )
        assert Stack.objects.filter(application__name="orders").count() == 2
        settings.AWS_ENDPOINT_URL = endpoint
        ensure_builtin_scenarios()
        route53 = aws.client("route53", "us-east-1")
        check_id = Component.objects.get(
            stack__application__name="orders", stack__region__code="us-east-1",
            kind=ComponentKind.ROUTE53_HEALTH_CHECK,
        ).identifier

        def inverted():
            return route53.get_health_check(HealthCheckId=check_id)["HealthCheck"]["HealthCheckConfig"].get(
                "Inverted", False
            )

        drill = services.request(
            user=operator,
            scenario=Scenario.objects.get(slug="fail-region-health-check"),
            application=Application.objects.get(name="orders"),
            region=Region.objects.get(code="us-east-1"),
        )
        assert services.approve(drill, approver, comment="go") is not None
        wait_for(
            lambda: Compensation.objects.filter(drill=drill, state="injected").exists(), 90,
            message=f"injection:\n{run.log('worker')}",
        )
        assert inverted() is True
        others = {name: run.pid(name) for name in ("web", "beat", "sandbox", "discover", "probes")}
        killed_pid = run.pid("worker")
        index = len(run.lines)
        os.killpg(killed_pid, signal.SIGKILL)  # the worker and its pool children
        killed = time.monotonic()
        index, _ = run.wait_for_line(
            r"exited: worker \(terminated by SIGKILL; not expected\)", 15, after=index
        )
        _, spawned = run.wait_for_line(r"spawned: 'worker' with pid (\d+)", 15, after=index)
        back_in = time.monotonic() - killed
        assert int(spawned.group(1)) != killed_pid

        drill = wait_for(
            lambda: (d := _fresh(drill.pk)).is_final and d, 60,
            message=f"drill to end:\n{run.log('worker')}",
        )
        reverted_in = time.monotonic() - killed
        assert drill.state == DrillState.ERRORED
        assert "worker lost, fault reverted" in drill.outcome_reason
        assert inverted() is False
        assert not Compensation.objects.filter(drill=drill).exclude(state="reverted").exists()
        # Nothing else went down with the worker.
        assert {name: run.pid(name) for name in others} == others
        with urllib.request.urlopen(f"http://127.0.0.1:{console_port}/healthz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        run.stop()
    assert back_in < 10
    assert reverted_in < 60
