"""Status is a pure function of recent samples, thresholds and `now`.

Nothing here touches the database or the clock: `regions.monitoring.load_picture` fetches
the samples (a constant number of queries) and calls `application_status` for each
application. Tests call these functions with explicit samples and an explicit `now`.

Levels, each a `Verdict` (status + a human reason):

- target (one stack's /health, or the global endpoint, as seen from one vantage): a
  `Track` folded sample by sample with hysteresis (`fold`): `failures` consecutive
  failures to go unhealthy, `successes` consecutive successes to come back; a failure
  short of the threshold shows as degraded; no sample for `stale_after` -> unknown
  (`track_verdict`). The probe workers keep each target's Track up to date as they store
  its samples (regions.monitoring.store_results); the status reads those Tracks and
  replays nothing.
- stack health: the vantages that have fresh data; all healthy -> healthy, all unhealthy
  -> unhealthy, a mix -> degraded. A silent vantage is ignored while another one speaks
  (a dead probe worker is not a dead region).
- replication into a region: the current lag per source region (`current_lags`); above `lag_degraded` ->
  degraded, a canary not replicated -> unhealthy (replication outage); the verdict
  carries the sample behind it, the lag figure the console shows (`ReplicationVerdict`).
- region: the stack's health, made at most degraded by replication (a region with a
  replication outage still serves traffic, with stale data).
- application: all regions healthy -> healthy; at least one region serving (healthy or
  degraded) -> degraded, naming the others; none serving -> unhealthy; no data ->
  unknown. A failing global endpoint makes the application unhealthy whatever the
  regions say (clients cannot reach any of them).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from controlplane.choices import ColouredChoices
from controlplane.durations import format_duration
from regions.models import ErrorClass, LagMethod


class HealthStatus(ColouredChoices):
    # value, label, colour
    HEALTHY = "healthy", "Healthy", "green"
    DEGRADED = "degraded", "Degraded", "orange"
    UNHEALTHY = "unhealthy", "Unhealthy", "red"
    UNKNOWN = "unknown", "Unknown", "gray"

    @property
    def badge_class(self):
        """The CSS class of the console's badge, by colour as every badge is
        (console.css: .badge--green, ...)."""
        return f"badge--{self.colour}"


class Sample(NamedTuple):
    """What the status engine needs of a HealthSample row."""

    at: datetime
    ok: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error_class: str = ""
    served_region: str = ""


class Lag(NamedTuple):
    """What the status engine needs of a LagSample row."""

    source_region: str
    receiving_region: str
    at: datetime
    lag_ms: float | None
    method: str = LagMethod.METRIC
    replicated: bool = True


@dataclass(frozen=True)
class Thresholds:
    failures: int = 2  # consecutive failures to go unhealthy
    successes: int = 2  # consecutive successes to come back
    interval: timedelta = timedelta(seconds=2)
    stale_intervals: float = 3.0
    stale_after: timedelta | None = None  # default: stale_intervals x interval
    lag_degraded: timedelta = timedelta(seconds=2)
    lag_stale: timedelta = timedelta(minutes=5)

    @property
    def stale(self):
        return self.stale_after or self.interval * self.stale_intervals

    @classmethod
    def from_settings(cls, interval=None):
        from django.conf import settings

        return cls(
            failures=settings.CONTROLPLANE_STATUS_FAILURES,
            successes=settings.CONTROLPLANE_STATUS_SUCCESSES,
            interval=interval or timedelta(seconds=settings.CONTROLPLANE_PROBE_INTERVAL),
            stale_intervals=settings.CONTROLPLANE_STATUS_STALE_INTERVALS,
            lag_degraded=timedelta(seconds=settings.CONTROLPLANE_LAG_DEGRADED_SECONDS),
            lag_stale=timedelta(seconds=settings.CONTROLPLANE_LAG_STALE_SECONDS),
        )


@dataclass(frozen=True)
class Verdict:
    status: HealthStatus
    reason: str
    last_sample: Sample | None = None

    def __str__(self):
        return f"{self.status.label}: {self.reason}"


@dataclass(frozen=True)
class ReplicationVerdict(Verdict):
    """Replication into one region, with the figure the console shows for it: `lag`, the
    current lag behind the verdict (`current_lags`: the outage, the largest lag over the
    threshold, or the largest lag); None when nothing fresh was measured (the reason
    says why)."""

    lag: Lag | None = None

    @property
    def lag_seconds(self):
        """The lag figure in seconds (for a canary not replicated: the age now of the
        oldest canary not replicated yet, a lower bound); None when not measured."""
        return self.lag.lag_ms / 1000 if self.lag is not None and self.lag.lag_ms is not None else None

    @property
    def lag_text(self):
        """The figure in words: "0.4 s", "≥ 10.0 s" for a canary not replicated; "" when
        not measured."""
        if self.lag_seconds is None:
            return ""
        return f"{'' if self.lag.replicated else '≥ '}{_seconds(self.lag.lag_ms)}"


@dataclass
class RegionStatus:
    stack_id: int
    region: str
    status: HealthStatus
    reason: str
    health: Verdict
    replication: ReplicationVerdict
    in_rotation: bool = True

    @property
    def last_sample(self):
        return self.health.last_sample


@dataclass
class ApplicationStatus:
    application_id: int
    status: HealthStatus
    reason: str
    regions: list[RegionStatus] = field(default_factory=list)
    global_endpoint: Verdict | None = None

    @property
    def served_region(self):
        """The region that answered the latest global-endpoint probe ("" if none)."""
        sample = self.global_endpoint and self.global_endpoint.last_sample
        return sample.served_region if sample else ""


# --- formatting ------------------------------------------------------------------


def _seconds(ms):
    return f"{ms / 1000:.1f} s"


def describe_sample(sample, label="/health"):
    """One probe outcome in words: "503 from /health", "timeout after 2.0 s", ..."""
    if sample.ok:
        latency = f" in {sample.latency_ms:.0f} ms" if sample.latency_ms is not None else ""
        return f"{sample.status_code or 'ok'} from {label}{latency}"
    error = sample.error_class
    if error == ErrorClass.TIMEOUT:
        after = f" after {_seconds(sample.latency_ms)}" if sample.latency_ms is not None else ""
        return f"timeout{after} on {label}"
    if error == ErrorClass.REFUSED:
        return f"connection refused on {label}"
    if error == ErrorClass.DNS:
        return f"DNS lookup failed for {label}"
    if error == ErrorClass.TLS:
        return f"TLS error on {label}"
    if error == ErrorClass.BAD_BODY:
        code = f"{sample.status_code} " if sample.status_code else ""
        return f"{code}with an unhealthy body from {label}"
    if sample.status_code:
        return f"{sample.status_code} from {label}"
    return f"error ({ErrorClass(error).label if error in ErrorClass.values else error}) on {label}"


def describe_run(run, label="/health"):
    """A Run of consecutive failures in words: "3 consecutive 503 from /health", ..."""
    latest = run.latest
    if run.count == 1:
        return describe_sample(latest, label)
    count = run.count
    if run.same and latest.status_code and latest.error_class != ErrorClass.BAD_BODY:
        return f"{count} consecutive {latest.status_code} from {label}"
    if run.same and latest.error_class == ErrorClass.TIMEOUT:
        return f"{count} consecutive timeouts on {label} (latest after {_seconds(latest.latency_ms or 0)})"
    return f"{count} consecutive failures, latest: {describe_sample(latest, label)}"


# --- target level ------------------------------------------------------------------


def _failure_key(sample):
    return sample.error_class, sample.status_code


class Run(NamedTuple):
    """A run of consecutive failures, as far as the reasons need it."""

    count: int
    same: bool  # every failure of the run had the latest's error class and status code
    latest: Sample

    def add(self, sample):
        return Run(self.count + 1, self.same and _failure_key(sample) == _failure_key(self.latest), sample)


class Track(NamedTuple):
    """The hysteresis state of one target from one vantage, as of its latest sample.

    `fold` takes it one sample further; `track_verdict` reads it at a given `now`. The
    probe workers keep one per (target, vantage) in the TargetState table
    (regions.monitoring.store_results), so reading the status replays nothing."""

    status: HealthStatus = HealthStatus.UNKNOWN  # HEALTHY, UNHEALTHY, or UNKNOWN: not decided yet
    ok_streak: int = 0  # consecutive successes up to the latest sample
    run: Run | None = None  # the latest run of failures: current when ok_streak is 0
    last: Sample | None = None


def fold(track, sample, thresholds):
    """The Track after one more sample (samples must come in time order): `failures`
    consecutive failures to go unhealthy, `successes` consecutive successes to come
    back; the first success of an undecided target makes it healthy."""
    if sample.ok:
        ok_streak = track.ok_streak + 1
        status = track.status
        if status == HealthStatus.UNKNOWN or (
            status == HealthStatus.UNHEALTHY and ok_streak >= thresholds.successes
        ):
            status = HealthStatus.HEALTHY
        return Track(status, ok_streak, track.run, sample)
    continues = track.run is not None and track.ok_streak == 0
    run = track.run.add(sample) if continues else Run(1, True, sample)
    status = HealthStatus.UNHEALTHY if run.count >= thresholds.failures else track.status
    return Track(status, 0, run, sample)


NO_SAMPLES = Verdict(HealthStatus.UNKNOWN, "no samples yet")


def track_verdict(track, thresholds, now, *, label="/health"):
    """The Verdict of a Track at `now`: unknown once its latest sample is older than
    `thresholds.stale`; otherwise what its hysteresis state says, in words."""
    newest = track.last
    if newest is None:
        return NO_SAMPLES
    age = now - newest.at
    if age > thresholds.stale:
        return Verdict(HealthStatus.UNKNOWN, f"no sample for {format_duration(age)}", newest)
    state, run = track.status, track.run
    if state == HealthStatus.UNHEALTHY:
        if track.ok_streak:
            return Verdict(
                state,
                f"recovering ({track.ok_streak} of {thresholds.successes} successes) after "
                f"{describe_run(run, label)}",
                newest,
            )
        return Verdict(state, describe_run(run, label), newest)
    if not newest.ok:  # failing, but fewer than `failures` times in a row
        pending = f"{run.count} of {thresholds.failures} failures before unhealthy"
        status = HealthStatus.DEGRADED if state == HealthStatus.HEALTHY else HealthStatus.UNKNOWN
        return Verdict(status, f"{describe_run(run, label)} ({pending})", newest)
    return Verdict(HealthStatus.HEALTHY, describe_sample(newest, label), newest)


def combine_vantages(verdicts):
    """One Verdict from several vantages' Verdicts for the same target ({vantage: Verdict})."""
    if not verdicts:
        return Verdict(HealthStatus.UNKNOWN, "no samples yet")
    if len(verdicts) == 1:
        return next(iter(verdicts.values()))
    known = {v: d for v, d in sorted(verdicts.items()) if d.status != HealthStatus.UNKNOWN}
    if not known:
        with_data = [d for d in verdicts.values() if d.last_sample is not None]
        if with_data:
            return max(with_data, key=lambda d: d.last_sample.at)
        return next(iter(verdicts.values()))
    newest = max(known.values(), key=lambda d: d.last_sample.at).last_sample
    statuses = {d.status for d in known.values()}
    if statuses == {HealthStatus.HEALTHY}:
        return Verdict(HealthStatus.HEALTHY, next(iter(known.values())).reason, newest)
    if statuses == {HealthStatus.UNHEALTHY}:
        first = next(iter(known.values()))
        return Verdict(HealthStatus.UNHEALTHY, f"from every vantage: {first.reason}", newest)
    bad = [f"{d.status.label.lower()} from {v}: {d.reason}" for v, d in known.items()
           if d.status != HealthStatus.HEALTHY]
    return Verdict(HealthStatus.DEGRADED, "; ".join(bad), newest)


