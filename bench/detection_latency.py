"""Detection latency: from a fault injected with boto3 to "unhealthy" in the status.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_h7 CONTROLPLANE_VAR_DIR=/tmp/h7var \
        .venv/bin/python bench/detection_latency.py

What runs (all real except Celery's transport):

- the sandbox in a child process (`sandbox.testing.SandboxProcess`, `manage.py sandbox`
  on free loopback ports), time scale BENCH_TIME_SCALE (1: the app servers honour a
  fault on the very next request whatever the scale);
- the inventory discovered from it through the AWS APIs (`regions.discovery.run_discovery`);
- the probe path, in a thread of this process, exactly as Celery runs it but without the
  broker: every second (beat's schedule) `regions.tasks.probe_cycle`'s work for that
  tick (`monitoring.due_target_keys(tick)` then `probes.partition`) and, for each batch,
  the `probe_batch` task's own function (`probe_batch.run(keys, vantage)`: load targets,
  `run_probes`, `store_results`). Interval CONTROLPLANE_PROBE_INTERVAL = 2 s, failures to
  go down CONTROLPLANE_STATUS_FAILURES = 2;
- the status API's code path, `regions.monitoring.load_status()`, polled every 50 ms
  from the main thread (what GET /api/v1/status returns, without HTTP).

Each round: put the SSM failure flag of orders/us-east-1 (`is_enabled: true,
fault_type: status_code, error_code: 503, rate: 1`) with boto3; time from the call
returning until the status of orders' us-east-1 region is `unhealthy`; revert the flag
and wait until the region is healthy again (not timed); repeat BENCH_ROUNDS (20) times.
Compared with the bound interval x failures + 1 s and with Route 53's 10 s x 3 and
30 s x 3 defaults.

Works in a throwaway database (<NAME>_detect on PostgreSQL, a file in
CONTROLPLANE_VAR_DIR on SQLite), created and destroyed here; stops by itself (a bound
per round and an alarm after BENCH_TIMEOUT seconds).
"""

import contextlib
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("CONTROLPLANE_PROBE_INTERVAL", "2")
os.environ.setdefault("CONTROLPLANE_STATUS_FAILURES", "2")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 20))
TIME_SCALE = float(os.environ.get("BENCH_TIME_SCALE", 1))
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 600))
ROUND_LIMIT = 30.0  # seconds to detect or to recover in one round, else the run fails
APP, REGION = "orders", "us-east-1"
FAULT_ON = {"is_enabled": True, "fault_type": "status_code", "error_code": 503, "rate": 1}


class ProbeLoop(threading.Thread):
    """Beat + one probe worker: each second, the due targets' batches, run in turn."""

    def __init__(self):
        super().__init__(daemon=True, name="probe-loop")
        self.stop = threading.Event()
        self.errors = []
        self.late = 0  # ticks whose work took longer than the second

    def run(self):
        from regions import monitoring, probes
        from regions.tasks import probe_batch

        vantage = settings.CONTROLPLANE_VANTAGE
        next_tick = int(time.time()) + 1
        try:
            while not self.stop.is_set():
                self.stop.wait(max(0.0, next_tick - time.time()))
                tick = next_tick
                next_tick += 1
                keys = monitoring.due_target_keys(tick)
                for batch in probes.partition(keys, settings.CONTROLPLANE_PROBE_BATCH_SIZE):
                    probe_batch.run(batch, vantage)
                if time.time() > next_tick:
                    self.late += 1
                    next_tick = int(time.time()) + 1
        except Exception as exc:  # reported by the main thread
            self.errors.append(exc)
        finally:
            connections.close_all()


def region_status(app_id):
    from regions import monitoring

    status = monitoring.load_status(application_ids=[app_id])[app_id]
    return next(r.status for r in status.regions if r.region == REGION)


