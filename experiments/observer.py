"""Watching a drill from the client's side: a steady stream of requests through the
application's global endpoint, and the failover figures computed from it.

The observer runs in a thread of the drill runner. Every `period` seconds it sends one
GET to the global endpoint and records when, whether it succeeded, the status code, the
latency and the region that served it (`X-Served-By-Region`, as the regional stacks of
both architectures answer). The figures are pure functions of those samples and the
moments of injection and revert, so tests can compute them from hand-made samples.
Each answer is judged by the probes' classifier (`regions.probes.classify_answer`).

A drill observes from every vantage in CONTROLPLANE_PROBE_VANTAGES (docs/DRILLS.md,
"Observers"): the drill worker's own vantage in a thread of the runner, every other one
on that vantage's probe worker (`observe_remotely`, started by the task
`experiments.tasks.observe_drill` on the queue probes.<vantage>), which appends its
samples to the database as `ObserverBatch` rows that the runner reads (`RemoteSamples`).
Each request names its vantage (VANTAGE_HEADER), so the sandbox routes it as for a client
there. `vantage_figures` computes the figures per vantage and overall (the worst).
"""

import http.client
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass

from django.db import close_old_connections, connection

from experiments.models import FINAL_STATES, Drill, ObserverBatch
from regions import probes
from regions.models import ErrorClass

log = logging.getLogger(__name__)

REGION_HEADER = "X-Served-By-Region"
# The task that starts `observe_remotely` on a vantage's probe worker
# (experiments.tasks.observe_drill), sent by name by the runner.
OBSERVE_DRILL_TASK = "experiments.tasks.observe_drill"


@dataclass(frozen=True)
class Observation:
    at: float  # the observer's clock: time.monotonic(), or time.time() on a probe worker
    ok: bool
    status: int | None
    region: str
    latency_ms: float
    error: str = ""


class GlobalEndpointObserver:
    """Samples `url` every `period` seconds on a background thread until stopped, naming
    `vantage` in each request; `clock` stamps each sample (latency is always monotonic)."""

    def __init__(
        self, url, *, period=0.1, timeout=2.0, max_samples=100_000, vantage="", clock=time.monotonic
    ):
        self.url = url
        self.period = period
        self.timeout = timeout
        self.max_samples = max_samples
        self.clock = clock
        self.headers = {"User-Agent": "controlplane-drill-observer"}
        if vantage:
            self.headers[probes.VANTAGE_HEADER] = vantage
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
            at = self.clock()
            try:
                conn = conn or self._connection()
                conn.request("GET", self._path, headers=self.headers)
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
                    at, ok, status, region, (time.monotonic() - started) * 1000,
                    "" if ok else str(error_class),
                )
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                obs = Observation(at, False, None, "", (time.monotonic() - started) * 1000,
                                  type(exc).__name__)
            with self._lock:
                self.samples.append(obs)
            next_at += self.period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()


# --- remote vantages ----------------------------------------------------------------

FLUSH_SECONDS = 0.5


def _encode(s):
    return [round(s.at, 4), s.ok, s.status, s.region, round(s.latency_ms, 2), s.error]


def observe_remotely(drill_id, vantage, url, *, period, until):
    """On a probe worker: observe `url` for drill `drill_id` from `vantage` in a thread of
    this process and return at once (the worker's slot stays free for probe batches).
    Samples are stamped with wall-clock time (the runner may be on another host) and
    appended as ObserverBatch rows every FLUSH_SECONDS, until the drill has ended or the
    unix time `until`."""
    thread = threading.Thread(
        target=_observe_and_store, args=(drill_id, vantage, url, period, until),
        name=f"drill-{drill_id}-observer", daemon=True,
    )
    thread.start()
    return thread


def _observe_and_store(drill_id, vantage, url, period, until):
    observer = GlobalEndpointObserver(url, period=period, vantage=vantage, clock=time.time).start()
    sent = seq = 0

    def flush():
        nonlocal sent, seq
        samples = observer.snapshot()
        if len(samples) > sent:
            ObserverBatch.objects.create(
                drill_id=drill_id, vantage=vantage, seq=seq, samples=[_encode(s) for s in samples[sent:]]
            )
            sent, seq = len(samples), seq + 1

    try:
        while True:
            time.sleep(FLUSH_SECONDS)
            flush()
            if time.time() > until or Drill.objects.filter(pk=drill_id, state__in=FINAL_STATES).exists():
                break
    except Exception:
        log.exception("drill %s: observer from %s stopped", drill_id, vantage)
    finally:
        observer.stop()
        try:
            flush()
        except Exception:
            log.exception("drill %s: last samples from %s not stored", drill_id, vantage)
        connection.close()


