"""The progress meter and its line on a terminal (see :mod:`.meter` for the contract).

:class:`Meter` holds what is done of what is expected, smooths the rate and works out
the percent and the ETA, on a clock it is given; :class:`MeterLine` draws it as one
line on standard error, at most ``interval`` seconds apart, always once at 100%.
Standard library only: the command line's start-up imports it.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, TextIO

from .sizes import human_size

__all__ = ["Meter", "MeterLine", "format_eta"]


def format_eta(seconds: float | None) -> str:
    """``0:07``, ``12:34``, ``1:02:03``; ``--:--`` when unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _shorten(path: str, width: int) -> str:
    """``path`` cut in the middle to at most ``width`` characters."""
    if len(path) <= width:
        return path
    if width <= 3:
        return path[-width:]
    keep = width - 3
    head = keep // 3
    return path[:head] + "..." + path[len(path) - (keep - head):]


class Meter:
    """What is done of what is expected, the smoothed rate and the ETA (see the module
    docstring).  ``clock`` gives seconds (monotonic)."""

    #: Weight of the newest rate sample in the moving average.
    SMOOTHING = 0.3
    #: Samples closer together than this do not change the rate.
    MIN_SAMPLE = 0.2

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, unit: str = "files", label: str = "") -> None:
        self.clock = clock
        self.unit = unit  # what ``files`` counts (files, packs)
        self.label = label  # a phase shown first ("reading packs")
        self.started = clock()
        self.bytes = 0
        self.files = 0
        self.total: int | None = None
        self.total_files: int | None = None
        self.current = ""
        self._smoothed: float | None = None  # bytes a second
        self._sample = (self.started, 0)

    def update(self, *, bytes: int, files: int | None = None, total: int | None = None,
               total_files: int | None = None, current: str | None = None) -> None:
        """Record what is done now; a total given replaces the one known (None keeps it)."""
        now = self.clock()
        self.bytes = bytes
        if files is not None:
            self.files = files
        if total is not None:
            self.total = total
        if total_files is not None:
            self.total_files = total_files
        if current is not None:
            self.current = current
        last_time, last_bytes = self._sample
        if now - last_time >= self.MIN_SAMPLE:
            sample = max(0, bytes - last_bytes) / (now - last_time)
            self._smoothed = sample if self._smoothed is None else (
                self.SMOOTHING * sample + (1 - self.SMOOTHING) * self._smoothed)
            self._sample = (now, bytes)

    @property
    def rate(self) -> float | None:
        """Bytes a second: the moving average, or the average so far before it has a
        sample (once that covers ``MIN_SAMPLE`` seconds, or the work is complete)."""
        if self._smoothed is not None:
            return self._smoothed
        elapsed = self.clock() - self.started
        if not self.bytes or elapsed <= 0 or (elapsed < self.MIN_SAMPLE and not self.complete):
            return None
        return self.bytes / elapsed

    @property
    def complete(self) -> bool:
        """Everything expected is done: the bytes of a total of bytes, else the count of its total."""
        if self.total:
            return self.bytes >= self.total
        return bool(self.total_files) and self.files >= self.total_files  # type: ignore[operator]

    @property
    def percent(self) -> float | None:
        """Bytes of the total; without a total of bytes, the count of its total."""
        if self.total:
            return min(100.0, 100.0 * self.bytes / self.total)
        if self.total_files:
            return min(100.0, 100.0 * self.files / self.total_files)
        return None

    @property
    def eta_seconds(self) -> float | None:
        if self.total and self.rate:
            return max(0.0, (self.total - self.bytes) / self.rate)
        if not self.total and self.total_files and self.files:  # by count, at the average pace
            elapsed = self.clock() - self.started
            return max(0.0, elapsed * (self.total_files - self.files) / self.files)
        return None

    def status(self) -> dict[str, Any]:
        """The numbers, as a status event carries them."""
        percent, eta = self.percent, self.eta_seconds
        return {
            "type": "status",
            "phase": self.label or None,
            "unit": self.unit or None,
            "percent": round(percent, 2) if percent is not None else None,
            "bytes": self.bytes, "total": self.total,
            "files": self.files, "total_files": self.total_files,
            "rate": round(self.rate) if self.rate is not None else None,
            "eta_seconds": round(eta) if eta is not None else None,
            "elapsed_seconds": round(self.clock() - self.started, 1),
            "current": self.current or None,
        }

    def line(self, width: int = 100) -> str:
        """The progress line, at most ``width`` characters."""
        percent = self.percent
        parts = [self.label] if self.label else []
        parts.append(f"{percent:5.1f}%" if percent is not None else "  ?  %")
        counts_bytes = bool(self.total or self.bytes or not self.total_files)  # not a count-only step
        if counts_bytes:
            parts.append(f"{human_size(self.bytes)}/{human_size(self.total)}" if self.total else f"{human_size(self.bytes)}")
        unit = self.unit
        parts.append(f"{self.files}/{self.total_files} {unit}" if self.total_files else f"{self.files} {unit}")
        if counts_bytes:
            parts.append(f"{human_size(self.rate)}/s" if self.rate is not None else "-- B/s")
        parts.append(f"ETA {format_eta(self.eta_seconds)}")
        text = "  ".join(parts)
        room = width - len(text) - 2
        if self.current and room >= 8:
            text += "  " + _shorten(self.current, room)
        return text[:width]


class MeterLine:
    """The meter as one line on ``out`` (standard error), redrawn at most every ``interval`` s."""

    active = True

    def __init__(self, meter: Meter, out: TextIO | None = None, *, interval: float = 0.2, width: int | None = None) -> None:
        self.meter = meter
        self.out = out if out is not None else sys.stderr
        self.interval = interval
        self.width = width
        self._drawn = 0  # characters on screen
        self._last: float | None = None
        self._complete_drawn = False  # the line at 100% is always drawn, once
        self._started = meter.started
        self._lock = threading.Lock()

    def restart(self, meter: Meter) -> None:
        """Count a new phase with ``meter`` (the line and its elapsed time stay)."""
        with self._lock:
            self.meter = meter
            self._complete_drawn = False

    def update(self, **numbers: Any) -> None:
        with self._lock:
            self.meter.update(**numbers)
            now = self.meter.clock()
            complete = self.meter.complete and not self._complete_drawn
            if self._last is not None and now - self._last < self.interval and not complete:
                return
            self._last = now
            self._complete_drawn = self._complete_drawn or complete
            self._draw(self.meter.line(self._width()))

    def note(self, text: str) -> None:
        """A phase with no numbers ("expiring points"): drawn as it is, elapsed time first."""
        with self._lock:
            elapsed = self.meter.clock() - self._started
            self._draw(f"[{elapsed:6.1f}s] {text}"[: self._width()])

    def _width(self) -> int:
        if self.width is not None:
            return self.width
        import shutil

        return max(40, shutil.get_terminal_size((100, 24)).columns - 1)

    def _draw(self, line: str) -> None:
        pad = max(0, self._drawn - len(line))
        self._drawn = len(line)
        self.out.write("\r" + line + " " * pad)
        self.out.flush()

    def done(self) -> None:
        with self._lock:
            if self._drawn:
                self.out.write("\r" + " " * self._drawn + "\r")
                self.out.flush()
                self._drawn = 0
