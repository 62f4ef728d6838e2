"""Storing health samples in tests the way the probe workers do."""

from collections import defaultdict

from regions import monitoring
from regions.probes import ProbeResult, ProbeTarget


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