def stack_health(seen_by_vantage, thresholds, now, *, label="/health"):
    """The Verdict for a stack's /health from {vantage: Track}."""
    if not seen_by_vantage:
        return NO_SAMPLES
    return combine_vantages(
        {v: track_verdict(track, thresholds, now, label=label) for v, track in seen_by_vantage.items()}
    )


# --- replication -------------------------------------------------------------------


def _largest(lags):
    """The Lag with the largest lag_ms among `lags` (None if none has a figure)."""
    return max((lag for lag in lags if lag.lag_ms is not None), key=lambda lag: lag.lag_ms, default=None)


def current_lags(lags, thresholds, now):
    """The lag of each (source, receiving) pair at `now`, as the status, the API and a
    drill's preflight read it -> (current Lags sorted by pair, the newest stale one's time
    or None).

    - What was measured last, whatever the method: the newest Lag of the pair (a
      ReplicationLatency maximum stamped with its period's start, a canary with its end),
      never a larger one held over from before.
    - Not older than `thresholds.lag_stale`: a stale pair is left out (its time is
      returned, so the reason can say how old it is).
    - A canary not replicated (`replicated=False`): its `lag_ms` is the age, at `at`, of
      the pair's oldest canary still not replicated (regions.lag.run_canary carries it
      forward); it keeps growing until the next measurement, so the lag at `now` is
      `lag_ms` plus the time since `at`."""
    newest = {}
    for lag in lags:
        pair = (lag.source_region, lag.receiving_region)
        if pair not in newest or lag.at > newest[pair].at:
            newest[pair] = lag
    current, stale_at = [], None
    for pair in sorted(newest):
        lag = newest[pair]
        if now - lag.at > thresholds.lag_stale:
            stale_at = lag.at if stale_at is None else max(stale_at, lag.at)
            continue
        if not lag.replicated and lag.lag_ms is not None:
            lag = lag._replace(lag_ms=lag.lag_ms + max(0.0, (now - lag.at).total_seconds()) * 1000)
        current.append(lag)
    return current, stale_at


