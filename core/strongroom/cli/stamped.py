"""Timestamped output: every line written starts with an ISO 8601 time and its offset.

``strongroom agent`` runs with :func:`stamped_output`, which replaces ``sys.stdout`` and
``sys.stderr`` by :class:`StampedWriter` for the block, so each line - its own, a note or
warning from the vault, a log record - reads ``2026-12-04T03:00:01.123+01:00 backup of
'web': completed``.  A line is stamped when it is complete (its newline is written); a
last line without one is stamped and ended when the block ends.  A line that already
starts with such a time (a log record at ``-v``) is left as it is.  The writer is not a
terminal (``isatty`` is false), so no progress display is drawn between the lines.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
from typing import Callable, Iterator, TextIO

from .logsetup import stamp

__all__ = ["StampedWriter", "stamped_output"]

_STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d ")


class StampedWriter(io.TextIOBase):
    """A text stream that writes each complete line to ``target`` behind a timestamp."""

    def __init__(self, target: TextIO, clock: Callable[[], str] = stamp) -> None:
        self.target = target
        self.clock = clock
        self._partial = ""
        self._lock = threading.RLock()  # a signal handler may print while a line is written

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.target, "errors", None)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.target.fileno()

    def _line(self, line: str) -> str:
        return line if _STAMPED.match(line) else f"{self.clock()} {line}"

    def write(self, text: str) -> int:
        with self._lock:
            *complete, self._partial = (self._partial + text).split("\n")
            if complete:
                self.target.write("".join(self._line(line) + "\n" for line in complete))
                self.target.flush()
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def finish(self) -> None:
        """Write a last line left without its newline."""
        with self._lock:
            if self._partial:
                self.target.write(self._line(self._partial) + "\n")
                self._partial = ""
            self.target.flush()


@contextlib.contextmanager
def stamped_output(stdout: bool = True) -> Iterator[None]:
    """Stamp every line of standard error, and of standard output unless ``stdout`` is
    false, for the block (see the module docstring)."""
    previous = sys.stdout, sys.stderr
    writers = []
    if stdout:
        sys.stdout = StampedWriter(sys.stdout)
        writers.append(sys.stdout)
    sys.stderr = StampedWriter(sys.stderr)
    writers.append(sys.stderr)
    try:
        yield
    finally:
        for writer in writers:
            writer.finish()
        sys.stdout, sys.stderr = previous
