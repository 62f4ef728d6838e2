"""The overview grid's rows as HTML, built in Python.

The grid is 1,000 cells at 250 applications x 4 regions; rendered by the template
language (nested {% with %}/{% if %}, {% url %} and filters per cell) it cost ~60 % of
the page. Here each cell is one f-string over escaped values, with the markup and
classes of the template it replaces (templates/regions/overview.html includes the
result; tests/regions/test_overview.py and the browser test read them). Every value
that comes from the inventory or the status engine goes through `escape`.
"""

import re

from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe


class _Escaped(dict):
    """escape() with a memory: the same reasons and labels repeat across the grid."""

    def __missing__(self, value):
        text = self[value] = escape(value)
        return text


def _app_status(status, esc):
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
        f'<span class="app-status">'
        f'<span class="app-state app-state--{esc[status.status.value]}">{esc[status.status.label]}</span> '
        f'<span class="app-reason" title="{reason}">{reason}</span>{served_html}</span>'
    )


def _drift_flag(drift, esc):
    if not drift:
        return ""
    title = esc["; ".join(f"{f.region}: {f.what}" for f in drift)]
    n = len(drift)
    return f'<span class="drift-flag" title="{title}">drift: {n} fault{"" if n == 1 else "s"} left on</span>'


def _cell(app_name, cell, stack_url, esc):
    if not cell:
        return '<td class="cell"><span class="no-stack" title="No stack in this region">—</span></td>'
    stack, status, routing, drift = cell["stack"], cell["status"], cell["routing"], cell["drift"]
    region = stack.region__code
    rotation = "in rotation" if stack.in_rotation else "out of rotation"
    if status:
        label = esc[status.status.label.lower()]
        reason = esc[status.reason]
        aria = f"{esc[app_name]} in {esc[region]}: {label}, {reason}, {rotation}"
        badge = f'<span class="badge {status.status.badge_class}" title="{reason}">{label}</span>'
        cell_reason = f'<span class="cell-reason" title="{reason}">{reason}</span>'
    else:
        aria = f"{esc[app_name]} in {esc[region]}: health unknown, {rotation}"
        badge = '<span class="badge badge--gray" title="no status computed">unknown</span>'
        cell_reason = ""
    rotation_html = (
        '<span class="rotation rotation--in">in rotation</span>'
        if stack.in_rotation
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
    return (
        f'<td class="cell{" cell--drift" if drift else ""}">'
        f'<a class="stack-cell" href="{stack_url(app_name, region)}" aria-label="{aria}">'
        f"{badge} {rotation_html} {traffic} {cell_reason}</a>{drift_html}</td>"
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
    """The <tr> rows of the grid's <tbody> for the overview view's `rows`."""
    esc = _Escaped()
    app_url = _url_maker("regions:application", 1)
    stack_url = _url_maker("regions:stack", 2)
    out = []
    for row in rows:
        app = row["application"]
        name = app.name
        head = [f'<a class="app-link" href="{app_url(name)}">{esc[app.title]}</a>']
        if app.display_name:
            head.append(f'<span class="mono muted small">{esc[name]}</span>')
        if app.owner_team:
            head.append(f'<span class="muted small">· {esc[app.owner_team]}</span>')
        head.append(_app_status(row["status"], esc))
        head.append(_drift_flag(row["drift"], esc))
        arch, arch_title = esc[app.architecture], esc[app.get_architecture_display()]
        out.append(
            f'<tr><th scope="row">{" ".join(h for h in head if h)}</th>'
            f'<td><span class="arch arch--{arch}" title="{arch_title}">{arch}</span></td>'
            + "".join(_cell(name, cell, stack_url, esc) for cell in row["cells"])
            + "</tr>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every interpolated value is escaped above
