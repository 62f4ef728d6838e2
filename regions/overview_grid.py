"""The console's status markup, built in Python: the overview grid's rows, and the lag
figure and drill markers that the application, stack and drill pages show the same way
(template tags in regions/templatetags/status_markup.py).

The grid is 1,000 cells at 250 applications x 4 regions; rendered by the template
language (nested {% with %}/{% if %}, {% url %} and filters per cell) it cost ~60 % of
the page. Here each cell is one f-string over escaped values, with the markup and
classes of the template it replaces (templates/regions/overview.html includes the
result; tests/regions/test_overview.py and the browser test read them). Every value
that comes from the inventory or the status engine goes through `escape`.

Every element that states a status carries `data-status-of` ("<application>" or
"<application>/<region>") and `data-status` (and, for a region whose routing is observed,
`data-traffic`: yes / no), on every page alike, so that a test can read what each page
says and compare.
"""

import re

from django.conf import settings
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe

from controlplane.durations import format_duration


class _Escaped(dict):
    """escape() with a memory: the same reasons and labels repeat across the grid."""

    def __missing__(self, value):
        text = self[value] = escape(value)
        return text


def figure_definitions():
    """[(anchor, label, definition)] of what the regions pages show, listed under
    "What these figures mean" (templates/regions/_figure_definitions.html); each figure
    links to its entry (#def-<anchor>)."""
    lag_limit = f"{settings.CONTROLPLANE_LAG_DEGRADED_SECONDS:g} s"
    stale = format_duration(settings.CONTROLPLANE_LAG_STALE_SECONDS)
    return [
        ("status", "Status",
         "Healthy, degraded, unhealthy or unknown, with the reason: computed from the console's "
         "own probes of each stack's /health (every probe interval, from every vantage, with "
         "hysteresis), replication into the region, and AWS's own view (Route 53 health checks, "
         "Global Accelerator endpoint health, alarms, replicas). Every page and GET /api/v1/status "
         "read the same computation."),
        ("lag", "Replication lag",
         "How far the region's replica is behind now: for each source region, the newest "
         f"measurement of the last {stale} since the scheduler last started (a canary item written "
         "in the source and read back in this region, or CloudWatch's ReplicationLatency), and the "
         "figure shown is the one behind the verdict (the largest). Green: at most "
         f"CONTROLPLANE_LAG_DEGRADED_SECONDS ({lag_limit}); orange: above it, the region is "
         "degraded; red: a canary was not replicated within the canary timeout (a replication "
         "outage), shown as \"≥\" the age of the oldest canary not replicated yet, growing until "
         f"one is; grey \"unknown\": nothing measured in the last {stale}, and why."),
        ("traffic", "Traffic",
         "Whether the global front end sends the region traffic now, and why: as the clients see "
         "it (the console's probes of the global endpoint from each vantage, which region answered) "
         "when they say, else as AWS does (Route 53 records and health checks, or Global "
         "Accelerator dials, weights and endpoint health, and ARC routing controls); the reason "
         "names the source. Rotation is the inventory's intent, not this."),
        ("fresh", "Last pass",
         "How long ago failover was last proven in the region: the age of the last drill that "
         "passed on this application and region (an inconclusive drill does not count), linking "
         f"to it. Red past CONTROLPLANE_DRILL_FRESH_DAYS ({settings.CONTROLPLANE_DRILL_FRESH_DAYS} "
         "days): configurations drift, and a proof that old proves little. \"never drilled\": no "
         "drill has passed there yet, also red."),
        ("drill", "Drill marker",
         "\"drill #N queued / running / reverting\": a drill is changing this application's live "
         "AWS configuration on purpose now, on the region named; its faults are not reported as "
         "drift. The marker links to the drill's page."),
    ]


def status_attrs(of, status, routing=None, esc=None):
    """The data attributes of an element that states the status of `of` ("<application>"
    or "<application>/<region>"): data-status-of, data-status, and data-traffic when the
    region's routing is observed."""
    esc = esc if esc is not None else _Escaped()
    traffic = f' data-traffic="{"yes" if routing.receives_traffic else "no"}"' if routing else ""
    return f'data-status-of="{esc[of]}" data-status="{status.status.value}"{traffic}'


def _app_status(name, status, esc):
    if not status:
        return ""
    reason = esc[status.reason]
    served = status.served_region
    served_html = (
        f'<span class="served small">global endpoint served by <span class="mono">{esc[served]}</span></span>'
        if served
        else ""
    )
    return (
        f'<span class="app-status" {status_attrs(name, status, esc=esc)}>'
        f'<span class="app-state app-state--{status.status.value}">{esc[status.status.label]}</span> '
        f'<span class="app-reason" title="{reason}">{reason}</span>{served_html}</span>'
    )


def _drift_flag(drift, esc):
    if not drift:
        return ""
    title = esc["; ".join(f"{f.region}: {f.what}" for f in drift)]
    n = len(drift)
    return f'<span class="drift-flag" title="{title}">drift: {n} fault{"" if n == 1 else "s"} left on</span>'


def drill_markers(drills, esc=None, *, with_region=False):
    """A "drill #N running" link to the page of each of `drills` (monitoring.ActiveDrill),
    with "in <region>" on the application's own line."""
    esc = esc if esc is not None else _Escaped()
    return "".join(
        f'<a class="drill-marker drill-marker--{esc[d.state]}" href="{esc[d.url]}" data-drill="{d.pk}">'
        f'drill #{d.pk} {esc[d.state]}{f" in {esc[d.region]}" if with_region else ""}</a>'
        for d in drills
    )


