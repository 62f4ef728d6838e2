"""The probe engine against real local HTTP servers (aiohttp.web on free loopback ports)."""

import asyncio
import socket
import threading
import time

import pytest
from aiohttp import web
from django.db import connection

from regions import monitoring, probes
from regions.models import Application, ErrorClass, HealthSample, ProbeTargetKind, Region, Stack, TargetState
from regions.probes import ProbeTarget, run_probes


class LocalServer:
    """An aiohttp.web server on a free loopback port, in its own thread and event loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.release = None  # set at the end: slow handlers await it instead of sleeping
        self.port = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def ok(self, request):
        return web.json_response({"status": "healthy"}, headers={"X-Served-By-Region": "eu-central-1"})

    async def body_region(self, request):
        return web.json_response({"status": "healthy", "region": "us-west-2"})

    async def unhealthy_body(self, request):
        return web.json_response({"status": "unhealthy", "region": "us-west-2"})

    async def status(self, request):
        code = int(request.match_info["code"])
        return web.json_response({"message": "injected"}, status=code)

    async def hang(self, request):
        await self.release.wait()  # answers only when the test ends
        return web.json_response({"status": "healthy"})

    async def peer(self, request):
        # The client's port: the same port from call to call = a kept-alive connection.
        port = request.transport.get_extra_info("peername")[1]
        return web.json_response({"status": "healthy"}, headers={"X-Served-By-Region": str(port)})

    async def header_and_unhealthy_body(self, request):
        return web.json_response(
            {"status": "DOWN", "region": "us-west-2"}, headers={"X-Served-By-Region": "eu-central-1"}
        )

    async def delayed(self, request):
        await asyncio.sleep(0.05)  # the scenario: every endpoint takes 50 ms
        return web.json_response({"status": "healthy", "region": request.match_info["n"]})

    def _app(self):
        app = web.Application()
        app.router.add_get("/health", self.ok)
        app.router.add_get("/body-region", self.body_region)
        app.router.add_get("/unhealthy-body", self.unhealthy_body)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/hang", self.hang)
        app.router.add_get("/delayed/{n}", self.delayed)
        app.router.add_get("/peer", self.peer)
        app.router.add_get("/header-and-unhealthy-body", self.header_and_unhealthy_body)
        return app

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.release = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def start(self):
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.release.set)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server():
    s = LocalServer().start()
    yield s
    s.stop()
    # The engine's pooled connections to this server go with it: the next test starts cold.
    probes.close_engine()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def target(url, stack_id=1, application_id=1):
    return ProbeTarget(url, application_id, stack_id, ProbeTargetKind.STACK_HEALTH)


# Where nothing is meant to time out, the bound is generous: a loaded 2-core CI machine
# (a sandbox and Celery workers beside the tests) must not turn a slow answer into a
# timeout. Tests of timeouts pass their own.
NO_TIMEOUT = 10.0


def probe(url, **kwargs):
    kwargs.setdefault("connect_timeout", NO_TIMEOUT)
    kwargs.setdefault("read_timeout", NO_TIMEOUT)
    return run_probes([target(url)], **kwargs)[0]


def test_ok_response_records_status_latency_and_served_region_header(server):
    result = probe(server.url("/health"))
    assert result.ok
    assert result.status_code == 200
    assert result.error_class == ErrorClass.NONE
    assert result.served_region == "eu-central-1"
    assert 0 < result.latency_ms < 1000


def test_served_region_falls_back_to_the_json_body(server):
    result = probe(server.url("/body-region"))
    assert result.ok
    assert result.served_region == "us-west-2"


def test_2xx_with_an_unhealthy_body_is_a_bad_body(server):
    result = probe(server.url("/unhealthy-body"))
    assert not result.ok
    assert result.status_code == 200
    assert result.error_class == ErrorClass.BAD_BODY


def test_slow_answer_beyond_the_read_timeout_is_a_timeout(server):
    started = time.monotonic()
    result = probe(server.url("/hang"), read_timeout=0.3)
    assert not result.ok
    assert result.error_class == ErrorClass.TIMEOUT
    assert result.status_code is None
    assert 250 <= result.latency_ms < 1500
    assert time.monotonic() - started < 2


def test_closed_port_is_refused():
    result = probe(f"http://127.0.0.1:{closed_port()}/health")
    assert not result.ok
    assert result.error_class == ErrorClass.REFUSED


def test_tls_to_a_plain_http_port_is_a_tls_error(server):
    result = probe(server.url("/health").replace("http://", "https://"))
    assert result.error_class == ErrorClass.TLS


@pytest.mark.parametrize(
    ("code", "error_class"),
    [(503, ErrorClass.HTTP_5XX), (500, ErrorClass.HTTP_5XX), (429, ErrorClass.THROTTLED),
     (404, ErrorClass.HTTP_4XX)],
)
def test_error_statuses_are_classified(server, code, error_class):
    result = probe(server.url(f"/status/{code}"))
    assert not result.ok
    assert result.status_code == code
    assert result.error_class == error_class


def test_many_endpoints_are_probed_concurrently(server):
    targets = [target(server.url(f"/delayed/{n}"), stack_id=n) for n in range(300)]
    started = time.monotonic()
    results = run_probes(targets, concurrency=300, connect_timeout=5.0, read_timeout=5.0)
    elapsed = time.monotonic() - started
    assert [r.target for r in results] == targets  # one result per target, in order
    assert all(r.ok for r in results), {r.error_class for r in results}
    assert {r.served_region for r in results} == {str(n) for n in range(300)}
    # Sequentially this would take 300 x 50 ms = 15 s (generous bound: CI machines are busy).
    assert elapsed < 5.0, elapsed


def test_concurrency_bound_is_respected(server):
    targets = [target(server.url(f"/delayed/{n}"), stack_id=n) for n in range(40)]
    started = time.monotonic()
    results = run_probes(targets, concurrency=10, connect_timeout=2.0, read_timeout=2.0)
    assert all(r.ok for r in results)
    # 40 probes, 10 at a time, 50 ms each: at least 4 rounds.
    assert time.monotonic() - started >= 0.2
    # Waiting for a slot is not counted as latency.
    assert max(r.latency_ms for r in results) < 1000


def test_partition_is_stable_and_complete():
    keys = [f"s:{n}" for n in range(1000)] + [f"a:{n}" for n in range(50)]
    batches = probes.partition(keys, 200)
    assert sorted(k for b in batches for k in b) == sorted(keys)
    assert 4 <= len(batches) <= 6
    assert probes.partition(list(reversed(keys)), 200) == batches
    assert probes.partition([], 200) == []


def test_is_due_spreads_applications_over_their_interval():
    due = [[probes.is_due(app, 2, tick) for tick in range(10)] for app in range(20)]
    for row in due:
        assert sum(row) == 5  # every 2 s
    assert probes.is_due(7, 1, 12345)  # a 1 s interval is due every second


@pytest.fixture
def stacks(db):
    app = Application.objects.create(name="shop", architecture="A")
    regions = [Region.objects.create(code=c) for c in ("us-east-1", "us-west-2", "eu-central-1")]
    return [Stack.objects.create(application=app, region=r) for r in regions]


def test_probe_results_are_stored_in_one_insert(server, stacks, django_assert_max_num_queries):
    targets = [
        target(server.url(path), stack_id=s.pk, application_id=s.application_id)
        for s, path in zip(stacks, ["/health", "/status/503", "/hang"], strict=True)
    ]
    results = run_probes(targets, connect_timeout=NO_TIMEOUT, read_timeout=2.0)  # /hang: 2 s
    # savepoint, insert, target states (select, upsert), release; on PostgreSQL the
    # upsert is three: create the temporary table if needed, COPY into it, upsert from it
    with django_assert_max_num_queries(7 if connection.vendor == "postgresql" else 5):
        assert monitoring.store_results(results, "eu-west-1") == 3
    rows = {s.stack_id: s for s in HealthSample.objects.all()}
    assert rows[stacks[0].pk].ok and rows[stacks[0].pk].served_region == "eu-central-1"
    assert rows[stacks[1].pk].error_class == ErrorClass.HTTP_5XX and rows[stacks[1].pk].status_code == 503
    assert rows[stacks[2].pk].error_class == ErrorClass.TIMEOUT
    assert {r.vantage for r in rows.values()} == {"eu-west-1"}
    # and folded into each target's state: healthy on the first success; one failure
    # from an undecided target leaves it undecided, with the failure counted
    states = {s.stack_id: s for s in TargetState.objects.filter(vantage="eu-west-1")}
    healthy = states[stacks[0].pk]
    assert (healthy.status, healthy.last_served_region) == ("healthy", "eu-central-1")
    assert (states[stacks[1].pk].status, states[stacks[1].pk].run_count) == ("unknown", 1)
    assert states[stacks[1].pk].run_status_code == 503
    assert states[stacks[2].pk].last_error_class == ErrorClass.TIMEOUT


def test_probe_batch_task_probes_stacks_by_key_and_stores_samples(server, stacks, settings):
    from regions.tasks import probe_batch

    settings.CONTROLPLANE_VANTAGE = "ap-south-1"
    settings.CONTROLPLANE_PROBE_CONNECT_TIMEOUT = settings.CONTROLPLANE_PROBE_READ_TIMEOUT = NO_TIMEOUT
    Stack.objects.filter(pk=stacks[0].pk).update(health_url=server.url("/health"))
    Stack.objects.filter(pk=stacks[1].pk).update(health_url=server.url("/status/429"))
    app = stacks[0].application
    app.global_endpoint_url = server.url("/body-region")
    app.save()

    stored = probe_batch([f"s:{stacks[0].pk}", f"s:{stacks[1].pk}", f"s:{stacks[2].pk}", f"a:{app.pk}"],
                         "ap-south-1")

    assert stored == 3  # the third stack has no health URL
    samples = HealthSample.objects.order_by("target", "stack_id")
    assert [(s.target, s.ok, s.error_class) for s in samples] == [
        (ProbeTargetKind.GLOBAL_ENDPOINT, True, ""),
        (ProbeTargetKind.STACK_HEALTH, True, ""),
        (ProbeTargetKind.STACK_HEALTH, False, ErrorClass.THROTTLED),
    ]
    assert samples[0].stack_id is None and samples[0].served_region == "us-west-2"
    assert {s.vantage for s in samples} == {"ap-south-1"}


def test_probe_cycle_sends_due_targets_to_each_vantage_queue(stacks, settings, monkeypatch):
    from regions import tasks

    settings.CONTROLPLANE_PROBE_VANTAGES = ["us-east-1", "eu-west-1"]
    settings.CONTROLPLANE_PROBE_INTERVAL = 1.0
    for n, stack in enumerate(stacks):
        Stack.objects.filter(pk=stack.pk).update(health_url=f"http://127.0.0.1:1/{n}")
    sent = []
    monkeypatch.setattr(
        tasks.probe_batch, "apply_async", lambda args, **kw: sent.append((args, kw["queue"]))
    )

    assert tasks.probe_cycle(tick=1000) == 3

    assert sorted(queue for _, queue in sent) == ["probes.eu-west-1", "probes.us-east-1"]
    for (keys, vantage), queue in sent:
        assert queue == f"probes.{vantage}"
        assert sorted(keys) == sorted(f"s:{s.pk}" for s in stacks)


def test_connections_are_kept_alive_from_one_batch_to_the_next(server):
    first = probe(server.url("/peer"))
    second = probe(server.url("/peer"))
    assert first.ok and second.ok
    assert first.served_region == second.served_region  # the same client port


def test_global_endpoint_probes_reconnect_each_time(server):
    # Global endpoints resolve through DNS (failover records): no kept-alive connection.
    url = server.url("/peer")
    targets = [ProbeTarget(url, 1, None, ProbeTargetKind.GLOBAL_ENDPOINT)]
    first = run_probes(targets, connect_timeout=NO_TIMEOUT, read_timeout=NO_TIMEOUT)[0]
    second = run_probes(targets, connect_timeout=NO_TIMEOUT, read_timeout=NO_TIMEOUT)[0]
    assert first.ok and second.ok
    assert first.served_region != second.served_region


def test_an_unhealthy_body_counts_even_with_the_region_header(server):
    result = probe(server.url("/header-and-unhealthy-body"))
    assert not result.ok
    assert result.error_class == ErrorClass.BAD_BODY
    assert result.served_region == "eu-central-1"  # the header wins over the body


def test_run_probes_works_from_inside_a_running_event_loop(server):
    async def caller():
        return run_probes(
            [target(server.url("/health"))], connect_timeout=NO_TIMEOUT, read_timeout=NO_TIMEOUT
        )

    assert asyncio.run(caller())[0].ok


def test_stored_samples_keep_every_field(stacks):
    from datetime import UTC, datetime

    at = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    app_id = stacks[0].application_id
    results = [
        probes.ProbeResult(target("u", stacks[0].pk, app_id), at, True, 200, 12.5, "us-east-1", ""),
        probes.ProbeResult(ProbeTarget("g", app_id, None, ProbeTargetKind.GLOBAL_ENDPOINT), at, False,
                           None, 1000.0, "", ErrorClass.TIMEOUT),
    ]
    assert monitoring.store_results(results, "eu-west-1") == 2
    rows = list(HealthSample.objects.order_by("target").values(
        "stack_id", "application_id", "target", "vantage", "at", "ok", "status_code", "latency_ms",
        "served_region", "error_class",
    ))
    assert rows == [
        {"stack_id": None, "application_id": app_id, "target": ProbeTargetKind.GLOBAL_ENDPOINT,
         "vantage": "eu-west-1", "at": at, "ok": False, "status_code": None, "latency_ms": 1000.0,
         "served_region": "", "error_class": ErrorClass.TIMEOUT},
        {"stack_id": stacks[0].pk, "application_id": app_id, "target": ProbeTargetKind.STACK_HEALTH,
         "vantage": "eu-west-1", "at": at, "ok": True, "status_code": 200, "latency_ms": 12.5,
         "served_region": "us-east-1", "error_class": ""},
    ]


@pytest.mark.django_db(transaction=True)
def test_samples_of_a_stack_deleted_mid_probe_are_dropped_and_the_rest_stored():
    from datetime import UTC, datetime

    app = Application.objects.create(name="shop", architecture="A")
    kept = Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    gone = Stack.objects.create(application=app, region=Region.objects.create(code="us-west-2"))
    gone_pk = gone.pk
    gone.delete()
    at = datetime.now(UTC)
    results = [
        probes.ProbeResult(target("u", kept.pk, app.pk), at, True, 200, 1.0),
        probes.ProbeResult(target("u", gone_pk, app.pk), at, True, 200, 1.0),
    ]
    assert monitoring.store_results(results, "local") == 1
    assert list(HealthSample.objects.values_list("stack_id", flat=True)) == [kept.pk]


def test_each_second_is_claimed_once_and_missed_seconds_are_caught_up(db):
    assert list(monitoring.claim_ticks(1000)) == [1000]
    assert list(monitoring.claim_ticks(1000)) == []  # beat ran twice in that second
    assert list(monitoring.claim_ticks(999)) == []  # a late run of a second already done
    assert list(monitoring.claim_ticks(1003)) == [1001, 1002, 1003]  # a second was skipped
    assert list(monitoring.claim_ticks(5000)) == list(range(5000 - monitoring.MAX_CATCH_UP_TICKS + 1, 5001))


def test_probe_cycle_sends_the_targets_due_in_a_second_beat_skipped(stacks, settings, monkeypatch):
    from regions import tasks

    settings.CONTROLPLANE_PROBE_VANTAGES = ["us-east-1"]
    settings.CONTROLPLANE_PROBE_INTERVAL = 2.0
    app_id = stacks[0].application_id
    for n, stack in enumerate(stacks):
        Stack.objects.filter(pk=stack.pk).update(health_url=f"http://127.0.0.1:1/{n}")
    due = next(t for t in range(1000, 1002) if probes.is_due(app_id, 2.0, t))
    sent = []
    monkeypatch.setattr(tasks.probe_batch, "apply_async", lambda args, **kw: sent.append(args))

    assert tasks.probe_cycle(tick=due - 1) == 0  # not due in that second
    # beat's next run lands a second late: the second in between is caught up
    assert tasks.probe_cycle(tick=due + 1) == 3
    assert tasks.probe_cycle(tick=due + 1) == 0  # and sent once only
    assert [sorted(keys) for keys, _ in sent] == [sorted(f"s:{s.pk}" for s in stacks)]


@pytest.mark.sandbox
def test_each_probe_names_its_vantage_and_a_worker_records_the_vantages_it_acts_for(
    sandbox, stacks, settings
):
    """A worker acting for several (simulated) vantages probes each batch as that vantage:
    the request names it, the sandbox routes it as a client there, the samples carry it."""
    from regions.tasks import probe_batch

    settings.CONTROLPLANE_VANTAGE = "us-east-1"
    settings.CONTROLPLANE_WORKER_VANTAGES = ["us-east-1", "us-west-2"]
    app = stacks[0].application
    app.global_endpoint_url = sandbox.state["applications"]["orders"]["global_endpoint"]
    app.save()
    for vantage in ("us-east-1", "us-west-2", "eu-central-1"):
        probe_batch([f"a:{app.pk}"], vantage)
    samples = HealthSample.objects.filter(application=app).order_by("pk")
    assert [(s.vantage, s.ok, s.served_region) for s in samples] == [
        ("us-east-1", True, "us-east-1"),
        ("us-west-2", True, "us-west-2"),
        # not a vantage this worker acts for: probed and recorded as its own
        ("us-east-1", True, "us-east-1"),
    ]
    assert monitoring.serving_by_vantage(app.pk, samples.last().at) == {
        "us-east-1": ("us-east-1", True, samples[2].at),
        "us-west-2": ("us-west-2", True, samples[1].at),
    }
