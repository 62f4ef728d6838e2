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
