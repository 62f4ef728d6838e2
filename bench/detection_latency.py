"""Detection latency: from a fault injected with boto3 to "unhealthy" in the status API.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_h7 \
    CONTROLPLANE_BROKER_URL=redis://127.0.0.1:6379/13 CONTROLPLANE_VAR_DIR=/tmp/h7var \
        .venv/bin/python bench/detection_latency.py

Everything as it runs in production, each in its own process:

- the sandbox (`tests.sandbox_support.SandboxProcess`, `manage.py sandbox` on free loopback
  ports), time scale BENCH_TIME_SCALE (1: the app servers honour a fault on the very
  next request whatever the scale);
- the inventory discovered from it through the AWS APIs (`regions.discovery.run_discovery`);
- Celery **beat** (its schedule: `probe_cycle` every second, and the AWS health, lag and
  rollup tasks) and two Celery **workers** (2 prefork processes each), one on
  `probes.<vantage>`, one on `celery`, on the configured broker (CONTROLPLANE_BROKER_URL; the filesystem
  broker in CONTROLPLANE_VAR_DIR by default: give the benchmark a broker no other worker
  reads). A vantage label of its own; interval CONTROLPLANE_PROBE_INTERVAL = 2 s,
  failures to go down CONTROLPLANE_STATUS_FAILURES = 2, successes to come back 2;
- the console (gunicorn, 1 worker) serving `GET /api/v1/status`, polled every 50 ms over
  HTTP with a personal API token.

Each round: put the SSM failure flag of orders/us-east-1 (`is_enabled: true,
fault_type: status_code, error_code: 503, rate: 1`) with boto3; time from the call
returning until the status API says orders' us-east-1 region is `unhealthy`; revert the
flag and time until the console's own probes say `healthy` again (the region's
`health`), then until the region's status is `healthy` with AWS's own view included
(Route 53 saw the failure too, and its status is polled at most every 30 s); repeat
BENCH_ROUNDS (20) times, the injections spread over the probe phase. Compared with the
bound interval x failures + 1 s and with Route 53's 10 s x 3 and 30 s x 3 defaults.

Works in a throwaway database (<NAME>_detect on PostgreSQL, a file in
CONTROLPLANE_VAR_DIR on SQLite), created and destroyed here; stops by itself (a bound
per round and an alarm after BENCH_TIMEOUT seconds).
"""

import contextlib
import http.client
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
os.environ.setdefault("CONTROLPLANE_PROBE_INTERVAL", "2")
os.environ.setdefault("CONTROLPLANE_STATUS_FAILURES", "2")
os.environ.setdefault("CONTROLPLANE_STATUS_SUCCESSES", "2")
os.environ.setdefault("CONTROLPLANE_VANTAGE", f"bench-{uuid.uuid4().hex[:6]}")
os.environ.setdefault("CONTROLPLANE_PROBE_VANTAGES", os.environ["CONTROLPLANE_VANTAGE"])

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402

from tests.processes import CeleryProcess, child_env, start_worker  # noqa: E402