def replication_status(lags, thresholds, now):
    """The ReplicationVerdict for replication into one region from its Lags (any number
    per source and method: `current_lags` picks the current one of each source): the
    verdict and the current lag behind its figure."""
    fresh, stale_at = current_lags(lags, thresholds, now)
    if not fresh:
        if stale_at is not None:
            return ReplicationVerdict(
                HealthStatus.UNKNOWN, f"no lag sample for {format_duration(now - stale_at)}"
            )
        return ReplicationVerdict(HealthStatus.UNKNOWN, "no lag samples")
    outages = [lag for lag in fresh if not lag.replicated]
    if outages:
        reasons = [
            f"replication outage: canary from {lag.source_region} not replicated"
            + (f" for {_seconds(lag.lag_ms)}" if lag.lag_ms is not None else "")
            for lag in outages
        ]
        return ReplicationVerdict(
            HealthStatus.UNHEALTHY, "; ".join(reasons), lag=_largest(outages) or outages[0]
        )
    limit_ms = thresholds.lag_degraded.total_seconds() * 1000
    over = [lag for lag in fresh if lag.lag_ms is not None and lag.lag_ms > limit_ms]
    if over:
        reasons = [
            f"lag {_seconds(lag.lag_ms)} > {thresholds.lag_degraded.total_seconds():g} s threshold"
            f" from {lag.source_region}"
            for lag in over
        ]
        return ReplicationVerdict(HealthStatus.DEGRADED, "; ".join(reasons), lag=_largest(over))
    largest = _largest(fresh)
    if largest is None:
        return ReplicationVerdict(HealthStatus.HEALTHY, "replicated")
    return ReplicationVerdict(HealthStatus.HEALTHY, f"lag ≤ {_seconds(largest.lag_ms)}", lag=largest)