class RemoteSamples:
    """A vantage's samples as its probe worker stores them, on the runner's monotonic
    clock (`offset` = time.time() - time.monotonic() of the runner), read from the
    database at most every `min_interval` seconds."""

    def __init__(self, drill_id, vantage, *, offset, min_interval=0.25):
        self.drill_id, self.vantage, self.offset = drill_id, vantage, offset
        self.min_interval = min_interval
        self._samples = []
        self._next_seq = 0
        self._read_at = float("-inf")

    def snapshot(self):
        now = time.monotonic()
        if now - self._read_at >= self.min_interval:
            self._read_at = now
            rows = ObserverBatch.objects.filter(
                drill_id=self.drill_id, vantage=self.vantage, seq__gte=self._next_seq
            ).order_by("seq").values_list("seq", "samples")
            for seq, samples in rows:
                if seq != self._next_seq:
                    break  # a batch still being committed: read it next time, in order
                self._next_seq = seq + 1
                self._samples.extend(
                    Observation(at - self.offset, bool(ok), status, region or "", float(latency), error or "")
                    for at, ok, status, region, latency, error in samples
                )
        return list(self._samples)

    def stop(self):
        close_old_connections()


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


def vantage_figures(by_vantage, *, region, injected_at, reverted_at=None, ended_at=None):
    """(figures per vantage, overall figures) of one drill observed from several vantages.

    Only the vantages that `region` served before the fault can measure failover; overall,
    time to fail over and time to recover are the worst (largest) among them, None when
    one of them has not seen it yet. Error rate and p95 latency are the worst of every
    vantage, requests_during the fewest (each vantage needs enough to judge)."""
    per = {
        vantage: failover_figures(
            samples, region=region, injected_at=injected_at, reverted_at=reverted_at, ended_at=ended_at
        )
        for vantage, samples in by_vantage.items()
    }
    measuring = [v for v, f in per.items() if f["served_by_target_before"]]
    basis = measuring or list(per)

    def worst_time(key):
        values = [per[v][key] for v in measuring]
        return None if not values or any(x is None for x in values) else max(values)

    def worst(key):
        values = [per[v][key] for v in basis if per[v][key] is not None]
        return max(values) if values else None

    not_served = [v for v in per if v not in measuring]
    if len(per) == 1:
        note = next(iter(per.values()))["note"]
    elif not measuring:
        note = (
            f"the global endpoint did not send the observers ({', '.join(per)}) to {region} before "
            "the fault; failover cannot be measured from any vantage"
        )
    elif not_served:
        note = (
            f"failover measured from {', '.join(measuring)}; {region} did not serve "
            f"{', '.join(not_served)} before the fault"
        )
    else:
        note = ""
    overall = {
        "requests_during": min((per[v]["requests_during"] for v in basis), default=0),
        "error_rate": worst("error_rate"),
        "p95_latency_ms": worst("p95_latency_ms"),
        "served_by_target_before": bool(measuring),
        "time_to_failover": worst_time("time_to_failover"),
        "time_to_recover": worst_time("time_to_recover") if reverted_at is not None else None,
        "regions_during": sorted({r for f in per.values() for r in f["regions_during"]}),
        "measured_from": measuring,
        "note": note,
    }
    return per, overall


def measurability(serving, vantages, region, *, expects_failover, within_seconds=60):
    """What a drill of `region` could measure from `vantages`, given `serving` ({vantage:
    (served region, ok, at)} of the latest global-endpoint probes, see
    regions.monitoring.serving_by_vantage): failover is measurable only from a vantage
    that `region` serves before the fault. Returns {"vantages": [{vantage, served_by,
    measures}], "measurable_from": [...], "warning": text or ""}."""
    rows, measurable = [], []
    for vantage in vantages:
        served, ok, _at = serving.get(vantage, ("", False, None))
        if vantage not in serving:
            served_by = f"unknown: no probe of the global endpoint from it in the last {within_seconds:g} s"
        elif not ok or not served:
            served_by = "no region: its latest request through the global endpoint failed"
        else:
            served_by = served
        measures = vantage in serving and ok and served == region
        if measures:
            measurable.append(vantage)
        rows.append({"vantage": vantage, "served_by": served_by, "measures": measures})
    warning = ""
    if expects_failover and not measurable:
        where = "; ".join(f"{r['vantage']} -> {r['served_by']}" for r in rows) or "no vantage configured"
        warning = (
            f"No vantage is served by {region} now ({where}), so this drill cannot measure failover "
            "and will end INCONCLUSIVE unless that changes. Drill a region that serves a vantage, or "
            f"add a vantage that {region} serves (CONTROLPLANE_PROBE_VANTAGES)."
        )
    return {"vantages": rows, "measurable_from": measurable, "warning": warning}
