"""Probe engine throughput: 2,000 local endpoints answering after 50 ms.

    DJANGO_SETTINGS_MODULE=controlplane.settings .venv/bin/python bench/probe_throughput.py

Measures side by side in one run, cycles interleaved (the machine is noisy):

(a) the probe engine as `probe_batch` runs it: load the targets (2 queries), probe them
    all (`run_probes`: persistent uvloop loop and session, kept-alive connections), store
    the samples (`store_results`: COPY on PostgreSQL, executemany on SQLite) and fold
    them into each target's TargetState (one SELECT, one upsert).
(a1) the same engine on asyncio's own event loop, for the ratio to uvloop.
(a0) the previous engine, for the ratio: a new event loop and session per cycle
    (`asyncio.run(_one_shot(...))`, a TCP connect per target per cycle) and
    `HealthSample.objects.bulk_create` of model instances.
(c) aiohttp alone: a bare `session.get` + `read()` loop on one kept session (uvloop),
    nothing classified or stored: the floor of what this machine spends per check.
(b) a naive sequential loop with urllib.request on a small subset, extrapolated to all
    endpoints (clearly labelled).

For each: wall time per cycle, and checks per CPU-second of this process
(time.process_time: the engine, its loop thread, the ORM and, on SQLite, the database
itself; user and system time shown apart: on loopback the kernel's work for both ends
of a connection is largely charged to the sender). The endpoint servers run in child
processes; their CPU is reported apart (they stand in for the world, and share the
machine's 2 CPUs, which is what bounds the wall time here).

Loopback only. It works in a throwaway database (created and destroyed here: a SQLite
file in CONTROLPLANE_VAR_DIR, or <NAME>_probes next to DATABASE_URL's database on
PostgreSQL) and stops by itself: a fixed number of cycles and an alarm after
BENCH_TIMEOUT seconds. Options through the environment: BENCH_ENDPOINTS (2000),
BENCH_CYCLES (5 per variant), BENCH_SERVERS (2 processes), BENCH_PORTS (10 per process),
BENCH_CONCURRENCY (500), BENCH_NAIVE (40), BENCH_TIMEOUT (300).
"""

import asyncio
import multiprocessing
import os
import signal
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

ENDPOINTS = int(os.environ.get("BENCH_ENDPOINTS", 2000))
CYCLES = int(os.environ.get("BENCH_CYCLES", 5))
SERVERS = int(os.environ.get("BENCH_SERVERS", 2))
PORTS = int(os.environ.get("BENCH_PORTS", 10))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 500))
NAIVE = int(os.environ.get("BENCH_NAIVE", 40))
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 300))
DELAY = 0.05


async def _one_shot(probes, targets):
    """The previous engine's cycle: every target on one new session, closed at the end
    (a TCP connect per target per cycle), against which the persistent engine is measured."""
    async with probes._session(CONCURRENCY, None) as session:
        return await probes._probe_all(session, targets, CONCURRENCY, 2.0, 2.0)


