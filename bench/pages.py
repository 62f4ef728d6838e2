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
  measurement: the lag figures of the overview and the status API;
- BENCH_DRILLS (200) drills over the first applications, each with a timeline of 12
  steps, 2 ledger rows, a decision and a 120-point success series (the drills list's
  filters list the 250 applications); the newest one running (the drill page measured),
  and the newest drill of each of the 4 applications drilled before it queued or running
  in turn (also on a reused database): 5 live drills, one per application, the
  overview's drill markers.
Generated with INSERT ... SELECT ... FROM generate_series(...) through Django's
connection, the secondary indexes dropped during the load and rebuilt after (the same
definitions, read from pg_indexes), then VACUUM ANALYZE. A few minutes on 2 CPUs.

Measured side by side, requests interleaved (page A, page B, trivial, page A, ...), on
a real HTTP server (gunicorn, 1 sync worker, in a child process) with a logged-in
session cookie: the overview `/`, `GET /api/v1/status`, a stack page
`/apps/<app>/<region>/` (default window 1 h: raw samples) and its 24 h window (rollups),
and `/healthz` (a trivial Django view) for the ratio. p50/p95 per page and the ratio to
the trivial view. Query counts: django.test.Client in this process under
CaptureQueriesContext, for every request measured and a second stack (constant: they do
not grow with rows or stacks).

The drills pages' polls, in the same run: each polled partial is measured three ways
side by side with its page: the page itself, a poll that renders (no tag: what a poll
costs when something changed), and a poll when nothing changed (the tag of the previous
answer in HX-PTag: 204; and If-None-Match: 304), for the drill page, the drills list and
the halt banner (controlplane/rendering.py `polled`), and the drill page's again as a
user with the approver role. Printed: each no-change poll against its page, its poll
that renders and the overview. Target: at 1,000 stacks the no-change poll costs at most
a tenth of a render.

BENCH_REQUESTS (100 per page), BENCH_SAMPLES, BENCH_DRILLS, BENCH_REUSE=1 (reuse the
database of a previous BENCH_KEEP=1 run instead of generating it again), BENCH_KEEP=1 (keep the
database at the end; default: dropped), BENCH_TIMEOUT (1200 s), BENCH_EXPLAIN=1
(print EXPLAIN ANALYZE of the heaviest queries), BENCH_BASELINE=<directory> (a checkout
of the code to compare with, e.g. `git worktree add /tmp/base main`: a second gunicorn
runs it on the same database, and every request goes to both, one after the other in
alternating order, each with sessions that server accepts and the poll tags it gave; the
output adds its p50 / p95 and the ratio of this code's p50 to the baseline's: a before /
after comparison under the same noise; a request the baseline answers with another
status, e.g. a poll it does not know, is not compared).
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
DRILLS = int(os.environ.get("BENCH_DRILLS", 200))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 100))
REUSE = os.environ.get("BENCH_REUSE") == "1"
KEEP = os.environ.get("BENCH_KEEP") == "1" or REUSE
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 1200))
EXPLAIN = os.environ.get("BENCH_EXPLAIN") == "1"
BASELINE = os.environ.get("BENCH_BASELINE")
SPAN_S = 48 * 3600
TAIL_S, TAIL_STEP_S, TAIL_AHEAD_S = 120, 2, 420
LAG_MINUTES, LIVE_DRILLS = 60, 5


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


def add_lag():
    """The last LAG_MINUTES of replication lag for every (source, receiving) pair of every
    application (replaced on each run), and their LagState rows."""
    from regions.models import LAG_STATE_COLUMNS, LagSample, LagState, record_lag_states

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
        # LagState (what the status reads): the newest sample per pair, through the
        # samplers' upsert (LagSample writes keep it; this raw INSERT does not).
        cursor.execute(f"TRUNCATE {LagState._meta.db_table}")
        cursor.execute(
            f"SELECT DISTINCT ON (application_id, source_region, receiving_region) "  # noqa: S608
            f"{', '.join(LAG_STATE_COLUMNS)} FROM {table} "
            "ORDER BY application_id, source_region, receiving_region, at DESC"
        )
        record_lag_states(cursor.fetchall())
    return rows


