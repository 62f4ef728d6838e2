"""Console pages at scale: 1,000 stacks and 10 million raw HealthSample rows (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_h7 CONTROLPLANE_VAR_DIR=/tmp/h7var \
        .venv/bin/python bench/pages.py

Data (in its own database, <NAME>_pages, next to DATABASE_URL's):
- 250 applications x 4 regions = 1,000 stacks;
- BENCH_SAMPLES (10,000,000) raw HealthSample rows spread evenly over the last 48 h
  (one sample per stack every 17.3 s; 1 % failures), plus, before each measurement, a
  live tail: every 2 s per stack from 2 minutes ago to 7 minutes ahead (rows become
  visible as the clock passes them), so every stack has a current status throughout;
- HealthRollup rows: one per stack per minute over the 48 h (2.88 M);
- TargetState rows (what the status loader reads: each target's folded hysteresis
  state), folded from the raw samples of the last 60 s before the measurement, then
  every 2 s during it from the live tail that the clock has passed (a thread), through
  the probe workers' write path (monitoring.fold_stored_samples);
- LagSample rows of the last hour for every (source, receiving) pair of every
  application (3,000 pairs): a canary every 30 s and a metric every 60 s (540,000 rows;
  3 % of the pairs over the 2 s threshold, 1 % not replicated), made again before each
  measurement; and a live drill (running or queued) on 5 applications: the overview's
  lag figures and drill markers.
Generated with INSERT ... SELECT ... FROM generate_series(...) through Django's
connection, the secondary indexes dropped during the load and rebuilt after (the same
definitions, read from pg_indexes), then VACUUM ANALYZE. A few minutes on 2 CPUs.

Measured side by side, requests interleaved (page A, page B, trivial, page A, ...), on
a real HTTP server (gunicorn, 1 sync worker, in a child process) with a logged-in
session cookie: the overview `/`, `GET /api/v1/status`, a stack page `/apps/<app>/<region>/` (default
window 1 h: raw samples) and its 24 h window (rollups), and `/healthz` (a trivial
Django view) for the ratio. p50/p95 per page and the ratio to the trivial view.
Query counts: django.test.Client in this process under CaptureQueriesContext, for the
overview, the status API and two different stacks (constant: they do not grow with rows or stacks).

BENCH_REQUESTS (100 per page), BENCH_SAMPLES, BENCH_REUSE=1 (reuse the database of a
previous BENCH_KEEP=1 run instead of generating it again), BENCH_KEEP=1 (keep the
database at the end; default: dropped), BENCH_TIMEOUT (1200 s), BENCH_EXPLAIN=1
(print EXPLAIN ANALYZE of the heaviest queries), BENCH_BASELINE=<directory> (a checkout
of the code to compare with, e.g. `git worktree add /tmp/base main`: a second gunicorn
runs it on the same database, and every request goes to both, one after the other in
alternating order; the output adds its p50 / p95 and the ratio of this code's p50 to
the baseline's: a before / after comparison under the same noise).
"""

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

APPS, REGIONS = 250, ["us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2"]
SAMPLES = int(os.environ.get("BENCH_SAMPLES", 10_000_000))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 100))
REUSE = os.environ.get("BENCH_REUSE") == "1"
KEEP = os.environ.get("BENCH_KEEP") == "1" or REUSE
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 1200))
EXPLAIN = os.environ.get("BENCH_EXPLAIN") == "1"
BASELINE = os.environ.get("BENCH_BASELINE")
SPAN_S = 48 * 3600
TAIL_S, TAIL_STEP_S, TAIL_AHEAD_S = 120, 2, 420


def step(label, started):
    print(f"    {label}: {time.perf_counter() - started:.1f} s", flush=True)


