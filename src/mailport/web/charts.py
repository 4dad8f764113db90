"""A tiny bar chart of messages per hour, as inline SVG rendered on the server.

Twenty-four bars need no charting library and no JavaScript: the SVG is a few rectangles with a
``<title>`` each (a tooltip, and text for screen readers) and a ``role="img"`` label.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

WIDTH = 240
HEIGHT = 48
GAP = 2


def hourly_chart(counts: Sequence[int], *, end: datetime, label: str, failed: Sequence[int] = ()) -> str:
    """``counts[i]`` messages in the hour ending ``len(counts) - i`` hours before ``end``."""
    hours = len(counts) or 24
    values = list(counts) or [0] * hours
    fails = list(failed) + [0] * (hours - len(failed))
    peak = max([*values, 1])
    bar = (WIDTH - GAP * (hours - 1)) / hours
    total = sum(values)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(label)}: {total} messages in the last {hours} hours" '
        'preserveAspectRatio="none">'
    ]
    for i, value in enumerate(values):
        start = end - timedelta(hours=hours - i)
        x = i * (bar + GAP)
        h = 0.0 if value == 0 else max(2.0, (HEIGHT - 2) * value / peak)
        tip = f"{start:%H}:00–{(start + timedelta(hours=1)):%H}:00 UTC: {value} processed"
        if fails[i]:
            tip += f", {fails[i]} failed"
        parts.append(
            f'<rect class="{"bar-fail" if fails[i] else "bar"}" x="{x:.1f}" y="{HEIGHT - h:.1f}" '
            f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(tip)}</title></rect>'
        )
        if value == 0:
            parts.append(
                f'<rect class="bar-empty" x="{x:.1f}" y="{HEIGHT - 1}" width="{bar:.1f}" height="1"/>'
            )
    parts.append("</svg>")
    return "".join(parts)