def lag_figure(replication, esc=None):
    """The replication lag into a region: the figure, coloured by the replication verdict
    (status.ReplicationVerdict: green, orange over CONTROLPLANE_LAG_DEGRADED_SECONDS, red
    for a canary not replicated), or "unknown" and why; "lag" links to its definition."""
    esc = esc if esc is not None else _Escaped()
    reason = esc[replication.reason]
    figure = replication.lag_text
    text = f'<span class="lag-figure">{esc[figure]}</span>' if figure else f"unknown: {reason}"
    return (
        f'<span class="lag lag--{replication.status.colour}" title="{reason}">'
        f'<a class="def-link" href="#def-lag">lag</a> {text}</span>'
    )


def freshness_figure(freshness, esc=None):
    """The region's last passed drill and its age (monitoring.Freshness), red past
    CONTROLPLANE_DRILL_FRESH_DAYS or when no drill ever passed; "last pass" links to its
    definition."""
    esc = esc if esc is not None else _Escaped()
    if freshness is None:
        return ""
    state, last = freshness.state, freshness.last_pass
    if last is None:
        text = "never drilled"
    else:
        text = (
            f'<a href="{esc[last.url]}">#{last.pk}</a> '
            f'<span class="fresh-age">{esc[format_duration(freshness.age)]} ago</span>'
        )
    return (
        f'<span class="fresh fresh--{state}" data-freshness="{state}">'
        f'<a class="def-link" href="#def-fresh">last pass</a> {text}</span>'
    )


def _cell(app_name, cell, stack_url, esc):
    if not cell:
        return '<td class="cell"><span class="no-stack" title="No stack in this region">—</span></td>'
    status, routing, drift, region = cell.status, cell.routing, cell.drift, cell.region
    label = esc[status.status.label.lower()]
    reason = esc[status.reason]
    rotation = "in rotation" if status.in_rotation else "out of rotation"
    aria = f"{esc[app_name]} in {esc[region]}: {label}, {reason}, {rotation}"
    rotation_html = (
        '<span class="rotation rotation--in">in rotation</span>'
        if status.in_rotation
        else '<span class="rotation rotation--out">out of rotation</span>'
    )
    traffic = ""
    if routing:
        why = esc[routing.reason]
        if routing.receives_traffic:
            traffic = f'<span class="traffic traffic--in" title="{why}">receives traffic</span>'
        else:
            traffic = f'<span class="traffic traffic--out" title="{why}">no traffic: {why}</span>'
    drift_html = ""
    if drift:
        items = "".join(
            f'<li><span class="drift-what">{esc[f.what]}</span> '
            f'<span class="drift-undo">undo: <code class="mono">{esc[f.undo]}</code></span></li>'
            for f in drift
        )
        drift_html = f'<ul class="drift-list drift-list--cell">{items}</ul>'
    attrs = status_attrs(f"{app_name}/{region}", status, routing, esc)
    return (
        f'<td class="cell{" cell--drift" if drift else ""}" {attrs}>'
        f'<a class="stack-cell" href="{stack_url(app_name, region)}" aria-label="{aria}">'
        f'<span class="badge {status.status.badge_class}" title="{reason}">{label}</span> '
        f'{rotation_html} {traffic} <span class="cell-reason" title="{reason}">{reason}</span></a>'
        f"{lag_figure(status.replication, esc)}{freshness_figure(cell.freshness, esc)}"
        f"{drill_markers(cell.drills, esc)}{drift_html}</td>"
    )


# Path segments that reverse() puts in a URL as they are, and escape() leaves alone.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def _url_maker(name, arg_count):
    """reverse(name, args) for many args, by reversing once with markers and filling them
    in: ~1,250 reverse() calls per page otherwise. Arguments that are plain slugs or
    region codes go in as they are (the URL patterns' <slug:>/<str:> accept no "/");
    anything else goes through reverse() itself. Returns escaped URLs."""
    markers = [f"__arg{i}__" for i in range(arg_count)]
    pieces = re.split("|".join(markers), reverse(name, args=markers))
    plain = _PLAIN_SEGMENT.fullmatch

    def url(*args):
        if all(plain(arg) for arg in args):
            return "".join(piece + arg for piece, arg in zip(pieces, args, strict=False)) + pieces[-1]
        return escape(reverse(name, args=args))

    return url


def grid_rows(rows):
    """The <tr> rows of the grid's <tbody> for the overview view's `rows`: each an
    application and its monitoring.Picture, and its cells (a monitoring.RegionPicture per
    region column, None where it has no stack)."""
    esc = _Escaped()
    app_url = _url_maker("regions:application", 1)
    stack_url = _url_maker("regions:stack", 2)
    out = []
    for row in rows:
        app, picture = row["application"], row["picture"]
        name = app.name
        head = [f'<a class="app-link" href="{app_url(name)}">{esc[app.title]}</a>']
        if app.display_name:
            head.append(f'<span class="mono muted small">{esc[name]}</span>')
        if app.owner_team:
            head.append(f'<span class="muted small">· {esc[app.owner_team]}</span>')
        if picture is not None:
            head.append(_app_status(name, picture.status, esc))
            head.append(drill_markers(picture.drills, esc, with_region=True))
            head.append(_drift_flag(picture.drift, esc))
        arch, arch_title = esc[app.architecture], esc[app.get_architecture_display()]
        out.append(
            f'<tr><th scope="row">{" ".join(h for h in head if h)}</th>'
            f'<td><span class="arch arch--{arch}" title="{arch_title}">{arch}</span></td>'
            + "".join(_cell(name, cell, stack_url, esc) for cell in row["cells"])
            + "</tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped above
