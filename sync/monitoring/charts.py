"""Small charts as inline SVG, drawn by hand: no script, no stylesheet from elsewhere.

The ops dashboard's Content-Security-Policy forbids inline styles, so shapes are styled
by class (``ops.css``) and by presentation attributes only. Every text is escaped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape


def duration(seconds: float | None) -> str:
    """Seconds as people read them: ``42s``, ``7m``, ``3.5h``, ``2.0d``."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def bar_chart(
    rows: Sequence[tuple[str, float | None]],
    *,
    title: str,
    width: int = 640,
    bar_height: int = 18,
    label_width: int = 190,
    warn_above: float | None = None,
) -> Markup:
    """Horizontal bars, one per row (``None``: no value, drawn as "-").

    Lengths are on a log scale (1 s to the largest value), so a mapping lagging a few
    seconds stays visible next to one lagging a day.
    """
    gap = 6
    value_width = 60
    plot = width - label_width - value_width
    height = len(rows) * (bar_height + gap) + gap
    values = [v for _, v in rows if v is not None and not math.isnan(v)]
    top = max([1.0, *values])
    scale = math.log10(top + 1) or 1.0
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar_height + gap)
        mid = y + bar_height / 2 + 4
        parts.append(
            f'<text class="chart-label" x="{label_width - 8}" y="{mid:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        shown = value is not None and not math.isnan(value)
        length = plot * math.log10(value + 1) / scale if shown and value is not None else 0.0
        css = "bar"
        if shown and warn_above is not None and value is not None and value > warn_above:
            css = "bar bar-warn"
        parts.append(
            f'<rect class="{css}" x="{label_width}" y="{y}" width="{max(length, 1.0):.1f}" '
            f'height="{bar_height}"><title>{escape(label)}: {escape(duration(value))}'
            "</title></rect>"
        )
        parts.append(
            f'<text class="chart-value" x="{label_width + length + 6:.1f}" y="{mid:.1f}">'
            f"{escape(duration(value))}</text>"
        )
    parts.append("</svg>")
    # Every text above went through escape(); the rest is markup built here.
    return Markup("".join(parts))  # noqa: S704


def hourly_columns(
    counts: dict[dt.datetime, int],
    *,
    now: dt.datetime,
    title: str,
    hours: int = 24,
    width: int = 640,
    height: int = 180,
) -> Markup:
    """One column per hour of the last ``hours`` hours (oldest left), with a y axis."""
    left, bottom, top_pad = 48, 22, 10
    plot_w = width - left - 8
    plot_h = height - bottom - top_pad
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    slots = [current - dt.timedelta(hours=hours - 1 - i) for i in range(hours)]
    values = [counts.get(slot, 0) for slot in slots]
    top = _nice_max(max(values, default=0))
    column_w = plot_w / hours
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="chart-axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{top * fraction:,.0f}</text>"
        )
    for i, (slot, value) in enumerate(zip(slots, values, strict=True)):
        h = plot_h * value / top
        x = left + i * column_w + 1
        y = top_pad + plot_h - h
        parts.append(
            f'<rect class="column" x="{x:.1f}" y="{y:.1f}" width="{max(column_w - 2, 1):.1f}" '
            f'height="{h:.1f}"><title>{slot:%H}:00 UTC: {value:,} calls</title></rect>'
        )
        if i % 6 == 0 or i == hours - 1:
            parts.append(
                f'<text class="chart-axis" x="{x + column_w / 2:.1f}" y="{height - 6}" '
                f'text-anchor="middle">{slot:%H}h</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - texts escaped above
