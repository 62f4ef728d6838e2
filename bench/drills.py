"""Drill latencies and the worker-kill soak, with real Celery processes on Redis and the
sandbox.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_drills \
    CONTROLPLANE_BROKER_URL=redis://127.0.0.1:6379/14 \
    .venv/bin/python bench/drills.py [--rounds 10] [--kills 20]

It creates the database's tables (migrate), fills the inventory by discovering a fresh
sandbox (child process, time scale 0.1), starts one worker and one beat on a queue of
its own, then measures side by side in one run:

1. approval -> first fault call (the ledger row written just before the call), with
   the steady-state window at 0 s so that the figure is the control plane's own
   overhead (dispatch on commit, broker, claim, preflight, plan check), and the default
   2 s window's figure beside it;
2. abort -> every ledger row reverted;
3. the soak: N times, SIGKILL the worker right after injection, start a fresh one (as a
   supervisor would), and count the faults left behind once the reaper has run
   (target: 0 of N), with the time from the kill to the revert.

Bounded: every wait has a deadline; it stops its processes and the sandbox at the end.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from experiments import services  # noqa: E402
from experiments.models import Compensation, Drill, Scenario  # noqa: E402
from experiments.scenarios import ensure_builtin_scenarios  # noqa: E402
from regions.discovery import run_discovery  # noqa: E402
from regions.models import Application, Region  # noqa: E402
from tests.processes import CeleryProcess, child_env, start_worker, unique_queue, wait_for  # noqa: E402
from tests.sandbox_support import SandboxProcess  # noqa: E402

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values):
    if not values:
        return "n/a"
    return (
        f"p50 {statistics.median(values) * 1000:7.0f} ms   p95 {pct(values, 0.95) * 1000:7.0f} ms   "
        f"max {max(values) * 1000:7.0f} ms   (n={len(values)})"
    )


def user(name, role):
    u, _ = User.objects.get_or_create(username=name)
    u.groups.set([Group.objects.get(name=role)])
    return u


def fresh(pk):
    close_old_connections()
    return Drill.objects.get(pk=pk)


def request_and_approve(operator, approver):
    drill = services.request(
        user=operator,
        scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"),
        region=Region.objects.get(code="us-east-1"),
    )
    approved = time.time()  # wall clock: compared with the ledger row's created_at
    services.approve(drill, approver)
    return drill, approved


def injected_row(drill, timeout=60):
    return wait_for(
        lambda: (
            (close_old_connections() or True)
            and Compensation.objects.filter(drill=drill, state="injected").first()
        ),
        timeout,
        message=f"drill {drill.pk} to inject",
    )


def wait_final(drill, timeout=120):
    return wait_for(
        lambda: (d := fresh(drill.pk)).is_final and d, timeout, message=f"drill {drill.pk} to end"
    )


def health_check_inverted(sb):
    check = sb.stack("orders", "us-east-1").health_check_id
    config = sb.client("route53", "us-east-1").get_health_check(HealthCheckId=check)["HealthCheck"]
    return config["HealthCheckConfig"].get("Inverted", False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()

    print(
        f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} "
        f"{settings.DATABASES['default']['NAME']}, broker {settings.CELERY_BROKER_URL.split('://')[0]}"
    )
    call_command("migrate", verbosity=0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-drills-"))
    sb = SandboxProcess(time_scale=0.1)
    processes = []
    try:
        settings.AWS_ENDPOINT_URL = sb.aws_endpoint
        run_discovery(actor="bench", regions=REGIONS, prune=True)
        ensure_builtin_scenarios()
        operator, approver = user("bench-operator", "operator"), user("bench-approver", "approver")
        queue = unique_queue("bench-drills")
        settings.DRILL_QUEUE = queue
        env = {
            "CONTROLPLANE_DRILL_QUEUE": queue,
            "DRILL_HOLD_SECONDS": 300,
            "DRILL_HEARTBEAT_TIMEOUT_SECONDS": 4,
            "DRILL_REAPER_INTERVAL": 1,
            "DRILL_RECOVERY_TIMEOUT_SECONDS": 10,
        }

        def worker(**extra):
            w = start_worker(queue, tmp, concurrency=1, **{**env, **extra})
            processes.append(w)
            return w

        beat = CeleryProcess(["beat", "-s", str(tmp / "beat-schedule")], child_env(**env), tmp / "beat.log")
        processes.append(beat)

        # 1 + 2: latencies, one worker per steady-state setting, abort after injection.
        results = {}
        for steady in (0, 2):
            w = worker(DRILL_STEADY_STATE_SECONDS=steady)
            to_inject, to_revert = [], []
            for round_no in range(args.rounds + 1):  # round 0 warms the fresh worker up
                drill, approved = request_and_approve(operator, approver)
                row = injected_row(drill)
                # The ledger row is written just before the AWS call (same machine, same clock).
                to_inject.append(row.created_at.timestamp() - approved)
                pressed = time.monotonic()
                services.abort(fresh(drill.pk), operator, reason="bench")
                wait_for(
                    lambda d=drill: (
                        (close_old_connections() or True)
                        and not Compensation.objects.filter(drill=d).exclude(state="reverted").exists()
                    ),
                    10,
                    message="revert after abort",
                )
                to_revert.append(time.monotonic() - pressed)
                wait_final(drill)
                if round_no == 0:
                    to_inject.pop()
                    to_revert.pop()
            w.stop()
            results[steady] = (to_inject, to_revert)

        # 3: the soak.
        left_behind, kill_to_revert = 0, []
        w = worker(DRILL_STEADY_STATE_SECONDS=0)
        for i in range(args.kills):
            drill, _ = request_and_approve(operator, approver)
            injected_row(drill)
            w.kill()
            killed = time.monotonic()
            w = worker(DRILL_STEADY_STATE_SECONDS=0)
            try:
                wait_for(
                    lambda d=drill: (
                        (close_old_connections() or True)
                        and not Compensation.objects.filter(drill=d).exclude(state="reverted").exists()
                    ),
                    60,
                    message=f"kill {i + 1}: the reaper to revert",
                )
                kill_to_revert.append(time.monotonic() - killed)
            except AssertionError as exc:
                print(f"  kill {i + 1}: {exc}")
            if health_check_inverted(sb):
                left_behind += 1
                print(f"  kill {i + 1}: FAULT LEFT BEHIND")
            wait_final(drill)
            print(
                f"  kill {i + 1}/{args.kills}: reverted {kill_to_revert[-1]:.1f} s after SIGKILL", flush=True
            )
        w.stop()

        print()
        print("approval -> first fault call, steady-state window 0 s (control-plane overhead):")
        print("   ", fmt(results[0][0]))
        print("approval -> first fault call, steady-state window 2 s (default):")
        print("   ", fmt(results[2][0]))
        print("abort -> every ledger row reverted:")
        print("   ", fmt(results[0][1] + results[2][1]))
        print(
            f"soak: {args.kills} SIGKILLs right after injection -> faults left behind: "
            f"{left_behind} of {args.kills}"
        )
        print(
            "    kill -> reverted by the reaper (heartbeat timeout 4 s, reaper every 1 s):",
            fmt(kill_to_revert),
        )
    finally:
        for p in processes:
            p.stop()
        sb.stop()


if __name__ == "__main__":
    main()
