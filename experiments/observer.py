"""Watching a drill from the client's side: a steady stream of requests through the
application's global endpoint, and the failover figures computed from it.

The observer runs in a thread of the drill runner. Every `period` seconds it sends one
GET to the global endpoint and records when, whether it succeeded, the status code, the
latency and the region that served it (`X-Served-By-Region`, as the regional stacks of
both architectures answer). The figures are pure functions of those samples and the
moments of injection and revert, so tests can compute them from hand-made samples.
Each answer is judged by the probes' classifier (`regions.probes.classify_answer`).
"""

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass

from regions import probes
from regions.models import ErrorClass

REGION_HEADER = "X-Served-By-Region"


@dataclass(frozen=True)
class Observation:
    at: float  # time.monotonic()
    ok: bool
    status: int | None
    region: str
    latency_ms: float
    error: str = ""


class GlobalEndpointObserver:
    """Samples `url` every `period` seconds on a background thread until stopped."""

    def __init__(self, url, *, period=0.1, timeout=2.0, max_samples=100_000):
        self.url = url
        self.period = period
        self.timeout = timeout
        self.max_samples = max_samples
        self.samples = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-observer", daemon=True)
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 1)

    def snapshot(self):
        with self._lock:
            return list(self.samples)

    def _connection(self):
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def _run(self):
        conn = None
        next_at = time.monotonic()
        while not self._stop.is_set() and len(self.samples) < self.max_samples:
            started = time.monotonic()
            try:
                conn = conn or self._connection()
                conn.request("GET", self._path, headers={"User-Agent": "controlplane-drill-observer"})
                response = conn.getresponse()
                body = response.read(64 * 1024)
                status = response.status
                # Judged as the probes judge an answer (one classifier): a 2xx whose
                # body says unhealthy is a failure, a redirect is not a success.
                served = response.getheader(REGION_HEADER, "") or ""
                error_class, region = probes.classify_answer(
                    status, body, response.getheader("Content-Type"), served
                )
                ok = error_class == ErrorClass.NONE
                obs = Observation(
                    started, ok, status, region, (time.monotonic() - started) * 1000,
                    "" if ok else str(error_class),
                )
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                obs = Observation(started, False, None, "", (time.monotonic() - started) * 1000,
                                  type(exc).__name__)
            with self._lock:
                self.samples.append(obs)
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()


def p95(values):
    """The 95th percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def failover_figures(samples, *, region, injected_at, reverted_at=None, ended_at=None):
    """Figures of one drill from the client's side, in seconds (None when not seen).

    - served_by_target_before: the target region served this client before the fault;
      if not, there was nothing to fail over from this vantage (said in `note`).
    - time_to_failover: from injection to the first success served by another region
      (when the target served before), or to the first success at all after a failure.
    - time_to_recover: from revert to the first success served by the target again.
    - error_rate and p95_latency_ms while the fault was on."""
    before = [s for s in samples if s.at < injected_at]
    during = [s for s in samples if injected_at <= s.at < (reverted_at or float("inf"))]
    after = [s for s in samples if reverted_at is not None and s.at >= reverted_at]
    if ended_at is not None:
        after = [s for s in after if s.at <= ended_at]
    served_before = any(s.ok and s.region == region for s in before)

    failover = None
    if served_before:
        first = next((s for s in during if s.ok and s.region and s.region != region), None)
        failover = None if first is None else first.at - injected_at
    recover = None
    if reverted_at is not None and served_before:
        back = next((s for s in after if s.ok and s.region == region), None)
        recover = None if back is None else back.at - reverted_at
    errors = sum(1 for s in during if not s.ok)
    return {
        "requests_during": len(during),
        "error_rate": (errors / len(during)) if during else None,
        "p95_latency_ms": p95([s.latency_ms for s in during]),
        "served_by_target_before": served_before,
        "time_to_failover": failover,
        "time_to_recover": recover,
        "regions_during": sorted({s.region for s in during if s.ok and s.region}),
        "note": "" if served_before else (
            f"the global endpoint did not send this client to {region} before the fault; "
            "failover cannot be measured from this vantage"
        ),
    }