def wait_status(app_id, wanted, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if region_status(app_id) == wanted:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"{APP}/{REGION} not {wanted} after {limit} s")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def main():
    from controlplane import aws
    from regions.discovery import run_discovery
    from regions.models import Application, Stack
    from regions.status import HealthStatus
    from sandbox.seed import FAULT_OFF
    from sandbox.testing import SandboxProcess

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("benchmark timed out")))
    signal.alarm(TIMEOUT)
    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        settings_dict["TEST"]["NAME"] = str(Path(settings.VAR_DIR) / "bench-detect.sqlite3")
    else:
        settings_dict["TEST"]["NAME"] = f"{settings_dict['NAME']}_detect"
    old_name = settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    sb = loop = None
    times = []
    try:
        sb = SandboxProcess(time_scale=TIME_SCALE)
        settings.AWS_ENDPOINT_URL = sb.aws_endpoint
        aws.reset()
        regions = sorted({r for app in sb.state["applications"].values() for r in app["stacks"]})
        report = run_discovery(actor="bench", regions=regions)
        app = Application.objects.get(name=APP)
        targets = Stack.objects.exclude(health_url="").count() + Application.objects.exclude(
            global_endpoint_url=""
        ).count()
        print(f"{time.strftime('%Y-%m-%d %H:%M')}; database {connection.vendor}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}; sandbox up in {sb.startup_seconds:.1f} s "
              f"(time scale {TIME_SCALE}); discovery: {len(report.found)} component(s), "
              f"{targets} probe target(s); interval {settings.CONTROLPLANE_PROBE_INTERVAL:g} s, "
              f"failures {settings.CONTROLPLANE_STATUS_FAILURES}")
        ssm = sb.client("ssm", REGION)
        parameter = sb.stack(APP, REGION).ssm_fault_parameter

        def put(value):
            ssm.put_parameter(Name=parameter, Value=json.dumps(value), Type="String", Overwrite=True)

        loop = ProbeLoop()
        loop.start()
        wait_status(app.pk, HealthStatus.HEALTHY, ROUND_LIMIT)
        for n in range(ROUNDS):
            time.sleep((n * 0.37) % 2.0)  # spread the injections over the probe phase
            put(FAULT_ON)
            injected = time.monotonic()
            detected = wait_status(app.pk, HealthStatus.UNHEALTHY, ROUND_LIMIT)
            times.append(detected - injected)
            put(FAULT_OFF)
            wait_status(app.pk, HealthStatus.HEALTHY, ROUND_LIMIT)
            if loop.errors:
                raise loop.errors[0]
    finally:
        if loop is not None:
            loop.stop.set()
            loop.join(15)
        if sb is not None:
            with contextlib.suppress(Exception):  # best effort; the sandbox is stopped next
                put(FAULT_OFF)
            sb.stop()
        from regions import probes

        probes.close_engine()
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        signal.alarm(0)

    interval = settings.CONTROLPLANE_PROBE_INTERVAL
    failures = settings.CONTROLPLANE_STATUS_FAILURES
    bound = interval * failures + 1.0
    p50, p95 = statistics.median(times), pct(times, 95)
    print()
    print(f"detection latency, {len(times)} rounds (SSM 503 fault on {APP}/{REGION} -> "
          f"region unhealthy in load_status): p50 {p50:.2f} s, p95 {p95:.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s")
    print(f"    all: {' '.join(f'{t:.2f}' for t in times)}")
    print(f"    probe ticks that overran their second: {loop.late}")
    print(f"bound interval x failures + 1 s = {interval:g} x {failures} + 1 = {bound:g} s: "
          f"p95 {'within' if p95 <= bound else 'ABOVE'} ({p95 / bound:.2f}x of the bound)")
    for label, seconds in (("Route 53 fast (10 s x 3)", 30.0), ("Route 53 standard (30 s x 3)", 90.0)):
        print(f"vs {label} = {seconds:g} s: p50 {seconds / p50:.1f}x faster, p95 {seconds / p95:.1f}x faster")


if __name__ == "__main__":
    main()
