"""The probe engine: many concurrent HTTP health probes on one aiohttp session.

`run_probes` runs every batch on one persistent event loop per process (a daemon thread)
and one `ClientSession` over a bounded `TCPConnector` (total and per-host connection
limits) kept from batch to batch, so a target's kept-alive connection serves the next
cycle; connect and socket-read timeouts are separate. Each probe records
the status code, the latency to the end of the body, the region that answered
(`X-Served-By-Region`, else the JSON body's "region") and an error class.

Scale-out: `partition()` splits all targets into batches by a stable hash of their key;
`regions.tasks.probe_cycle` (beat, every second) picks the applications that are due and
sends one `probe_batch` task per batch to the queue `probes.<vantage>` of each vantage.

This module does no database work; regions/monitoring.py loads targets and stores results.
"""

import asyncio
import atexit
import errno
import functools
import json
import math
import os
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import yarl

from regions.models import ErrorClass, ProbeTargetKind

REGION_HEADER = "X-Served-By-Region"
# Every probe and drill observer names its vantage: the sandbox routes a global endpoint
# request as for a client at that location (sandbox/dataplane.py); an application may log it.
VANTAGE_HEADER = "X-Controlplane-Vantage"
# Health bodies are small; never read more than this.
MAX_BODY_BYTES = 64 * 1024
USER_AGENT = "controlplane-probe/1"
# Bodies that say the stack is not healthy even with a 2xx.
_UNHEALTHY_WORDS = frozenset({"unhealthy", "fail", "failed", "error", "down"})


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    url: str
    application_id: int
    stack_id: int | None
    kind: str = ProbeTargetKind.STACK_HEALTH

    @property
    def key(self):
        """A stable id for partitioning and task arguments: "s:<stack>" or "a:<application>"."""
        if self.kind == ProbeTargetKind.GLOBAL_ENDPOINT:
            return f"a:{self.application_id}"
        return f"s:{self.stack_id}"


@dataclass(slots=True)
class ProbeResult:
    target: ProbeTarget
    at: datetime
    ok: bool
    status_code: int | None = None
    latency_ms: float | None = None
    served_region: str = ""
    error_class: str = ErrorClass.NONE
    detail: str = ""  # for logs; not stored


def classify_status(status):
    """The error class of an HTTP status code ("" when healthy)."""
    if 200 <= status < 300:
        return ErrorClass.NONE
    if status == 429:
        return ErrorClass.THROTTLED
    if status >= 500:
        return ErrorClass.HTTP_5XX
    if status >= 400:
        return ErrorClass.HTTP_4XX
    return ErrorClass.OTHER  # 1xx/3xx: a health URL must answer directly


def _parse_body(body, content_type):
    """(served region from the body, body says unhealthy)."""
    if not body or "json" not in (content_type or ""):
        return "", False
    try:
        data = json.loads(body)
    except ValueError:
        return "", False
    if not isinstance(data, dict):
        return "", False
    region = data.get("region")
    status = data.get("status")
    unhealthy = isinstance(status, str) and status.lower() in _UNHEALTHY_WORDS
    return (region if isinstance(region, str) else ""), unhealthy


