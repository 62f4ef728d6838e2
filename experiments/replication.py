"""Replication lag into a drill's region, measured during the drill at ~1 s resolution.

A `ReplicationWatcher` runs on a thread of the drill runner. Every `period` seconds
(0.25 s: the figures' resolution) it
writes a canary marker into a source replica (another region of the application) and
polls the drill's region's replica for the markers it has not seen yet, oldest first
(replication delivers in order, so one GetItem per poll suffices while nothing
arrives). From the (written, seen) pairs the figures are pure functions
(`lag_at`, `lag_figures`), so tests compute them from hand-made markers:

- lag at time t: the age of the oldest marker written by t and not seen by t, or, when
  every marker written so far has arrived, the lag of the latest one that arrived;
- max lag during the fault: the largest lag at any moment between injection and revert
  (evaluated at every write and every arrival, where it changes slope);
- time to converge: from the revert (resume) to the arrival of the last marker written
  before it;
- RPO estimate: the lag at the moment the region was failed (or, for a fault that does
  not fail the region over, at the revert): the oldest write the region had not received.
"""

import logging
import threading
import time
from dataclasses import dataclass

from controlplane import aws
from regions import lag

log = logging.getLogger(__name__)


@dataclass
class Marker:
    written: float  # time.monotonic()
    key: dict
    seen: float | None = None


def lag_at(markers, t):
    """Milliseconds of lag at monotonic time `t` (None before the first arrival or
    outstanding marker)."""
    outstanding = [m for m in markers if m.written <= t and (m.seen is None or m.seen > t)]
    if outstanding:
        return (t - min(m.written for m in outstanding)) * 1000
    arrived = [m for m in markers if m.seen is not None and m.seen <= t]
    if not arrived:
        return None
    latest = max(arrived, key=lambda m: m.seen)
    return (latest.seen - latest.written) * 1000


def lag_figures(markers, *, start, end, reverted_at=None, rpo_at=None):
    """Figures of the markers between `start` and `end` (monotonic seconds):
    max_lag_ms (None if nothing was measured), time_to_converge (None if not measured:
    no revert, or a marker written before the revert never arrived), rpo_ms, and a
    one-second series [[seconds since start, lag ms], ...]."""
    moments = {start, end}
    for m in markers:
        for t in (m.written, m.seen):
            if t is not None and start <= t <= end:
                moments.add(t)
                moments.add(t - 1e-6)
    values = [v for t in sorted(moments) if start <= t <= end and (v := lag_at(markers, t)) is not None]
    converge = None
    if reverted_at is not None:
        before = [m for m in markers if m.written <= reverted_at]
        if before and all(m.seen is not None for m in before):
            converge = max(0.0, max(m.seen for m in before) - reverted_at)
    rpo = lag_at(markers, rpo_at) if rpo_at is not None else None
    series = []
    second = 0
    while start + second <= end:
        value = lag_at(markers, start + second)
        if value is not None:
            series.append([second, round(value, 1)])
        second += 1
    return {
        "max_lag_ms": round(max(values), 1) if values else None,
        "time_to_converge": converge,
        "rpo_ms": None if rpo is None else round(rpo, 1),
        "lag_series": series[-600:],
    }


class ReplicationWatcher:
    """Writes a marker into `source` every `period` s and polls `target` for them."""

    def __init__(self, source, target, *, period=0.25, poll=0.05):
        self.source, self.target = source, target
        self.period, self.poll = period, poll
        self.markers = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-replication-watcher", daemon=True)

    @classmethod
    def for_region(cls, application, region, **kwargs):
        """A watcher into `region`'s replica from another region's, or None when the
        application has no replica there or no other replica to write from."""
        replicas = lag.replicas_of(application.pk)
        target = next((r for r in replicas if r.stack.region_id == region.pk), None)
        source = next((r for r in replicas if r.stack.region_id != region.pk), None)
        return cls(source, target, **kwargs) if target and source else None

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self):
        with self._lock:
            return [Marker(m.written, m.key, m.seen) for m in self.markers]

    def lag_now_ms(self):
        return lag_at(self.snapshot(), time.monotonic())

    def wait_for_arrival(self, timeout):
        """Block until a marker has arrived (True) or `timeout` s passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.seen is not None for m in self.snapshot()):
                return True
            self._stop.wait(0.05)
        return False

    def _run(self):
        self._source_ddb, self._target_ddb = lag.dynamodb_for(self.source), lag.dynamodb_for(self.target)
        next_write = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_write:
                    key, written = lag.write_marker(self.source, self._source_ddb)
                    with self._lock:
                        self.markers.append(Marker(written, key))
                    next_write += self.period
                self._poll_outstanding()
            except (aws.ClientError, aws.BotoCoreError) as exc:
                self.errors += 1
                log.warning("replication watcher: %s", exc)
            self._stop.wait(self.poll)

    def _poll_outstanding(self):
        while not self._stop.is_set():
            with self._lock:
                waiting = next((m for m in self.markers if m.seen is None), None)
            if waiting is None:
                return
            seen = lag.read_marker(self.target, waiting.key, self._target_ddb)
            if seen is None:
                return
            with self._lock:
                waiting.seen = seen
