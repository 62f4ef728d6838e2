"""Are the background processes alive, and what will not happen if they are not?

Computed, never stored: `assess()` is a pure function of the heartbeat rows that every
worker and beat write for themselves (controlplane/heartbeats.py), `now` and the
settings. `load()` reads the rows (one query) and calls it; the console shows the result
on every page (controlplane/context_processors.py, the footer and banner of base.html).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.celery import probe_queue
from controlplane.durations import format_duration
from controlplane.models import ServiceHeartbeat

# A process not seen for this long is not listed any more (a worker scaled away must
# not keep a banner up forever); a queue it consumed still raises its problem.
FORGET_AFTER = timedelta(days=1)

BEAT_CONSEQUENCE = (
    "nothing is scheduled: no probe cycles, no reaper, approved drills whose window opens "
    "will not be queued"
)
DRILL_CONSEQUENCE = "drills will not start, and the reaper cannot revert faults of a dead worker"
DEFAULT_QUEUE_CONSEQUENCE = (
    "probe cycles, AWS health polls, configuration refreshes and rollups do not run: "
    "health shown may be old"
)


def probe_consequence(vantage):
    return f"probes from vantage {vantage} are stale: health shown may be old"


@dataclass(frozen=True)
class Process:
    """One worker or beat, as last seen."""

    kind: str  # ServiceHeartbeat.Kind
    name: str  # worker@host, probes@host, beat@host
    queues: tuple[str, ...]
    pid: int | None
    started_at: datetime | None
    last_seen: datetime
    age: timedelta  # since last seen (never negative: another host's clock may be ahead)
    alive: bool

    @property
    def label(self):
        return ServiceHeartbeat.Kind(self.kind).label

    @property
    def seen_ago(self):
        """ "4 s", "2 min 5 s", "3 h": whole seconds, for the footer."""
        seconds = int(self.age.total_seconds())
        return f"{seconds} s" if seconds < 60 else format_duration(seconds)


@dataclass(frozen=True)
class Problem:
    """Something that will not happen because no live process does it."""

    missing: str  # "No live beat", "No live worker consumes “celery”"
    consequences: tuple[str, ...]
    last: Process | None  # the process last seen doing it (None: none in FORGET_AFTER)

    @property
    def consequence(self):
        return "; ".join(self.consequences)


@dataclass(frozen=True)
class Background:
    processes: list[Process]  # beat first, then the workers by name
    problems: list[Problem]
    timeout: timedelta

    @property
    def banner_key(self):
        """Changes only when the banner's text does (the poll leaves an unchanged banner
        in place, so that a screen reader does not announce the alert again)."""
        text = "\n".join(
            f"{p.missing}|{p.consequence}|{p.last.name if p.last else ''}|"
            f"{p.last.last_seen.isoformat() if p.last else ''}"
            for p in self.problems
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def needed_queues(*, drill_queue, default_queue, probe_queues):
    """[(queue, consequences)] that some live worker must consume, in banner order.
    `probe_queues` maps each probing vantage to its queue."""
    needs = {drill_queue: [DRILL_CONSEQUENCE]}
    needs.setdefault(default_queue, []).append(DEFAULT_QUEUE_CONSEQUENCE)
    for vantage, queue in probe_queues.items():
        needs.setdefault(queue, []).append(probe_consequence(vantage))
    return [(queue, tuple(consequences)) for queue, consequences in needs.items()]


def _last_seen(processes):
    return max(processes, key=lambda p: p.last_seen, default=None)


def assess(heartbeats, *, now, timeout, drill_queue, default_queue, probe_queues):
    """The processes seen within FORGET_AFTER and the problems, from heartbeat rows
    (anything with kind, hostname, queues, pid, started_at and last_seen). A process is
    alive when seen within `timeout` (a timedelta) of `now`."""
    processes = []
    for hb in heartbeats:
        age = now - hb.last_seen
        if age > FORGET_AFTER:
            continue
        processes.append(
            Process(
                kind=hb.kind,
                name=hb.hostname,
                queues=tuple(hb.queues or ()),
                pid=hb.pid,
                started_at=hb.started_at,
                last_seen=hb.last_seen,
                age=max(age, timedelta(0)),
                alive=age <= timeout,
            )
        )
    processes.sort(key=lambda p: (p.kind != ServiceHeartbeat.Kind.BEAT, p.name))

    problems = []
    beats = [p for p in processes if p.kind == ServiceHeartbeat.Kind.BEAT]
    if not any(p.alive for p in beats):
        problems.append(Problem("No live beat", (BEAT_CONSEQUENCE,), _last_seen(beats)))
    workers = [p for p in processes if p.kind == ServiceHeartbeat.Kind.WORKER]
    needs = needed_queues(
        drill_queue=drill_queue, default_queue=default_queue, probe_queues=probe_queues
    )
    for queue, consequences in needs:
        consumers = [p for p in workers if queue in p.queues]
        if not any(p.alive for p in consumers):
            problems.append(
                Problem(f"No live worker consumes “{queue}”", consequences, _last_seen(consumers))
            )
    return Background(processes=processes, problems=problems, timeout=timeout)


def load(now=None):
    """The background processes now, from the database (one query)."""
    now = now or timezone.now()
    rows = ServiceHeartbeat.objects.filter(last_seen__gte=now - FORGET_AFTER)
    return assess(
        rows,
        now=now,
        timeout=timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS),
        drill_queue=settings.DRILL_QUEUE,
        default_queue=celery_app.conf.task_default_queue,
        probe_queues={v: probe_queue(v) for v in settings.CONTROLPLANE_PROBE_VANTAGES},
    )