def classify_exception(exc):
    """(error class, short detail) for an exception raised by a probe."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return ErrorClass.TIMEOUT, "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ErrorClass.DNS, "DNS lookup failed"
    if isinstance(
        exc,
        aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError,
    ):
        return ErrorClass.TLS, "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error is not None and exc.os_error.errno == errno.ECONNREFUSED:
            return ErrorClass.REFUSED, "connection refused"
        if isinstance(exc.os_error, TimeoutError):
            return ErrorClass.TIMEOUT, "connect timeout"
        return ErrorClass.OTHER, f"cannot connect: {exc.os_error}"
    if isinstance(exc, ConnectionRefusedError):
        return ErrorClass.REFUSED, "connection refused"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return ErrorClass.BAD_BODY, str(exc)[:200]
    return ErrorClass.OTHER, f"{type(exc).__name__}: {exc}"[:200]


def _body_verdict(body, content_type, served):
    """(served region from the body, body says unhealthy), parsing JSON only when needed.

    The common healthy answer (the region in `X-Served-By-Region`, a body without any
    unhealthy word) is decided by a byte search, without json.loads: parsing is only
    for bodies that might say "unhealthy" (or fail, error, down) and for answers
    without the region header."""
    if not body:
        return "", False
    if served:
        lowered = body.lower()
        if not any(word in lowered for word in _UNHEALTHY_BYTES):
            return "", False
    return _parse_body(body, content_type)


_UNHEALTHY_BYTES = tuple(sorted({w.encode() for w in _UNHEALTHY_WORDS if w != "failed"}))


def _timeout(connect_timeout, read_timeout):
    # The whole probe is capped at connect + read + 1 s so no target holds a cycle open.
    return aiohttp.ClientTimeout(
        total=connect_timeout + read_timeout + 1.0,
        sock_connect=connect_timeout,
        sock_read=read_timeout,
    )


# Global endpoints are resolved through DNS (Route 53 failover): a kept-alive connection
# would keep probing the old address, so their probes close the connection.
_CLOSE_HEADERS = {"Connection": "close"}


@functools.lru_cache(maxsize=65536)
def _url(url):
    """The parsed URL of a target, kept from cycle to cycle (aiohttp would parse it per request)."""
    return yarl.URL(url)


_GLOBAL_ENDPOINT = str(ProbeTargetKind.GLOBAL_ENDPOINT.value)
_NONE = str(ErrorClass.NONE.value)
_BAD_BODY = str(ErrorClass.BAD_BODY.value)


async def _probe_one(session, target, timeout):
    """One probe; the caller holds a concurrency slot, so the clock starts now (waiting
    for a slot is not latency)."""
    headers = _CLOSE_HEADERS if target.kind == _GLOBAL_ENDPOINT else None
    at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        async with session.get(
            _url(target.url), allow_redirects=False, timeout=timeout, headers=headers
        ) as resp:
            body = await resp.content.read(MAX_BODY_BYTES)
            latency_ms = (time.perf_counter() - started) * 1000.0
            status = resp.status
            served = resp.headers.get(REGION_HEADER, "")
            content_type = resp.headers.get("Content-Type")
    except Exception as exc:  # every failure is an outcome to record
        return _failure(target, at, started, exc)
    error_class, served_region = classify_answer(status, body, content_type, served)
    return ProbeResult(
        target,
        at,
        error_class == _NONE,
        status_code=status,
        latency_ms=latency_ms,
        served_region=served_region[:32],
        error_class=error_class,
    )


def classify_answer(status, body, content_type, served=""):
    """(error class, served region) of one HTTP answer, as the probes judge it: the
    status code's class, and a 2xx whose JSON body says unhealthy (fail, error, down) is
    a bad body; the region from the `X-Served-By-Region` header, else from the body.
    The drill observer judges its requests with this too."""
    body_region, body_unhealthy = _body_verdict(body, content_type, served)
    error_class = classify_status(status)
    if error_class == _NONE and body_unhealthy:
        error_class = _BAD_BODY
    return error_class, served or body_region


def _failure(target, at, started, exc):
    error_class, detail = classify_exception(exc)
    return ProbeResult(
        target,
        at,
        False,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        error_class=error_class,
        detail=detail,
    )


# Idle kept-alive connections live this long (longer than the usual 2 s interval, so a
# target's connection is reused from cycle to cycle; shorter than the usual server
# keep-alive timeouts: ALB 60 s, API Gateway and aiohttp.web 75 s).
KEEPALIVE_SECONDS = 30.0
# Host names (global endpoints) are resolved again after this many seconds.
DNS_CACHE_SECONDS = 5


def _session(concurrency, limit_per_host, vantage=None):
    """A ClientSession over a bounded `TCPConnector` (call it on the loop that will use it);
    its requests name `vantage` in VANTAGE_HEADER."""
    connector = aiohttp.TCPConnector(
        limit=concurrency,
        limit_per_host=limit_per_host or concurrency,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        keepalive_timeout=KEEPALIVE_SECONDS,
        enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            **({VANTAGE_HEADER: vantage} if vantage else {}),
        },
        raise_for_status=False,
    )


async def _probe_all(session, targets, concurrency, connect_timeout, read_timeout):
    """`concurrency` workers take the targets in turn (no task and no semaphore wait per
    target); results come back in the order of `targets`."""
    timeout = _timeout(connect_timeout, read_timeout)
    results = [None] * len(targets)
    pending = iter(enumerate(targets))

    async def worker():
        for index, target in pending:
            results[index] = await _probe_one(session, target, timeout)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
    return results


def new_event_loop():
    """uvloop's event loop where it is installed (Linux, macOS: requirements.txt), else
    asyncio's. On loopback the engine did 1.00-1.21x the checks per CPU-second of
    asyncio's own loop in the same runs (bench/probe_throughput.py, docs/PERFORMANCE.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Engine:
    """One event loop per process, in a daemon thread, with its sessions.

    Celery prefork children (and scripts) call `run_probes` synchronously, batch after
    batch: the loop and its sessions persist, so the kept-alive connections of one cycle
    serve the next (no TCP connect per target per cycle, no new loop per batch). The
    loop runs in its own thread so that callers that already run an event loop (async
    code, Playwright's sync API in tests) can use it too."""

    def __init__(self, loop_factory=None):
        self.pid = os.getpid()
        self.loop = (loop_factory or new_event_loop)()
        self.sessions = {}  # (concurrency, limit_per_host, vantage) -> ClientSession
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="probe-engine", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    async def _probe(self, targets, concurrency, connect_timeout, read_timeout, limit_per_host, vantage):
        key = (concurrency, limit_per_host or concurrency, vantage)
        session = self.sessions.get(key)
        if session is None or session.closed:
            session = self.sessions[key] = _session(concurrency, limit_per_host, vantage)
        return await _probe_all(session, targets, concurrency, connect_timeout, read_timeout)

    def run(self, targets, **kwargs):
        return asyncio.run_coroutine_threadsafe(self._probe(targets, **kwargs), self.loop).result()

    async def _close_sessions(self):
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            await session.close()

    def close(self):
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close_sessions(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


_engine = None
_engine_lock = threading.Lock()


def _get_engine():
    global _engine
    with _engine_lock:
        # A forked child (Celery prefork) inherits the parent's object but not its
        # thread: it makes its own loop and sessions.
        if _engine is None or _engine.pid != os.getpid() or not _engine.thread.is_alive():
            _engine = _Engine()
        return _engine


def close_engine():
    """Close the process's kept-alive sessions and stop its probe loop (tests, shutdown)."""
    global _engine
    with _engine_lock:
        engine, _engine = _engine, None
    if engine is not None and engine.pid == os.getpid():
        engine.close()


atexit.register(close_engine)


def run_probes(
    targets, *, concurrency=500, connect_timeout=1.0, read_timeout=2.0, limit_per_host=None, vantage=None
):
    """Synchronous entry point for Celery tasks and scripts; one ProbeResult per target.

    Runs on the process's persistent probe loop and reuses its session (and kept-alive
    connections) for the same `concurrency` / `limit_per_host` / `vantage` from call to
    call. `vantage` is named in each request's VANTAGE_HEADER."""
    if not targets:
        return []
    return _get_engine().run(
        targets,
        concurrency=concurrency,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        limit_per_host=limit_per_host,
        vantage=vantage,
    )


def stable_bucket(key, buckets):
    """The bucket of `key` among `buckets`, the same in every process (crc32, not hash())."""
    return zlib.crc32(key.encode()) % buckets


def partition(keys, batch_size):
    """Split target keys into about len/batch_size batches by a stable hash of each key.

    The same key lands in the same batch as long as the number of batches does not
    change, so a target keeps its worker (and its warm connections) from cycle to cycle.
    Empty batches are dropped; each batch is sorted for readable task arguments."""
    keys = list(keys)
    if not keys:
        return []
    count = max(1, math.ceil(len(keys) / batch_size))
    batches = [[] for _ in range(count)]
    for key in keys:
        batches[stable_bucket(key, count)].append(key)
    return [sorted(b) for b in batches if b]


def interval_seconds(interval):
    """Whole seconds (≥ 1) of a probe interval given as a timedelta or seconds."""
    seconds = interval.total_seconds() if hasattr(interval, "total_seconds") else float(interval)
    return max(1, round(seconds))


def is_due(application_id, interval, tick):
    """Whether an application is probed in the cycle of second `tick` (epoch seconds).

    Stateless: each application has a fixed phase (stable hash of its id) within its
    interval, so applications with the same interval are spread over the seconds
    instead of all firing together, and every beat process agrees."""
    period = interval_seconds(interval)
    phase = stable_bucket(f"a:{application_id}", period)
    return (int(tick) - phase) % period == 0