def generate():
    from regions.models import Application, HealthRollup, HealthSample, Region, Stack

    t0 = time.perf_counter()
    regions = Region.objects.bulk_create([Region(code=c) for c in REGIONS])
    apps = Application.objects.bulk_create(
        [Application(name=f"app-{n:03d}", architecture="A") for n in range(APPS)]
    )
    Stack.objects.bulk_create(
        [Stack(application=a, region=r, health_url=f"http://127.0.0.1:9/{a.name}/{r.code}/health")
         for a in apps for r in regions]
    )
    stacks = Stack.objects.count()
    per_stack = SAMPLES // stacks
    spacing = SPAN_S / per_stack
    sample_table, rollup_table = HealthSample._meta.db_table, HealthRollup._meta.db_table
    with connection.cursor() as cursor:
        indexes = {}
        for table in (sample_table, rollup_table):
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
                [table, "%pkey"],
            )
            indexes.update(cursor.fetchall())
        for name in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # The FK checks of 10 M rows cost more than the rows: disable the triggers
        # during the load (the ids come from the stacks just created).
        cursor.execute(f'ALTER TABLE "{sample_table}" DISABLE TRIGGER ALL')
        cursor.execute(f'ALTER TABLE "{rollup_table}" DISABLE TRIGGER ALL')
        columns = ("stack_id, application_id, target, vantage, at, ok, status_code, latency_ms, "
                   "served_region, error_class")
        body = """
            SELECT s.id, s.application_id, 'stack_health', 'us-east-1', {at},
                   f.fail = false, CASE WHEN f.fail THEN 503 ELSE 200 END,
                   20 + random() * 30, CASE WHEN f.fail THEN '' ELSE r.code END,
                   CASE WHEN f.fail THEN 'http_5xx' ELSE '' END
            FROM regions_stack s JOIN regions_region r ON r.id = s.region_id
            CROSS JOIN generate_series(%s, %s) g
            CROSS JOIN LATERAL (SELECT random() < 0.01 AS fail) f
            WHERE s.id BETWEEN %s AND %s"""
        ids = list(Stack.objects.order_by("pk").values_list("pk", flat=True))
        chunk = 100
        for i in range(0, len(ids), chunk):
            cursor.execute(
                f"INSERT INTO {sample_table} ({columns}) "
                + body.format(at=f"now() - make_interval(secs => {TAIL_S} + g * {spacing})"),
                [1, per_stack, ids[i], ids[min(i + chunk, len(ids)) - 1]],
            )
            step(f"raw samples, stacks {i + 1}-{min(i + chunk, len(ids))}", t0)
        cursor.execute(
            f"""INSERT INTO {rollup_table} (stack_id, application_id, target, vantage, minute, count,
                    ok_count, latency_p50_ms, latency_max_ms, latency_avg_ms)
                SELECT s.id, s.application_id, 'stack_health', 'us-east-1',
                       date_trunc('minute', now()) - make_interval(mins => g), 30, 30, 30, 60, 32
                FROM regions_stack s CROSS JOIN generate_series(1, {SPAN_S // 60}) g"""  # noqa: S608
        )
        step("rollups", t0)
        cursor.execute(f'ALTER TABLE "{sample_table}" ENABLE TRIGGER ALL')
        cursor.execute(f'ALTER TABLE "{rollup_table}" ENABLE TRIGGER ALL')
        for name, definition in indexes.items():
            cursor.execute(definition)
            step(f"index {name}", t0)
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {sample_table}")
        cursor.execute(f"VACUUM ANALYZE {rollup_table}")
    step("vacuum analyze", t0)


