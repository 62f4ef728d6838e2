"""Storing health and lag samples in tests the way the probe workers and lag samplers do."""

from collections import defaultdict
from datetime import timedelta

from django.utils import timezone

from regions import monitoring
from regions.models import ErrorClass, HealthSample, LagMethod, ProbeTargetKind
from regions.probes import ProbeResult, ProbeTarget
from regions.status import Lag


def store_samples(samples):
    """Store unsaved HealthSample instances through `monitoring.store_results`, one call
    per vantage: the raw rows and each target's TargetState (what the status loader
    reads), as a probe batch would. Returns the number of rows stored."""
    by_vantage = defaultdict(list)
    for s in samples:
        target = ProbeTarget("http://probe.test/health", s.application_id, s.stack_id, s.target)
        by_vantage[s.vantage].append(
            ProbeResult(
                target, s.at, s.ok, status_code=s.status_code, latency_ms=s.latency_ms,
                served_region=s.served_region, error_class=s.error_class,
            )
        )
    return sum(monitoring.store_results(results, vantage) for vantage, results in by_vantage.items())


def add_stack_samples(stack, count, *, ok=True, every=2, now=None, vantage="us-east-1", latency_ms=None,
                      **fields):
    """Store `count` samples of a stack's /health from `vantage`, `every` seconds apart,
    the newest at `now` (default: now). A sample answers 200, or 503 with an HTTP 5xx
    error when not `ok`, unless `fields` say otherwise (status_code, error_class, or any
    other HealthSample field). Returns the number of rows stored."""
    now = now or timezone.now()
    outcome = {"status_code": 200 if ok else 503, "error_class": "" if ok else ErrorClass.HTTP_5XX}
    return store_samples(
        HealthSample(
            stack=stack,
            application_id=stack.application_id,
            target=ProbeTargetKind.STACK_HEALTH,
            vantage=vantage,
            at=now - timedelta(seconds=every * i),
            ok=ok,
            latency_ms=latency_ms,
            **{**outcome, **fields},
        )
        for i in range(count)
    )


def store_lag(application, seconds_ago=0, lag_ms=4200, *, now=None, source="us-east-1",
              receiving="us-west-2", method=LagMethod.CANARY, replicated=True):
    """Store one lag sample of `application`'s pair (source -> receiving), measured
    `seconds_ago` before `now` (default: now), through `monitoring.store_lag_samples` as
    the lag samplers do: the row and the pair's LagState. Returns the sample's time."""
    at = (now or timezone.now()) - timedelta(seconds=seconds_ago)
    monitoring.store_lag_samples([Lag(source, receiving, at, lag_ms, method, replicated)], application.pk)
    return at


def replay(samples, thresholds):
    """The oracle for the status engine's incremental state: the Track of a target from
    its samples, folded in time order from undecided (what store_results keeps, one
    sample at a time, in TargetState)."""
    from regions.status import Track, fold

    track = Track()
    for sample in sorted(samples, key=lambda s: s.at):
        track = fold(track, sample, thresholds)
    return track


def load_status(now=None, *, application_ids=None):
    """{application id: ApplicationStatus} from the probes and the lag only (what the
    console and the API read, without AWS's own view)."""
    pictures = monitoring.load_picture(now, application_ids=application_ids, aws_view=False)
    return {pk: picture.status for pk, picture in pictures.items()}