def make_drills(user):
    """BENCH_DRILLS drills with their timelines, ledgers, decisions and figures (unless a
    reused database has them); returns the newest running one, whose page is measured."""
    from experiments import models as m
    from experiments.scenarios import ensure_builtin_scenarios
    from regions.models import Stack

    running = m.Drill.objects.filter(state=m.DrillState.RUNNING).order_by("-requested_at").first()
    if running is not None:
        return running
    ensure_builtin_scenarios()
    scenario = m.Scenario.objects.get(slug="fail-region-health-check")
    stacks = list(Stack.objects.order_by("pk").values_list("application_id", "region_id")[:DRILLS])
    finals = [m.DrillState.PASSED, m.DrillState.PASSED, m.DrillState.FAILED, m.DrillState.INCONCLUSIVE,
              m.DrillState.ABORTED]
    now = timezone.now()
    series = [[round(t * 0.5, 1), 100 if t < 20 or t > 60 else 50] for t in range(120)]
    drills = m.Drill.objects.bulk_create([
        m.Drill(
            scenario=scenario, application_id=app_id, region_id=region_id, requested_by=user,
            state=m.DrillState.RUNNING if n == DRILLS - 1 else finals[n % len(finals)],
            plan={"calls": []}, plan_hash=f"{n:064x}", requested_at=now - timedelta(hours=DRILLS - n),
            finished_at=None if n == DRILLS - 1 else now - timedelta(hours=DRILLS - n - 1),
            outcome_reason="Failed over in 5.1 s and recovered in 3.2 s",
            figures={"time_to_detect": 1.9, "time_to_failover": 5.1, "time_to_recover": 3.2,
                     "error_rate": 0.04, "p95_latency_ms": 210.0, "regions_during": ["us-west-2"],
                     "success_series": series},
        )
        for n, (app_id, region_id) in enumerate(stacks)
    ])
    m.DrillStep.objects.bulk_create([
        m.DrillStep(drill=d, kind=m.StepKind.NOTE, message=f"step {i} of the drill", at=d.requested_at)
        for d in drills for i in range(12)
    ])
    m.Compensation.objects.bulk_create([
        m.Compensation(
            drill=d, fault_kind="route53_health_check_invert", target={"identifier": f"hc-{d.pk}"},
            call={"service": "route53", "operation": "UpdateHealthCheck"},
            inverse={"service": "route53", "operation": "UpdateHealthCheck"},
            deadline=now + timedelta(hours=1), state=m.CompensationState.REVERTED,
        )
        for d in drills for _ in range(2)
    ])
    m.Approval.objects.bulk_create([
        m.Approval(drill=d, approver=user, decision=m.Decision.APPROVE, plan_hash=d.plan_hash, comment="go")
        for d in drills
    ])
    return drills[-1]


def make_live(drill):
    """LIVE_DRILLS live drills, one per application (as requests allow): `drill` and the
    newest drill of each of the applications drilled just before it, made queued or
    running in turn (the same ones on every run). Returns how many drills are live."""
    from experiments.models import LIVE_STATES, Drill, DrillState

    applications = {drill.application_id}
    for other in Drill.objects.order_by("-requested_at").only("pk", "application_id"):
        if len(applications) == LIVE_DRILLS:
            break
        if other.application_id not in applications:
            applications.add(other.application_id)
            state = DrillState.QUEUED if len(applications) % 2 == 0 else DrillState.RUNNING
            Drill.objects.filter(pk=other.pk).update(state=state, finished_at=None)
    return Drill.objects.filter(state__in=list(LIVE_STATES)).count()


# In a request's headers: the tag that server gave the user for the path (a no-change poll).
CURRENT_TAG = object()