# --- region and application ---------------------------------------------------------


def region_status(health, replication):
    """(status, reason) of a region from its stack's health and its replication Verdicts."""
    if health.status in (HealthStatus.UNKNOWN, HealthStatus.UNHEALTHY):
        return health.status, health.reason
    if replication.status in (HealthStatus.HEALTHY, HealthStatus.UNKNOWN):
        return health.status, health.reason
    # Replication trouble degrades a serving region; it does not take it out.
    if health.status == HealthStatus.HEALTHY:
        return HealthStatus.DEGRADED, replication.reason
    return HealthStatus.DEGRADED, f"{health.reason}; {replication.reason}"


def rollup_regions(regions, global_endpoint=None):
    """(status, reason) of an application from its RegionStatus list and global endpoint."""
    ge_bad = global_endpoint is not None and global_endpoint.status in (
        HealthStatus.UNHEALTHY,
        HealthStatus.DEGRADED,
    )
    if not regions:
        if global_endpoint is not None and global_endpoint.status != HealthStatus.UNKNOWN:
            return global_endpoint.status, f"global endpoint: {global_endpoint.reason}"
        return HealthStatus.UNKNOWN, "no stacks"
    if global_endpoint is not None and global_endpoint.status == HealthStatus.UNHEALTHY:
        return HealthStatus.UNHEALTHY, f"global endpoint: {global_endpoint.reason}"

    healthy = [r.region for r in regions if r.status == HealthStatus.HEALTHY]
    serving = [r for r in regions if r.status in (HealthStatus.HEALTHY, HealthStatus.DEGRADED)]
    others = [r for r in regions if r.status != HealthStatus.HEALTHY]
    known = [r for r in regions if r.status != HealthStatus.UNKNOWN]
    details = "; ".join(f"{r.region} {r.status.label.lower()}: {r.reason}" for r in others)

    if not known:
        if len(regions) == 1:
            return HealthStatus.UNKNOWN, f"{regions[0].region}: {regions[0].reason}"
        return HealthStatus.UNKNOWN, f"no data from any region ({details})"
    if not others:
        if ge_bad:
            return HealthStatus.DEGRADED, f"global endpoint: {global_endpoint.reason}"
        noun = "region" if len(regions) == 1 else "regions"
        return HealthStatus.HEALTHY, f"{'all ' if len(regions) > 1 else ''}{len(regions)} {noun} healthy"
    if not serving:
        return HealthStatus.UNHEALTHY, f"no healthy region: {details}"
    if healthy:
        details += f"; serving from {', '.join(healthy)}"
    if ge_bad:
        details = f"global endpoint: {global_endpoint.reason}; {details}"
    return HealthStatus.DEGRADED, details


