"""The item page's chart: backup size and duration per recovery point, as inline SVG data.

:func:`size_and_duration` turns an item's :class:`~strongroom.server.monitor.PointSample`
history into bars (stored bytes, scaled to the tallest) and a polyline (seconds, scaled
to the longest), in a fixed view box; the template draws them.  No JavaScript.
"""

from __future__ import annotations

from typing import Sequence

import attrs

from ..monitor import PointSample

__all__ = ["Chart", "size_and_duration"]

WIDTH, HEIGHT, PAD = 640, 180, 24
MAX_POINTS = 60


@attrs.frozen
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@attrs.frozen
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    line: str  # SVG polyline points: "x,y x,y ..."
    max_bytes: int
    max_seconds: float


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def size_and_duration(history: Sequence[PointSample]) -> Chart:
    """The newest :data:`MAX_POINTS` points of ``history`` (oldest first) as a chart."""
    samples = list(history)[-MAX_POINTS:]
    top_bytes = max((s.bytes_total for s in samples), default=0) or 1
    top_seconds = max((s.seconds for s in samples), default=0.0) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(len(samples), 1)
    bars, line = [], []
    for i, s in enumerate(samples):
        h = inner_h * s.bytes_total / top_bytes
        x = PAD + i * step
        title = (f"{s.created:%Y-%m-%d %H:%M} UTC: {human_bytes(s.bytes_total)} protected, "
                 f"{human_bytes(s.stored_bytes)} stored, {s.seconds:.1f} s")
        bars.append(Bar(round(x + step * 0.15, 1), round(PAD + inner_h - h, 1), round(step * 0.7, 1), round(h, 1), title))
        line.append(f"{x + step / 2:.1f},{PAD + inner_h - inner_h * s.seconds / top_seconds:.1f}")
    return Chart(WIDTH, HEIGHT, tuple(bars), " ".join(line),
                 max((s.bytes_total for s in samples), default=0), max((s.seconds for s in samples), default=0.0))
