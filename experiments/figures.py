"""The drill's figures as people read them: each figure's label, its value formatted
(None: not measured) and what it means, overall and per vantage. The drill page and the
evidence pack (experiments/evidence.py) show the same rows with the same definitions."""

from datetime import timedelta

from controlplane.durations import format_duration


def seconds_text(value):
    """A number of seconds for people ("1 min 5 s"), None when not measured."""
    if value is None or value == "":
        return None
    try:
        return format_duration(timedelta(seconds=float(value)))
    except (TypeError, ValueError):
        return str(value)


# What each figure on the drill page means (shown under "What these figures mean").
FIGURE_DEFINITIONS = {
    "Time to detect": "Injection (the first fault call) to the moment the drilled region looked "
    "failed: its /health failing CONTROLPLANE_STATUS_FAILURES times in a row to the runner's "
    "probes, or Route 53's checkers reporting its health check unhealthy; who saw it first "
    "is named beside the figure.",
    "Time to fail over": "Injection to the first successful request through the global endpoint "
    "served by another region, as the drill's observers saw it. Measured only from the vantages "
    "the drilled region served before the fault; with several, the slowest of them (each is "
    "listed under \"Per vantage\").",
    "Time to recover": "Revert to the first successful request served by the drilled region again "
    "(the slowest of the vantages that measured failover).",
    "Error rate during": "Failed requests / requests through the global endpoint while the fault "
    "was on (the worst vantage).",
    "p95 latency during": "95th percentile latency of those requests (the worst vantage).",
    "Max lag during": "Replication drills: the largest replication lag into the region between "
    "injection and revert (canary writes every 0.25 s); otherwise the largest lag sample "
    "recorded by monitoring during the drill.",
    "Lag after": "Replication drills: the lag of the first canary write made after the revert; "
    "otherwise the latest lag sample.",
    "Time to converge": "Revert (resume) to the arrival in the region of the last canary write "
    "made before it.",
    "RPO estimate": "The age of the oldest write the region had not received at the moment of "
    "failover (or of the revert when the region was not failed over).",
    "Served by during": "The regions that served successful requests while the fault was on.",
}


def _percent(rate):
    return f"{rate * 100:.1f} %" if isinstance(rate, int | float) else None


def vantage_rows(figures):
    """One row per vantage the drill was observed from, then one per vantage it could not be."""
    figures = figures or {}
    rows = []
    for vantage, f in sorted((figures.get("vantages") or {}).items()):
        p95 = f.get("p95_latency_ms")
        rows.append({
            "vantage": vantage,
            "measures": bool(f.get("served_by_target_before")),
            "time_to_failover": seconds_text(f.get("time_to_failover")),
            "time_to_recover": seconds_text(f.get("time_to_recover")),
            "error_rate": _percent(f.get("error_rate")),
            "p95": f"{p95:.0f} ms" if isinstance(p95, int | float) else None,
            "requests_during": f.get("requests_during"),
            "regions_during": ", ".join(f.get("regions_during") or []),
            "missing": "",
        })
    for vantage, why in sorted((figures.get("vantages_missing") or {}).items()):
        rows.append({"vantage": vantage, "missing": why})
    return rows


def _ms_asseconds_text(value):
    return f"{value / 1000:.1f} s" if isinstance(value, int | float) else None


def figure_rows(figures):
    """(label, formatted value) for the figures the runner has published so far."""
    figures = figures or {}
    detect = seconds_text(figures.get("time_to_detect"))
    if detect and figures.get("detected_by"):
        detect = f"{detect} ({figures['detected_by']})"
    elif detect is None and figures.get("detect_note"):
        detect = f"not applicable: {figures['detect_note']}"
    rows = [
        ("Time to detect", detect),
        ("Time to fail over", seconds_text(figures.get("time_to_failover"))),
        ("Time to recover", seconds_text(figures.get("time_to_recover"))),
    ]
    rows.append(("Error rate during", _percent(figures.get("error_rate"))))
    p95 = figures.get("p95_latency_ms")
    rows.append(("p95 latency during", f"{p95:.0f} ms" if isinstance(p95, int | float) else None))
    rows.append(("Max lag during", _ms_asseconds_text(figures.get("lag_during_ms"))))
    rows.append(("Lag after", _ms_asseconds_text(figures.get("lag_after_ms"))))
    if "time_to_converge" in figures or "rpo_ms" in figures:
        rows.append(("Time to converge", seconds_text(figures.get("time_to_converge"))))
        rows.append(("RPO estimate", _ms_asseconds_text(figures.get("rpo_ms"))))
    during = figures.get("regions_during")
    rows.append(("Served by during", ", ".join(during) if during else None))
    return rows