def poll_tag(port, path, cookie):
    """The tag of what a poll of `path` shows the session's user now, as the server on
    `port` says it (controlplane.rendering.polled)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1", "HX-Request": "true"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.getheader("HX-PTag")


def baseline_backend():
    """The authentication backend to sign in with for the baseline: this code's own if the
    baseline lists it, else Django's ModelBackend (code before controlplane/authcache.py)."""
    ours = settings.AUTHENTICATION_BACKENDS[-1]
    listed = (Path(BASELINE) / "controlplane" / "settings.py").read_text()
    return ours if f'"{ours}"' in listed else "django.contrib.auth.backends.ModelBackend"


def new_session(user, backend):
    """A signed-in session of `user` through `backend` -> its key."""
    from django.test import Client

    client = Client()
    client.force_login(user, backend=backend)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def approver():
    """A user with the approver role (polls check its permissions: two queries a
    superuser does not need)."""
    from django.apps import apps
    from django.contrib.auth.models import Group, User

    from controlplane.roles import APPROVER, sync_roles

    sync_roles(apps)
    user, _ = User.objects.get_or_create(username="bench-approver")
    user.groups.add(Group.objects.get(name=APPROVER))
    return user


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


class UnexpectedStatus(RuntimeError):
    def __init__(self, path, headers, status, expected):
        super().__init__(f"GET {path} {headers or ''}: {status}, expected {expected}")
        self.status = status


