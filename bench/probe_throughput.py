"""Probe engine throughput: 2,000 local endpoints answering after 50 ms.

    DJANGO_SETTINGS_MODULE=controlplane.settings .venv/bin/python bench/probe_throughput.py

Measures side by side in one run:

(a) the probe engine as `probe_batch` runs it: load the targets (2 queries), probe them
    all on one aiohttp session (bounded connector), store the samples in one bulk insert.
    Wall time per cycle, and checks per CPU-second of this process (time.process_time:
    the engine, the ORM and, on SQLite, the database itself). The endpoint servers run
    in child processes; their CPU is reported apart (they stand in for the world).
(b) a naive sequential loop with urllib.request on a small subset, extrapolated to all
    endpoints (clearly labelled).

Loopback only. It works in a throwaway test database (created and destroyed here) and
stops by itself: a fixed number of cycles and an alarm after BENCH_TIMEOUT seconds.
Options through the environment: BENCH_ENDPOINTS (2000), BENCH_CYCLES (5),
BENCH_SERVERS (2 processes), BENCH_PORTS (10 per process), BENCH_CONCURRENCY (500),
BENCH_NAIVE (40).
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
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", 180))
DELAY = 0.05


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
        settings_dict["TEST"]["NAME"] = "bench_probe_throughput"
    old_name = settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    procs, pipes = [], []
    try:
        procs, pipes, ports = start_servers()
        keys = seed(ports)
        print(f"{len(keys)} endpoints on {len(ports)} loopback ports in {SERVERS} server processes, "
              f"each answering after {DELAY * 1000:.0f} ms; database: {vendor}; "
              f"concurrency {CONCURRENCY}; {os.cpu_count()} CPUs")

        engine_cycle(keys[:50])  # warm up imports and the connection
        from regions.models import HealthSample

        HealthSample.objects.all().delete()

        walls, cpus, failures = [], [], 0
        for _ in range(CYCLES):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            results, stored = engine_cycle(keys)
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
            failures += sum(not r.ok for r in results)
            assert stored == len(keys)
        checks = CYCLES * len(keys)
        per_cpu_s = checks / sum(cpus)
        assert HealthSample.objects.count() == checks

        subset = [f"http://127.0.0.1:{ports[n % len(ports)]}/ep/{n}" for n in range(NAIVE)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        naive_ok = naive(subset)
        naive_wall = time.perf_counter() - wall0
        naive_cpu = time.process_time() - cpu0
        naive_wall_all = naive_wall / NAIVE * len(keys)
        naive_per_cpu_s = NAIVE / naive_cpu if naive_cpu else float("inf")
    finally:
        server_cpu = stop_servers(procs, pipes)
        connection.creation.destroy_test_db(old_name, verbosity=0)
        signal.alarm(0)

    print()
    print(f"(a) probe engine + storing samples, {CYCLES} cycles x {len(keys)} endpoints")
    print(f"    cycle wall time: median {statistics.median(walls):.3f} s, max {max(walls):.3f} s "
          f"(target <= 1.5 s)")
    print(f"    CPU per cycle (this process): median {statistics.median(cpus):.3f} s")
    print(f"    checks per CPU-second: {per_cpu_s:,.0f} (target >= 3,000)")
    print(f"    failed checks: {failures}")
    print(f"    endpoint servers' CPU (child processes, not the engine): {server_cpu:.2f} s total")
    print(f"(b) naive sequential urllib loop on {NAIVE} endpoints ({naive_ok} ok): {naive_wall:.2f} s, "
          f"{naive_per_cpu_s:,.0f} checks per CPU-second")
    print(f"    EXTRAPOLATED to {len(keys)} endpoints: {naive_wall_all:.1f} s per cycle")
    print(f"ratio (naive extrapolated wall / engine median wall): "
          f"{naive_wall_all / statistics.median(walls):.0f}x faster per cycle")
    print(f"ratio (engine / naive checks per CPU-second): {per_cpu_s / naive_per_cpu_s:.1f}x")


if __name__ == "__main__":
    main()