def served_again(verdict, tracks, thresholds, now):
    """The global endpoint's Verdict as its clients see it: still unhealthy by its
    hysteresis (`successes` in a row to come back) while its latest probe from every
    vantage with fresh data was answered is degraded, "clients served again by
    us-west-2; recovering ...": the clients are served (by whichever region), so the
    application is not down."""
    if verdict.status != HealthStatus.UNHEALTHY:
        return verdict
    latest = [t.last for t in tracks.values() if t.last is not None and now - t.last.at <= thresholds.stale]
    if not latest or not all(sample.ok for sample in latest):
        return verdict
    served = sorted({sample.served_region for sample in latest if sample.served_region})
    by = f" by {', '.join(served)}" if served else ""
    return Verdict(HealthStatus.DEGRADED, f"clients served again{by}; {verdict.reason}", verdict.last_sample)


def application_status(
    application_id,
    stacks,
    health_samples,
    lags,
    thresholds,
    now,
    *,
    global_samples=None,
):
    """The whole status of one application.

    - `stacks`: [(stack_id, region_code, in_rotation), ...]
    - `health_samples`: {stack_id: {vantage: Track}} (missing stacks have none)
    - `lags`: [Lag, ...] for this application (any number per pair: `current_lags`
      picks the lag now of each)
    - `global_samples`: {vantage: Track} for the global endpoint, or None when the
      application has no global endpoint URL."""
    by_receiving = {}
    for lag in lags:
        by_receiving.setdefault(lag.receiving_region, []).append(lag)
    regions = []
    for stack_id, region, in_rotation in stacks:
        health = stack_health(health_samples.get(stack_id, {}), thresholds, now)
        replication = replication_status(by_receiving.get(region, []), thresholds, now)
        status, reason = region_status(health, replication)
        regions.append(RegionStatus(stack_id, region, status, reason, health, replication, in_rotation))
    global_endpoint = None
    if global_samples is not None:
        global_endpoint = served_again(
            stack_health(global_samples, thresholds, now, label="the global endpoint"),
            global_samples, thresholds, now,
        )
    status, reason = rollup_regions(regions, global_endpoint)
    return ApplicationStatus(application_id, status, reason, regions, global_endpoint)