def serve(ports_count, conn):
    """A child process: one aiohttp server on `ports_count` loopback ports; every path
    /ep/<n> answers after 50 ms with the region header. Stops when the pipe says so."""
    from aiohttp import web

    async def handler(request):
        await asyncio.sleep(DELAY)
        return web.json_response(
            {"status": "healthy"}, headers={"X-Served-By-Region": "bench-" + request.match_info["n"]}
        )

    async def main():
        app = web.Application()
        app.router.add_get("/ep/{n}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for _ in range(ports_count):
            await web.TCPSite(runner, "127.0.0.1", 0, backlog=2048).start()
        conn.send([addr[1] for addr in runner.addresses])
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        conn.send(time.process_time())
        await runner.cleanup()

    asyncio.run(main())


def start_servers():
    ctx = multiprocessing.get_context("fork")
    procs, pipes, ports = [], [], []
    for _ in range(SERVERS):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=serve, args=(PORTS, child), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    for pipe in pipes:
        if not pipe.poll(30):
            raise RuntimeError("a server process did not start")
        ports.extend(pipe.recv())
    return procs, pipes, ports


def stop_servers(procs, pipes):
    cpu = 0.0
    for pipe in pipes:
        try:
            pipe.send("stop")
            if pipe.poll(10):
                cpu += pipe.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
    return cpu


def seed(ports):
    """ENDPOINTS stacks (5 regions per application), each with its own URL."""
    from regions.models import Application, Region, Stack

    regions = Region.objects.bulk_create([Region(code=f"bench-region-{n}") for n in range(5)])
    apps = Application.objects.bulk_create(
        [Application(name=f"bench-{n}", architecture="A") for n in range((ENDPOINTS + 4) // 5)]
    )
    stacks = []
    for n in range(ENDPOINTS):
        port = ports[n % len(ports)]
        stacks.append(
            Stack(application=apps[n // 5], region=regions[n % 5],
                  health_url=f"http://127.0.0.1:{port}/ep/{n}")
        )
    Stack.objects.bulk_create(stacks)
    return [f"s:{pk}" for pk in Stack.objects.values_list("pk", flat=True)]


def engine_cycle(keys):
    from regions import monitoring, probes

    targets = monitoring.targets_for_keys(keys)
    results = probes.run_probes(targets, concurrency=CONCURRENCY, connect_timeout=2.0, read_timeout=2.0)
    stored = monitoring.store_results(results, "bench")
    return results, stored


class AsyncioEngine:
    """The engine as it is, but on asyncio's own event loop instead of uvloop's."""

    def __init__(self):
        from regions import probes

        self.engine = probes._Engine(asyncio.new_event_loop)

    def cycle(self, keys):
        from regions import monitoring

        targets = monitoring.targets_for_keys(keys)
        results = self.engine.run(targets, concurrency=CONCURRENCY, connect_timeout=2.0, read_timeout=2.0,
                                  limit_per_host=None)
        return results, monitoring.store_results(results, "bench-asyncio")

    def close(self):
        self.engine.close()


def previous_cycle(keys):
    """The engine before this change: a new loop, session and connections per cycle,
    and model instances through bulk_create."""
    from django.db import transaction

    from regions import monitoring, probes
    from regions.models import HealthSample

    targets = monitoring.targets_for_keys(keys)
    results = asyncio.run(_one_shot(probes, targets))
    rows = [
        HealthSample(
            stack_id=r.target.stack_id, application_id=r.target.application_id, target=r.target.kind,
            vantage="bench-prev", at=r.at, ok=r.ok, status_code=r.status_code, latency_ms=r.latency_ms,
            served_region=r.served_region, error_class=r.error_class,
        )
        for r in results
    ]
    with transaction.atomic():
        HealthSample.objects.bulk_create(rows, batch_size=2000)
    return results, len(rows)


class Bare:
    """aiohttp alone on one kept session and loop (a thread of its own, the engine's
    kind of loop: uvloop)."""

    def __init__(self):
        import threading

        import aiohttp

        from regions.probes import new_event_loop

        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make():
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))

        self.session = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    async def _all(self, urls):
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(url):
            async with sem, self.session.get(url) as resp:
                await resp.read()
                return resp.status == 200

        return await asyncio.gather(*(one(u) for u in urls))

    def cycle(self, urls):
        results = asyncio.run_coroutine_threadsafe(self._all(urls), self.loop).result()
        return results, len(results)

    def close(self):
        asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def naive(urls):
    ok = 0
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                resp.read()
                ok += resp.status == 200
        except OSError:
            pass
    return ok


def measure(fn, arg):
    r0, cpu0, wall0 = os.times(), time.process_time(), time.perf_counter()
    results, stored = fn(arg)
    wall, cpu, r1 = time.perf_counter() - wall0, time.process_time() - cpu0, os.times()
    failed = sum(not (r if isinstance(r, bool) else r.ok) for r in results)
    return wall, cpu, r1.user - r0.user, r1.system - r0.system, failed, stored


def report(label, rows, checks_per_cycle):
    walls = [r[0] for r in rows]
    cpu = sum(r[1] for r in rows)
    per_cpu_s = checks_per_cycle * len(rows) / cpu
    print(f"{label}")
    print(f"    cycle wall: median {statistics.median(walls):.3f} s (min {min(walls):.3f}, "
          f"max {max(walls):.3f}); CPU/cycle median {statistics.median(r[1] for r in rows):.3f} s "
          f"(user {sum(r[2] for r in rows) / len(rows):.3f}, "
          f"system {sum(r[3] for r in rows) / len(rows):.3f})")
    print(f"    checks per CPU-second: {per_cpu_s:,.0f}; failed checks: {sum(r[4] for r in rows)}")
    return statistics.median(walls), per_cpu_s


def main():
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("benchmark timed out")))
    signal.alarm(TIMEOUT)
    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})
    vendor = connection.vendor
    if vendor == "sqlite":
        from django.conf import settings

        settings_dict["TEST"]["NAME"] = str(Path(settings.VAR_DIR) / "bench-probes.sqlite3")
    else:
        settings_dict["TEST"]["NAME"] = f"{settings_dict['NAME']}_probes"
    old_name = settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    procs, pipes, bare, on_asyncio = [], [], None, None
    try:
        procs, pipes, ports = start_servers()
        keys = seed(ports)
        urls = [f"http://127.0.0.1:{ports[n % len(ports)]}/ep/{n}" for n in range(len(keys))]
        print(f"{time.strftime('%Y-%m-%d %H:%M')}; {len(keys)} endpoints on {len(ports)} loopback ports "
              f"in {SERVERS} server processes, each answering after {DELAY * 1000:.0f} ms; "
              f"database: {vendor}; concurrency {CONCURRENCY}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}")

        # The garbage-collector settings of a Celery worker process (controlplane.celery):
        # the engine is measured as it runs there; the other variants share them.
        from controlplane.celery import tune_gc
        from regions.models import HealthSample

        tune_gc()
        bare = Bare()
        on_asyncio = AsyncioEngine()
        variants = {"engine": (engine_cycle, keys), "asyncio": (on_asyncio.cycle, keys),
                    "previous": (previous_cycle, keys), "bare": (bare.cycle, urls)}
        for fn, arg in variants.values():  # warm up: imports, the DB connection, kept connections
            fn(arg)
        HealthSample.objects.all().delete()

        rows = {name: [] for name in variants}
        for _ in range(CYCLES):  # interleaved, so every variant sees the same noise
            for name, (fn, arg) in variants.items():
                rows[name].append(measure(fn, arg))
        for name in ("engine", "asyncio", "previous"):
            assert all(r[5] == len(keys) for r in rows[name])
        assert HealthSample.objects.count() == 3 * CYCLES * len(keys)

        subset = urls[:NAIVE]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        naive_ok = naive(subset)
        naive_wall = time.perf_counter() - wall0
        naive_cpu = time.process_time() - cpu0
        naive_wall_all = naive_wall / NAIVE * len(keys)
        naive_per_cpu_s = NAIVE / naive_cpu if naive_cpu else float("inf")
    finally:
        if bare is not None:
            bare.close()
        if on_asyncio is not None:
            on_asyncio.close()
        server_cpu = stop_servers(procs, pipes)
        from regions import probes

        probes.close_engine()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        signal.alarm(0)

    n = len(keys)
    print()
    wall_a, cpu_a = report(f"(a) probe engine + storing the samples, {CYCLES} cycles x {n} endpoints "
                           "(target: <= 1.5 s, >= 3,000 checks/CPU-s)", rows["engine"], n)
    wall_s, cpu_s = report("(a1) the same engine on asyncio's event loop instead of uvloop's",
                           rows["asyncio"], n)
    wall_p, cpu_p = report("(a0) previous engine (new loop + session per cycle, bulk_create of instances)",
                           rows["previous"], n)
    wall_c, cpu_c = report("(c) aiohttp alone on uvloop (kept session, no classification, nothing stored)",
                           rows["bare"], n)
    print(f"    endpoint servers' CPU (child processes, not counted above): {server_cpu:.2f} s "
          f"over {len(rows) * (CYCLES + 1)} cycles")
    print(f"(b) naive sequential urllib loop on {NAIVE} endpoints ({naive_ok} ok): {naive_wall:.2f} s, "
          f"{naive_per_cpu_s:,.0f} checks per CPU-second")
    print(f"    EXTRAPOLATED to {n} endpoints: {naive_wall_all:.1f} s per cycle")
    print("ratios, same run:")
    print(f"    uvloop vs asyncio's loop (same engine): {wall_s / wall_a:.2f}x faster per cycle, "
          f"{cpu_a / cpu_s:.2f}x checks per CPU-second")
    print(f"    engine vs previous engine: {wall_p / wall_a:.2f}x faster per cycle, "
          f"{cpu_a / cpu_p:.2f}x checks per CPU-second")
    print(f"    engine vs aiohttp alone: {cpu_a / cpu_c:.2f}x checks per CPU-second "
          f"(wall {wall_a / wall_c:.2f}x of aiohttp alone's)")
    print(f"    engine vs naive (extrapolated): {naive_wall_all / wall_a:.0f}x faster per cycle, "
          f"{cpu_a / naive_per_cpu_s:.1f}x checks per CPU-second")


if __name__ == "__main__":
    main()
