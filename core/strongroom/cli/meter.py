"""Progress with totals, rate and ETA: a line on a terminal, or status events in JSON.

A command that moves bytes (backup, restore) feeds :class:`Meter` with what is done
(bytes, files, the current file) and what is expected in all (an estimate that may grow
as the work finds more); the meter smooths the rate and works out the percent and the
ETA.  Two outputs read it:

- :class:`MeterLine`: one line on standard error, redrawn at most ``interval`` seconds
  apart (0.2: five times a second): ``42.0%  430.1 MiB/1.0 GiB  1234/5000 files
  85.2 MiB/s  ETA 0:07  srv/www/index.html``.  Shown only on a terminal and not with
  ``-q`` (:func:`progress_for`); cleared when the command is done.
- :class:`StatusEvents`: with ``--progress-json`` (or ``--json --progress``), one
  compact JSON document a line on standard output, at most one a second:
  ``{"schema": 1, "type": "status", "percent": ..., "bytes": ..., "total": ...,
  "files": ..., "total_files": ..., "rate": ..., "eta_seconds": ..., "current": ...}``;
  the command then prints its usual document with ``"type": "summary"`` added, on one
  line too (:meth:`StatusEvents.summary`).  Without either flag ``--json`` prints the one
  document it always did.

Nothing here reads a clock of its own: the clock is given (``time.monotonic`` by
default), so tests drive it.  No import beyond the standard library and click.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import click

from .meterline import Meter, MeterLine, format_eta
from .output import Progress, emit_json, quiet

__all__ = ["Meter", "MeterLine", "MessageEvents", "StatusEvents", "format_eta", "progress_for", "progress_messages",
           "progress_options"]


class StatusEvents:
    """The meter as newline-delimited JSON status events on standard output, at most one
    every ``interval`` seconds, then the summary document."""

    active = True

    def __init__(self, meter: Meter, *, interval: float = 1.0, emit: Callable[[dict], None] | None = None) -> None:
        self.meter = meter
        self.interval = interval
        self._emit = emit or _emit_compact
        self._last: float | None = None
        self._lock = threading.Lock()

    def update(self, **numbers: Any) -> None:
        with self._lock:
            self.meter.update(**numbers)
            now = self.meter.clock()
            if self._last is not None and now - self._last < self.interval:
                return
            self._last = now
            self._emit(self.meter.status())

    def note(self, text: str) -> None:
        """A phase with no numbers ("expiring points"): a status event with ``"phase"``
        (always: phases are few)."""
        with self._lock:
            self._last = self.meter.clock()
            self._emit({**self.meter.status(), "phase": text})

    def restart(self, meter: Meter) -> None:
        """Count a new phase with ``meter``."""
        with self._lock:
            self.meter = meter

    def done(self) -> None:
        """One last status event with the final numbers."""
        with self._lock:
            self._emit(self.meter.status())

    def summary(self, document: dict) -> None:
        """The command's document, ``"type": "summary"`` added, on one line."""
        self._emit({"type": "summary", **document})


class _Silent:
    """No progress (not a terminal, ``-q``, or ``--json`` alone)."""

    active = False

    def update(self, **numbers: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def done(self) -> None:
        pass


class MessageEvents:
    """Status events from a command that reports in messages (verify, prune, replicate):
    a message with numbers (``strongroom.engine.progress.Step``) is counted, each phase
    from zero (``"phase"``, ``"unit"``: packs, objects); a plain one is a phase event."""

    active = True

    def __init__(self, events: StatusEvents) -> None:
        self.events = events
        self._phase = ""

    def show(self, text: str) -> None:
        if getattr(text, "total", None) is None and getattr(text, "total_bytes", None) is None:
            self.events.note(str(text))
            return
        label = str(text).partition(":")[0]
        if label != self._phase:
            self._phase = label
            self.events.restart(Meter(self.events.meter.clock, unit=text.unit or "items", label=label))
        self.events.update(bytes=text.bytes, files=text.done, total=text.total_bytes, total_files=text.total)

    def done(self) -> None:
        self.events.done()

    def summary(self, document: dict) -> None:
        self.events.summary(document)


def progress_messages(as_json: bool, progress_flag: bool = False, progress_json: bool = False):
    """For a command that reports in messages: :class:`MessageEvents` when events are
    asked for, else the line of :class:`strongroom.cli.output.Progress` (on a terminal)."""
    if events_mode(as_json, progress_flag, progress_json):
        return MessageEvents(StatusEvents(Meter(unit="")))
    return Progress(not as_json)


def _emit_compact(document: dict) -> None:
    emit_json(document, compact=True)


def progress_options(command: Callable) -> Callable:
    """``--progress`` and ``--progress-json`` on a command that has ``--json``."""
    command = click.option("--progress-json", "progress_json", is_flag=True,
                           help="Print progress as JSON status events, one a line, then the result"
                                " with \"type\": \"summary\" (docs/json.md).")(command)
    return click.option("--progress", "progress_flag", is_flag=True,
                        help="With --json: print progress events first (as --progress-json).")(command)


def progress_for(as_json: bool, progress_flag: bool = False, progress_json: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> MeterLine | StatusEvents | _Silent:
    """The progress output a command uses: status events when asked for, else the line
    on a terminal (not with ``--json`` or ``-q``), else nothing."""
    meter = Meter(clock)
    if progress_json or (as_json and progress_flag):
        return StatusEvents(meter)
    if as_json or quiet() or not sys.stderr.isatty():
        return _Silent()
    return MeterLine(meter)


def events_mode(as_json: bool, progress_flag: bool, progress_json: bool) -> bool:
    """Whether the command prints status events and a one-line summary."""
    return bool(progress_json or (as_json and progress_flag))
