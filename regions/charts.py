"""The stack page's charts: health and replication lag of one stack over a window,
bucketed into at most MAX_POINTS aligned points per series (uPlot's shape). Raw samples
for the short windows, the per-minute rollups for the long ones; one query per series
kind whatever the window."""

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from regions.models import HealthRollup, HealthSample, LagRollup, LagSample, ProbeTargetKind

# The chart windows: label -> (length, read the per-minute rollups instead of raw
# samples). Raw samples are kept 48 h; rollups 30 days.
WINDOWS = {
    "15m": (timedelta(minutes=15), False),
    "1h": (timedelta(hours=1), False),
    "6h": (timedelta(hours=6), True),
    "24h": (timedelta(hours=24), True),
    "7d": (timedelta(days=7), True),
}
DEFAULT_WINDOW = "1h"
MAX_POINTS = 360  # per series, whatever the window


class BadWindow(ValueError):
    pass


def parse_window(value):
    """The WINDOWS key for a `window` query value; BadWindow with a readable message."""
    value = (value or DEFAULT_WINDOW).strip()
    if value not in WINDOWS:
        choices = ", ".join(WINDOWS)
        raise BadWindow(f"Unknown window {value[:20]!r}: choose one of {choices}.")
    return value


def _buckets(window, now):
    """(start, step in seconds, number of buckets) for a window ending at `now`."""
    length, rolled = WINDOWS[window]
    seconds = length.total_seconds()
    step = max(60.0 if rolled else 1.0, seconds / MAX_POINTS)
    count = math.ceil(seconds / step)
    end = now.timestamp()
    start = end - count * step
    return start, step, count


def _in_buckets(rows, start, step, count):
    """(key, bucket index, *values) for each row (key, time, *values) inside the window."""
    for key, when, *values in rows:
        i = int((when.timestamp() - start) // step)
        if 0 <= i < count:
            yield key, i, *values


def _health_series(stack, window, now):
    """Per vantage: share of successful probes and mean latency of the successful ones,
    per bucket. One query."""
    start, step, count = _buckets(window, now)
    since = now - timedelta(seconds=count * step)
    acc = defaultdict(lambda: [[0] * count, [0] * count, [0.0] * count, [0] * count])
    where = {"stack": stack, "target": ProbeTargetKind.STACK_HEALTH}
    if WINDOWS[window][1]:
        rows = HealthRollup.objects.filter(**where, minute__gte=since, minute__lte=now).values_list(
            "vantage", "minute", "count", "ok_count", "latency_avg_ms"
        )
    else:  # raw samples, each as a rollup of one
        rows = (
            (vantage, at, 1, int(ok), latency if ok else None)
            for vantage, at, ok, latency in HealthSample.objects.filter(
                **where, at__gte=since, at__lte=now
            ).values_list("vantage", "at", "ok", "latency_ms").iterator(chunk_size=5000)
        )
    for vantage, i, total, ok, latency in _in_buckets(rows, start, step, count):
        a = acc[vantage]
        a[0][i] += total
        a[1][i] += ok
        if latency is not None and ok:  # mean latency of the successful probes
            a[2][i] += latency * ok
            a[3][i] += ok
    series = []
    for vantage in sorted(acc):
        total, ok, latency_sum, latency_n = acc[vantage]
        series.append({
            "vantage": vantage,
            "ok_ratio": [round(ok[i] / total[i], 4) if total[i] else None for i in range(count)],
            "failed": [total[i] - ok[i] if total[i] else None for i in range(count)],
            "latency_ms": [
                round(latency_sum[i] / latency_n[i], 1) if latency_n[i] else None for i in range(count)
            ],
        })
    return series


def _lag_series(stack, window, now):
    """Per source region (source -> this region): mean and max lag in seconds, and the
    number of canaries not replicated, per bucket. One query."""
    start, step, count = _buckets(window, now)
    since = now - timedelta(seconds=count * step)
    acc = defaultdict(lambda: [[0.0] * count, [0] * count, [None] * count, [0] * count, [0] * count])
    where = {"application_id": stack.application_id, "receiving_region": stack.region.code}
    if WINDOWS[window][1]:
        rows = LagRollup.objects.filter(**where, minute__gte=since, minute__lte=now).values_list(
            "source_region", "minute", "count", "avg_lag_ms", "max_lag_ms", "not_replicated_count"
        )
    else:
        rows = (
            (source, at, 1, lag if replicated else None, lag if replicated else None, 0 if replicated else 1)
            for source, at, lag, replicated in LagSample.objects.filter(
                **where, at__gte=since, at__lte=now
            ).values_list("source_region", "at", "lag_ms", "replicated").iterator(chunk_size=5000)
        )
    for source, i, total, avg_ms, max_ms, lost in _in_buckets(rows, start, step, count):
        a = acc[source]
        a[4][i] += total
        a[3][i] += lost
        replicated = total - lost
        if avg_ms is not None and replicated:
            a[0][i] += avg_ms * replicated
            a[1][i] += replicated
        if max_ms is not None:
            a[2][i] = max_ms if a[2][i] is None else max(a[2][i], max_ms)
    series = []
    for source in sorted(acc):
        lag_sum, lag_n, lag_max, lost, total = acc[source]
        series.append({
            "source_region": source,
            "receiving_region": stack.region.code,
            "lag_seconds": [
                round(lag_sum[i] / lag_n[i] / 1000, 3) if lag_n[i] else None for i in range(count)
            ],
            "max_lag_seconds": [round(m / 1000, 3) if m is not None else None for m in lag_max],
            "not_replicated": [lost[i] if total[i] else None for i in range(count)],
        })
    return series


def stack_series(stack, window, now):
    """The chart data of a stack page: uPlot-ready aligned arrays. Two queries."""
    start, step, count = _buckets(window, now)
    return {
        "window": window,
        "source": "rollup" if WINDOWS[window][1] else "raw",
        "step_seconds": step,
        "from": datetime.fromtimestamp(start, tz=UTC).isoformat(),
        "to": now.isoformat(),
        "x": [round(start + i * step, 3) for i in range(count)],
        "health": _health_series(stack, window, now),
        "lag": _lag_series(stack, window, now),
    }
