"""The period report: what the drills of a period prove, per application or for all,
for approvers and admins (the readers of the audit log: it is a governance record).

For the days `start`..`end` (UTC, both included): the drills requested in it and their
outcomes; the last passed drill per region and per scenario (as of the period's end,
however long ago); time to fail over and to recover of the drills that measured them,
over the period (an SVG chart, drawn here so the PDF and an offline copy carry it);
the application's regions no drill ever ran in; the drift monitoring reports now.
"""

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from controlplane.svg import line_chart
from experiments.figures import seconds_text
from experiments.models import OUTCOME_STATES, Drill, DrillState
from regions import monitoring
from regions.models import Application, Stack

PERMISSION = "controlplane.view_auditevent"
FORBIDDEN = (
    "The period report is for approvers and admins (it is a governance record, like the audit "
    "log). Ask an administrator for the approver role."
)


def bounds(start, end):
    """[start 00:00 UTC, the day after end 00:00 UTC)."""
    return (datetime.combine(start, time.min, tzinfo=UTC),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC))


def _last_passed(drills, key):
    """{key(drill): the newest passed drill} from drills newest first."""
    last = {}
    for drill in drills:
        last.setdefault(key(drill), drill)
    return sorted(last.items())


def _trend_chart(drills, since):
    failover, recover = [], []
    for drill in drills:
        figures = drill.figures or {}
        day = round(((drill.finished_at or drill.requested_at) - since).total_seconds() / 86400, 6)
        if isinstance(figures.get("time_to_failover"), int | float):
            failover.append((day, round(figures["time_to_failover"], 2)))
        if isinstance(figures.get("time_to_recover"), int | float):
            recover.append((day, round(figures["time_to_recover"], 2)))
    series = [(name, points) for name, points in (("time to fail over", failover),
                                                  ("time to recover", recover)) if points]
    days = [day for _, points in series for day, _ in points]
    # A date per tick; with the time of day when the drills lie within two days, and the
    # seconds within an hour.
    # One time alone is drawn on an axis of a day either side (controlplane/svg.py).
    span = (max(days) - min(days) if days else 0) or 2
    shape = "%H:%M:%S" if span < 1 / 24 else "%b %d %H:%M" if span <= 2 else "%Y-%m-%d"

    def when(day):
        return (since + timedelta(days=day)).strftime(shape)

    chart = line_chart(series, x_label="finished (UTC)", y_label="seconds",
                       title="Time to fail over and to recover", y_min=0, x_format=when)
    return chart, bool(series)


def build(start, end, application=None, *, now=None):
    """The report's context for the days start..end (dates) and one application or all."""
    since, until = bounds(start, end)
    drills = Drill.objects.select_related("scenario", "application", "region", "requested_by")
    if application is not None:
        drills = drills.filter(application=application)
    in_period = list(
        drills.filter(requested_at__gte=since, requested_at__lt=until).order_by("requested_at", "pk")
    )
    counts = Counter(d.state for d in in_period)
    for d in in_period:
        d.failover_text = seconds_text((d.figures or {}).get("time_to_failover"))
        d.recover_text = seconds_text((d.figures or {}).get("time_to_recover"))
    outcomes = [(DrillState(state), counts.get(state, 0)) for state in OUTCOME_STATES]
    other = sum(n for state, n in counts.items() if state not in OUTCOME_STATES)
    passed = list(
        drills.filter(state=DrillState.PASSED, finished_at__lt=until).order_by("-finished_at", "-pk")
    )
    measured = [d for d in in_period if d.is_final and d.state != DrillState.INCONCLUSIVE]
    chart, chart_measured = _trend_chart(measured, since)
    apps = [application] if application is not None else list(Application.objects.order_by("name"))
    ran = set(
        Drill.objects.filter(application__in=apps, started_at__isnull=False)
        .values_list("application_id", "region_id").distinct()
    )
    never = [
        stack for stack in Stack.objects.filter(application__in=apps).select_related("application", "region")
        .order_by("application__name", "region__code")
        if (stack.application_id, stack.region_id) not in ran
    ]
    pictures = monitoring.load_picture(now, application_ids=[a.pk for a in apps]) if apps else {}
    drift = [(picture.name, finding.as_dict()) for picture in pictures.values() for finding in picture.drift]
    return {
        "start": start,
        "end": end,
        "application": application,
        "drills": in_period,
        "outcomes": outcomes,
        "other": other,
        "last_passed_by_region": _last_passed(passed, lambda d: (d.application.name, d.region.code)),
        "last_passed_by_scenario": _last_passed(passed, lambda d: (d.application.name, d.scenario.name)),
        "trend_chart": chart,
        "trend_measured": chart_measured,
        "never_drilled": never,
        "drift": drift,
    }
