"""Line charts as inline SVG, drawn on the server: the evidence pack and the period
report must open offline, print to PDF and read the same in ten years, so they carry
their charts as markup rather than a script that draws them. Pure: the same points
give the same bytes."""

import math

from django.utils.html import escape
from django.utils.safestring import mark_safe

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 40
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7f8a")
TICKS = 5


def _ticks(lo, hi):
    """Round tick values (steps of 1, 2 or 5 times a power of ten) from lo to hi, about TICKS."""
    raw = (hi - lo) / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if raw <= f * power)
    first = math.ceil(lo / step - 1e-9)
    return [round(n * step, 10) for n in range(first, math.floor(hi / step + 1e-9) + 1)]


def _label(value):
    return f"{value:g}"


def line_chart(series, *, x_label, y_label, title, y_min=None, y_max=None, x_format=_label):
    """An SVG line chart (safe markup) of `series`: [(name, [(x, y), ...])], each a
    line with its points marked, a legend, axes with round ticks and their labels
    (`x_format(x)` for the x axis: e.g. a date). `title` is the chart's accessible
    name. Empty series draw "no data"."""
    points = [p for _, pts in series for p in pts]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>'
    )
    if not points:
        return mark_safe(  # noqa: S308 - the title is escaped
            f'{head}<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle" class="chart-empty">'
            "no data</text></svg>"
        )
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else y_min
    y1 = max(ys) if y_max is None else max(y_max, max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y1 = y0 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x):
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y):
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [head, f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
                   'stroke="#d0d7de"/>']
    for tick in _ticks(y0, y1):
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{sx(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                     f'{escape(x_format(tick))}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.8" fill="{colour}"/>' for x, y in pts)
        parts.append(f'<text x="{LEFT + 8 + 150 * i}" y="{TOP + 14}" fill="{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above