def add_live_tail():
    """Samples every 2 s for every stack from 2 minutes ago to TAIL_AHEAD_S ahead: the
    rows with `at` in the future become visible as the clock passes them, as if the
    probes kept running during the measurement (the status window looks back ~60 s)."""
    from regions.models import HealthSample

    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {HealthSample._meta.db_table} (stack_id, application_id, target, vantage, at,
                    ok, status_code, latency_ms, served_region, error_class)
                SELECT s.id, s.application_id, 'stack_health', 'us-east-1',
                       now() + make_interval(secs => g * {TAIL_STEP_S}), true, 200, 20 + random() * 30,
                       r.code, ''
                FROM regions_stack s JOIN regions_region r ON r.id = s.region_id
                CROSS JOIN generate_series({-TAIL_S // TAIL_STEP_S}, {TAIL_AHEAD_S // TAIL_STEP_S}) g"""  # noqa: S608
        )
        return cursor.rowcount


LAG_MINUTES, LIVE_DRILLS = 60, 5


def add_lag_and_drills():
    """The last LAG_MINUTES of replication lag for every (source, receiving) pair of every
    application (replaced on each run), and a live drill on LIVE_DRILLS applications."""
    from django.contrib.auth.models import User

    from experiments.models import LIVE_STATES, Drill, DrillState, Scenario
    from experiments.scenarios import ensure_builtin_scenarios
    from regions.models import Application, LagSample, Region

    table = LagSample._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute(
            f"""INSERT INTO {table} (application_id, source_region, receiving_region, at, lag_ms, method,
                    replicated)
                SELECT a.id, src.code, dst.code, now() - make_interval(secs => g * m.step),
                       CASE WHEN p.bad < 0.01 THEN 10000 WHEN p.bad < 0.04 THEN 2500 + random() * 5000
                            ELSE 150 + random() * 400 END,
                       m.method, p.bad >= 0.01 OR m.method = 'metric'
                FROM regions_application a
                CROSS JOIN regions_region src CROSS JOIN regions_region dst
                CROSS JOIN LATERAL (
                    SELECT abs(hashtext(a.id || src.code || dst.code)) % 1000 / 1000.0 AS bad) p
                CROSS JOIN (VALUES ('canary', 30), ('metric', 60)) m(method, step)
                CROSS JOIN LATERAL generate_series(0, {LAG_MINUTES} * 60 / m.step - 1) g
                WHERE src.id <> dst.id
                ORDER BY 4"""  # noqa: S608 - in time order, as the samplers write them
        )
        rows = cursor.rowcount
        cursor.execute(f"ANALYZE {table}")
    ensure_builtin_scenarios()
    if not Drill.objects.filter(state__in=list(LIVE_STATES)).exists():
        user, _ = User.objects.get_or_create(username="bench-operator")
        scenario = Scenario.objects.order_by("pk").first()
        region = Region.objects.order_by("code").first()
        for n, app in enumerate(Application.objects.order_by("name")[:LIVE_DRILLS]):
            Drill.objects.create(
                scenario=scenario, application=app, region=region, requested_by=user, plan={"calls": []},
                plan_hash="0" * 64, state=DrillState.RUNNING if n % 2 == 0 else DrillState.QUEUED,
            )
    return rows


def fill_target_states(since):
    """Fold the raw samples stored after `since` (up to now) into the TargetState rows,
    through the probe workers' own write path (monitoring.fold_stored_samples).
    Returns (rows folded, the time read up to)."""
    from regions import monitoring

    return monitoring.fold_stored_samples(since)


class StateWriter(threading.Thread):
    """Every TAIL_STEP_S, folds the live tail's samples that the clock has passed into
    TargetState (the probe worker's store_results does this in production): without
    it the states go stale after stale_after (6 s) and every stack reads unknown."""

    def __init__(self, since):
        super().__init__(daemon=True)
        self.since = since
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.wait(TAIL_STEP_S):
                _, self.since = fill_target_states(self.since)
        finally:
            connection.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cwd, env):
    """gunicorn (1 sync worker) on the code in `cwd` -> (process, port), once it listens."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "controlplane.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", "1", "--log-level", "warning"],
        cwd=cwd, env=env,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"gunicorn did not start in {cwd}") from None
            time.sleep(0.2)


def get(conn, path, cookie):
    started = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status}")
    return elapsed * 1000.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def query_counts(user, paths):
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(user)
    counts = {}
    for path in paths:
        client.get(path)  # warm caches (permissions, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200, path
        counts[path] = len(ctx)
    return counts, client.cookies[settings.SESSION_COOKIE_NAME].value


def explain(sql_label, queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        print(f"EXPLAIN ANALYZE {sql_label}:")
        for (line,) in cursor.fetchall():
            print("    " + line)


def main():
    from django.contrib.auth.models import User

    from regions.models import HealthSample, Stack

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("benchmark timed out")))
    signal.alarm(TIMEOUT)
    if connection.vendor != "postgresql":
        raise SystemExit("bench/pages.py needs PostgreSQL: set DATABASE_URL")
    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})["NAME"] = f"{settings_dict['NAME']}_pages"
    old_name = settings_dict["NAME"]
    db_name = connection.creation.create_test_db(verbosity=0, autoclobber=not REUSE, keepdb=REUSE)
    servers, writer = {}, None
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M')}; PostgreSQL database {db_name}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}")
        if not (REUSE and Stack.objects.exists()):
            print(f"generating {APPS * len(REGIONS)} stacks and {SAMPLES:,} raw samples:")
            generate()
        print(f"live tail: {add_live_tail():,} samples from 2 min ago to {TAIL_AHEAD_S // 60} min ahead")
        print(f"lag: {add_lag_and_drills():,} samples over the last {LAG_MINUTES} min; "
              f"{LIVE_DRILLS} live drills")
        started = time.perf_counter()
        folded, _ = fill_target_states(timezone.now() - timedelta(seconds=60))
        print(f"target states: the {folded:,} raw samples of the last 60 s folded into TargetState "
              f"in {time.perf_counter() - started:.2f} s")
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                           [HealthSample._meta.db_table])
            print(f"raw HealthSample rows (estimate): {cursor.fetchone()[0]:,}; "
                  f"stacks: {Stack.objects.count()}")

        user, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True,
                                                                         "is_staff": True})
        stacks = list(Stack.objects.select_related("application", "region").order_by("pk")[:2])
        pages = {
            "overview": "/",
            "status API": "/api/v1/status",
            "stack 1h": f"/apps/{stacks[0].application.name}/{stacks[0].region.code}/",
            "stack 24h": f"/apps/{stacks[0].application.name}/{stacks[0].region.code}/?window=24h",
            "trivial /healthz": "/healthz",
        }
        other_stack = f"/apps/{stacks[1].application.name}/{stacks[1].region.code}/"
        counts, session = query_counts(user, [pages["overview"], pages["status API"], pages["stack 1h"],
                                              other_stack,
                                              pages["stack 24h"]])
        if EXPLAIN:
            from regions import monitoring  # noqa: F401

            now = timezone.now()
            explain("last failures", HealthSample.objects.filter(
                stack=stacks[0], target="stack_health", ok=False).order_by("-at")[:20])
            explain("stack 1h raw series", HealthSample.objects.filter(
                stack=stacks[0], target="stack_health", at__gte=now - (now - now.replace(minute=0)),
            ))

        env = {**os.environ, "DATABASE_URL": f"postgres://{settings_dict['USER'] or 'postgres'}@"
               f"{settings_dict['HOST']}:{settings_dict['PORT'] or 5432}/{db_name}"}
        servers["this code"] = start_server(settings.BASE_DIR, env)
        if BASELINE:
            servers["baseline"] = start_server(BASELINE, env)
        cookie = f"{settings.SESSION_COOKIE_NAME}={session}"
        _, until = fill_target_states(timezone.now() - timedelta(seconds=60))
        writer = StateWriter(until)
        writer.start()
        times = {(label, name): [] for label in pages for name in servers}
        for _, port in servers.values():  # warm-up
            for path in pages.values():
                get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), path, cookie)
        for n in range(REQUESTS):
            for label, path in pages.items():  # interleaved: the same noise for every page
                order = list(servers.items())
                for name, (_, port) in order[n % 2:] + order[:n % 2]:  # alternating which goes first
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    times[label, name].append(get(conn, path, cookie))
                    conn.close()
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(30)
        for server, _ in servers.values():
            server.terminate()
            server.wait(15)
        if KEEP:
            print(f"database {db_name} kept: rerun with BENCH_REUSE=1 to reuse it; "
                  f"drop it with `dropdb -h 127.0.0.1 -U postgres {db_name}`")
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        signal.alarm(0)

    print()
    trivial = statistics.median(times["trivial /healthz", "this code"])
    print(f"{REQUESTS} requests per page, interleaved, gunicorn 1 sync worker, logged-in session:")
    for label, path in pages.items():
        t = times[label, "this code"]
        line = (f"    {label:18} {path:40} p50 {statistics.median(t):7.1f} ms  p95 {pct(t, 95):7.1f} ms  "
                f"p50 ratio to trivial {statistics.median(t) / trivial:5.1f}x")
        if BASELINE:
            b = times[label, "baseline"]
            line += (f"  | baseline p50 {statistics.median(b):7.1f} ms  p95 {pct(b, 95):7.1f} ms  "
                     f"p50 this / baseline {statistics.median(t) / statistics.median(b):4.2f}x")
        print(line)
    if BASELINE:
        print(f"baseline: the code in {BASELINE}, same database, requests alternating with this code's")
    print("target: p95 <= 150 ms for the overview and stack pages")
    print("queries per request (CaptureQueriesContext, in-process client):")
    for path, count in counts.items():
        print(f"    {path:40} {count}")


if __name__ == "__main__":
    main()
