"""The probe engine: many concurrent HTTP health probes on one aiohttp session.

One cycle = one `ClientSession` over a bounded `TCPConnector` (total and per-host
connection limits) with separate connect and socket-read timeouts. Each probe records
the status code, the latency to the end of the body, the region that answered
(`X-Served-By-Region`, else the JSON body's "region") and an error class.

Scale-out: `partition()` splits all targets into batches by a stable hash of their key;
`regions.tasks.probe_cycle` (beat, every second) picks the applications that are due and
sends one `probe_batch` task per batch to the queue `probes.<vantage>` of each vantage.

This module does no database work; regions/monitoring.py loads targets and stores results.
"""

import asyncio
import concurrent.futures
import errno
import json
import math
import ssl
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from regions.models import ErrorClass, ProbeTargetKind

REGION_HEADER = "X-Served-By-Region"
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


async def _probe_one(session, semaphore, target):
    async with semaphore:
        # The clock starts once the probe holds a slot: waiting for one is not latency.
        at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            async with session.get(target.url, allow_redirects=False) as resp:
                body = await resp.content.read(MAX_BODY_BYTES)
                latency_ms = (time.perf_counter() - started) * 1000.0
                status = resp.status
                served = resp.headers.get(REGION_HEADER, "")
                body_region, body_unhealthy = _parse_body(body, resp.headers.get("Content-Type"))
        except Exception as exc:  # every failure is an outcome to record
            return _failure(target, at, started, exc)
    error_class = classify_status(status)
    if error_class == ErrorClass.NONE and body_unhealthy:
        error_class = ErrorClass.BAD_BODY
    return ProbeResult(
        target,
        at,
        error_class == ErrorClass.NONE,
        status_code=status,
        latency_ms=latency_ms,
        served_region=(served or body_region)[:32],
        error_class=error_class,
    )


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


async def probe_many(
    targets, *, concurrency=500, connect_timeout=1.0, read_timeout=2.0, limit_per_host=None
):
    """Probe every target concurrently on one session; one ProbeResult per target, in order.

    At most `concurrency` connections are open at once (`limit_per_host` per host:port,
    default the same). A connect slower than `connect_timeout` or a socket read
    waiting longer than `read_timeout` is a timeout; the whole probe is also capped at
    connect + read + 1 s so no single target can hold a cycle open."""
    if not targets:
        return []
    connector = aiohttp.TCPConnector(
        limit=concurrency,
        limit_per_host=limit_per_host or concurrency,
        ttl_dns_cache=60,
        enable_cleanup_closed=False,
    )
    timeout = aiohttp.ClientTimeout(
        total=connect_timeout + read_timeout + 1.0,
        sock_connect=connect_timeout,
        sock_read=read_timeout,
    )
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        raise_for_status=False,
    ) as session:
        return await asyncio.gather(*(_probe_one(session, semaphore, t) for t in targets))


def run_probes(targets, *, concurrency=500, connect_timeout=1.0, read_timeout=2.0, limit_per_host=None):
    """Synchronous wrapper for Celery tasks and scripts (runs its own event loop).

    When this thread already runs an event loop (a caller inside async code, or a test
    session driving Playwright's sync API), the probes run on a short-lived thread of
    their own instead, since asyncio.run() refuses to nest."""

    def run():
        return asyncio.run(
            probe_many(
                targets,
                concurrency=concurrency,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                limit_per_host=limit_per_host,
            )
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


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