VANTAGE = settings.CONTROLPLANE_VANTAGE
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 20))
TIME_SCALE = float(os.environ.get("BENCH_TIME_SCALE", 1))
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 900))
ROUND_LIMIT = 30.0  # seconds to detect or to recover in one round, else the run fails
AWS_VIEW_LIMIT = 120.0  # for AWS's view to come back (Route 53 polled every 30 s)
START_LIMIT = 90.0  # for beat, the worker and the console to start and see the region healthy
APP, REGION = "orders", "us-east-1"
FAULT_ON = {"is_enabled": True, "fault_type": "status_code", "error_code": 503, "rate": 1}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StatusAPI:
    """GET /api/v1/status on the console, with a bearer token, on one kept connection."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.reason = ""  # of the region, as last read

    def region(self):
        """The region's entry in the status API (None while the console cannot answer)."""
        try:
            self.conn.request("GET", "/api/v1/status", headers={
                "Authorization": f"Bearer {self.token}", "Host": "127.0.0.1"})
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return None
        if resp.status != 200:
            return None
        for app in json.loads(body)["applications"]:
            for region in app["regions"] if app["name"] == APP else ():
                if region["region"] == REGION:
                    self.reason = region["reason"]
                    return region
        return None

    def wait(self, wanted, limit, *, probes_only=False):
        """Poll every 50 ms until the region's status (or, `probes_only`, the verdict of
        the console's own probes, without AWS's view) is `wanted`; the time it was seen."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            region = self.region()
            if region and (region["health"]["status"] if probes_only else region["status"]) == wanted:
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"{APP}/{REGION} not {wanted} in the status API after {limit} s: {self.reason}")


def probe_gaps(stack_id):
    """Seconds between consecutive samples of the stack from this vantage (beat's ticks
    as the probes saw them: a gap of 2 intervals is a skipped probe)."""
    from regions.models import HealthSample

    ats = list(HealthSample.objects.filter(stack_id=stack_id, vantage=VANTAGE).order_by("at")
               .values_list("at", flat=True))
    return [(b - a).total_seconds() for a, b in itertools.pairwise(ats)]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def main():
    from django.contrib.auth import get_user_model

    from controlplane.api import issue_token
    from regions.discovery import run_discovery
    from regions.models import Application, Stack
    from sandbox.seed import FAULT_OFF
    from tests.sandbox_support import SandboxProcess

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
    tmp = Path(tempfile.mkdtemp(prefix="bench-detect-", dir=settings.VAR_DIR))
    sb = server = None
    processes = []
    detect, recover, aws_view = [], [], []
    try:
        sb = SandboxProcess(time_scale=TIME_SCALE)
        settings.AWS_ENDPOINT_URL = sb.aws_endpoint
        regions = sorted({r for app in sb.state["applications"].values() for r in app["stacks"]})
        report = run_discovery(actor="bench", regions=regions)
        Application.objects.get(name=APP)
        targets = Stack.objects.exclude(health_url="").count() + Application.objects.exclude(
            global_endpoint_url=""
        ).count()
        user = get_user_model().objects.create_superuser("bench-detect", password=uuid.uuid4().hex)
        token = issue_token(user, "detection benchmark")[1]
        print(f"{time.strftime('%Y-%m-%d %H:%M')}; database {connection.vendor}; broker "
              f"{settings.CELERY_BROKER_URL.split(':')[0]}; {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.1f}; sandbox up in {sb.startup_seconds:.1f} s (time scale "
              f"{TIME_SCALE}); discovery: {len(report.found)} component(s), {targets} probe target(s); "
              f"vantage {VANTAGE}; interval {settings.CONTROLPLANE_PROBE_INTERVAL:g} s, failures "
              f"{settings.CONTROLPLANE_STATUS_FAILURES}, successes {settings.CONTROLPLANE_STATUS_SUCCESSES}")
        ssm = sb.client("ssm", REGION)
        parameter = sb.stack(APP, REGION).ssm_fault_parameter

        def put(value):
            ssm.put_parameter(Name=parameter, Value=json.dumps(value), Type="String", Overwrite=True)

        env = {name: os.environ[name] for name in (
            "CONTROLPLANE_VANTAGE", "CONTROLPLANE_PROBE_VANTAGES", "CONTROLPLANE_PROBE_INTERVAL",
            "CONTROLPLANE_STATUS_FAILURES", "CONTROLPLANE_STATUS_SUCCESSES")}
        # The probes get a worker of their own (docs/OPERATIONS.md): the lag canary and
        # the AWS polls on `celery` can hold a worker process for seconds.
        processes.append(start_worker(f"probes.{VANTAGE}", tmp, concurrency=2, **env))
        processes.append(start_worker("celery", tmp, concurrency=2, **env))
        processes.append(CeleryProcess(["beat", "-s", str(tmp / "beat-schedule")], child_env(**env),
                                       tmp / "beat.log"))
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "controlplane.wsgi", "-b", f"127.0.0.1:{port}",
             "-w", "1", "--log-level", "warning"],
            cwd=settings.BASE_DIR, env=child_env(**env),
        )
        api = StatusAPI(port, token)
        started = time.monotonic()
        api.wait("healthy", START_LIMIT)
        print(f"beat, worker and console up, {APP}/{REGION} healthy in the status API after "
              f"{time.monotonic() - started:.1f} s")
        for n in range(ROUNDS):
            time.sleep((n * 0.37) % 2.0)  # spread the injections over the probe phase
            put(FAULT_ON)
            injected = time.monotonic()
            detect.append(api.wait("unhealthy", ROUND_LIMIT) - injected)
            put(FAULT_OFF)
            reverted = time.monotonic()
            recover.append(api.wait("healthy", ROUND_LIMIT, probes_only=True) - reverted)
            # AWS's own view (Route 53 GetHealthCheckStatus, polled at most every
            # CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL s) also has to see it healthy
            # again before the next round starts.
            aws_view.append(api.wait("healthy", AWS_VIEW_LIMIT) - reverted)
        gaps = probe_gaps(Stack.objects.get(application__name=APP, region__code=REGION).pk)
    except Exception:
        for proc in processes:
            print(f"--- {proc.log_path}:\n{proc.log()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if sb is not None:
            with contextlib.suppress(Exception):  # best effort; the sandbox is stopped next
                put(FAULT_OFF)
        for proc in processes:
            proc.stop()
        if server is not None:
            server.terminate()
            server.wait(15)
        if sb is not None:
            sb.stop()
        connections.close_all()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        signal.alarm(0)

    interval = settings.CONTROLPLANE_PROBE_INTERVAL
    failures = settings.CONTROLPLANE_STATUS_FAILURES
    successes = settings.CONTROLPLANE_STATUS_SUCCESSES
    bound = interval * failures + 1.0
    p50, p95 = statistics.median(detect), pct(detect, 95)
    print()
    print(f"detection latency, {len(detect)} rounds (SSM 503 fault on {APP}/{REGION} -> region "
          f"unhealthy in GET /api/v1/status): p50 {p50:.2f} s, p95 {p95:.2f} s, "
          f"min {min(detect):.2f} s, max {max(detect):.2f} s")
    print(f"    all: {' '.join(f'{t:.2f}' for t in detect)}")
    print(f"bound interval x failures + 1 s = {interval:g} x {failures} + 1 = {bound:g} s: "
          f"p95 {'within' if p95 <= bound else 'ABOVE'} ({p95 / bound:.2f}x of the bound)")
    for label, seconds in (("Route 53 fast (10 s x 3)", 30.0), ("Route 53 standard (30 s x 3)", 90.0)):
        print(f"vs {label} = {seconds:g} s: p50 {seconds / p50:.1f}x faster, p95 {seconds / p95:.1f}x faster")
    interval_gaps = sorted(gaps)
    late = sum(1 for g in gaps if g > interval * 1.5)
    print(f"probes of {APP}/{REGION}: {len(gaps) + 1} samples, gap between samples p50 "
          f"{statistics.median(interval_gaps):.2f} s, p95 {pct(interval_gaps, 95):.2f} s, max "
          f"{interval_gaps[-1]:.2f} s; {late} gap(s) over 1.5 intervals (a probe skipped or late)")
    print(f"recovery of the probes' verdict (flag reverted -> region health healthy again, "
          f"{successes} successes to come back): p50 {statistics.median(recover):.2f} s, "
          f"p95 {pct(recover, 95):.2f} s "
          f"(bound {interval:g} x {successes} + 1 = {interval * successes + 1:g} s)")
    print(f"region status healthy again, AWS's view included (Route 53 GetHealthCheckStatus polled at most "
          f"every {settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL:g} s, AWS health every "
          f"{settings.CONTROLPLANE_AWS_HEALTH_INTERVAL:g} s): p50 {statistics.median(aws_view):.2f} s, "
          f"p95 {pct(aws_view, 95):.2f} s")


if __name__ == "__main__":
    main()