def get(port, path, cookie, headers=None, status=200):
    """One request on a new connection -> milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1", **(headers or {})})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if resp.status != status:
        raise UnexpectedStatus(path, headers, resp.status, status)
    return elapsed * 1000.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def query_counts(user, requests):
    """{label: queries} for {label: (path, headers, status)}, and the session cookie."""
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    counts = {}
    for label, (path, headers, status) in requests.items():
        if CURRENT_TAG in headers.values():
            tag = client.get(path, headers={"HX-Request": "true"})["HX-PTag"]
            headers = {key: tag if value is CURRENT_TAG else value for key, value in headers.items()}
        client.get(path, headers=headers)  # warm caches (permissions, content types)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path, headers=headers).status_code == status, label
        counts[label] = len(ctx)
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
        print(f"lag: {add_lag():,} samples over the last {LAG_MINUTES} min")
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
        if "testserver" not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        drill = make_drills(user)
        print(f"drills: {DRILLS}, {make_live(drill)} of them live (queued or running)")
        role_user = approver()
        stacks = list(Stack.objects.select_related("application", "region").order_by("pk")[:2])
        detail, drills, banner = f"/drills/{drill.pk}/", "/drills/", "/drills/halt/banner/"
        htmx = {"HX-Request": "true"}
        pages = {  # label: (path, headers, status)
            "overview": ("/", {}, 200),
            "status API": ("/api/v1/status", {}, 200),
            "stack 1h": (f"/apps/{stacks[0].application.name}/{stacks[0].region.code}/", {}, 200),
            "stack 24h": (f"/apps/{stacks[0].application.name}/{stacks[0].region.code}/?window=24h", {}, 200),
            "drill page": (detail, {}, 200),
            "drill poll, renders": (detail, htmx, 200),
            "drill poll, no change": (detail, {**htmx, "HX-PTag": CURRENT_TAG}, 204),
            "drill poll, 304": (detail, {**htmx, "If-None-Match": CURRENT_TAG}, 304),
            "drills list": (drills, {}, 200),
            "list poll, renders": (drills, htmx, 200),
            "list poll, no change": (drills, {**htmx, "HX-PTag": CURRENT_TAG}, 204),
            "halt banner, renders": (banner, htmx, 200),
            "banner, no change": (banner, {**htmx, "HX-PTag": CURRENT_TAG}, 204),
            "trivial /healthz": ("/healthz", {}, 200),
        }
        as_approver = {  # the same as a role user, as viewers, operators and approvers poll
            "drill page, approver": (detail, {}, 200),
            "drill poll renders, appr.": (detail, htmx, 200),
            "drill poll no change, appr.": (detail, {**htmx, "HX-PTag": CURRENT_TAG}, 204),
        }
        other_stack = f"/apps/{stacks[1].application.name}/{stacks[1].region.code}/"
        counts, session = query_counts(
            user, {**pages, "other stack 1h": (other_stack, {}, 200)}
        )
        role_counts, role_session = query_counts(role_user, as_approver)
        counts.update(role_counts)
        sessions = {"this code": {user: session, role_user: role_session}}
        if BASELINE:  # sessions the baseline's code accepts (it may not know this code's backend)
            sessions["baseline"] = {u: new_session(u, baseline_backend()) for u in (user, role_user)}
        owner = {**dict.fromkeys(pages, user), **dict.fromkeys(as_approver, role_user)}
        pages.update(as_approver)
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
        _, until = fill_target_states(timezone.now() - timedelta(seconds=60))
        writer = StateWriter(until)
        writer.start()
        times, not_compared, asks = {}, {}, {}
        for name, (_, port) in servers.items():  # warm-up; which requests the baseline answers alike
            for label, (path, headers, status) in pages.items():
                cookie = f"{settings.SESSION_COOKIE_NAME}={sessions[name][owner[label]]}"
                # A no-change poll sends back the tag this server gave this user for the path.
                headers = {key: poll_tag(port, path, cookie) if value is CURRENT_TAG else value
                           for key, value in headers.items()}
                try:
                    get(port, path, cookie, headers, status)
                    times[label, name] = []
                    asks[label, name] = (cookie, headers)
                except UnexpectedStatus as exc:
                    if name == "this code":
                        raise
                    not_compared[label] = exc.status
        for n in range(REQUESTS):
            for label, (path, _, status) in pages.items():  # interleaved: the same noise for every page
                order = list(servers.items())
                for name, (_, port) in order[n % 2:] + order[:n % 2]:  # alternating which goes first
                    if (label, name) in times:
                        times[label, name].append(get(port, path, *asks[label, name], status))
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
    p50 = {label: statistics.median(times[label, "this code"]) for label in pages}
    trivial = p50["trivial /healthz"]
    print(f"{REQUESTS} requests per page, interleaved, gunicorn 1 sync worker, logged-in session:")
    for label, (path, _, _) in pages.items():
        p95 = pct(times[label, "this code"], 95)
        line = (f"    {label:27} {path:36} p50 {p50[label]:7.1f} ms  p95 {p95:7.1f} ms  "
                f"p50 ratio to trivial {p50[label] / trivial:5.1f}x")
        if label in not_compared:
            line += f"  | baseline answers {not_compared[label]}: not compared"
        elif BASELINE:
            b = times[label, "baseline"]
            line += (f"  | baseline p50 {statistics.median(b):7.1f} ms  p95 {pct(b, 95):7.1f} ms  "
                     f"p50 this / baseline {p50[label] / statistics.median(b):4.2f}x")
        print(line)
    if BASELINE:
        print(f"baseline: the code in {BASELINE}, same database, requests alternating with this code's")
    print("target: p95 <= 150 ms for the overview and stack pages")
    print("no-change polls (p50) against a render of the same thing: target <= 0.10 of a render")
    for quiet, page, partial in (
        ("drill poll, no change", "drill page", "drill poll, renders"),
        ("drill poll, 304", "drill page", "drill poll, renders"),
        ("list poll, no change", "drills list", "list poll, renders"),
        ("banner, no change", None, "halt banner, renders"),
        ("drill poll no change, appr.", "drill page, approver", "drill poll renders, appr."),
    ):
        against_page = f"{p50[quiet] / p50[page]:.3f} of the page" if page else ""
        print(f"    {quiet:27} {p50[quiet]:6.1f} ms: {against_page:>21}  "
              f"{p50[quiet] / p50[partial]:.3f} of the poll that renders  "
              f"{p50[quiet] / p50['overview']:.3f} of the overview")
    print("queries per request (CaptureQueriesContext, in-process client):")
    for label, count in counts.items():
        print(f"    {label:40} {count}")


if __name__ == "__main__":
    main()
