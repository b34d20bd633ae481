"""Output helpers shared by the commands: JSON, tables, sizes, progress."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any, Sequence

import click


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def short_time(text: str | None) -> str:
    if not text:
        return "-"
    moment = dt.datetime.fromisoformat(text).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain aligned table (no colours: output is often piped)."""
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text.replace("\n", "\\n")


def quiet() -> bool:
    """``-q`` (or ``--log-level error``) was given: only errors and results are printed."""
    from .logsetup import current

    return current().quiet


def info(message: str) -> None:
    """An informational line on standard output (what was done), left out by ``-q``."""
    if not quiet():
        click.echo(message)


def warn(message: str) -> None:
    """A warning on standard error, left out by ``-q``."""
    if not quiet():
        click.echo(f"warning: {message}", err=True)


def error(message: str) -> None:
    """An error on standard error (``-q`` keeps it): something failed, the command goes on."""
    click.echo(f"error: {message}", err=True)


class Progress:
    """A one-line progress display on stderr, shown only on a terminal, not in JSON mode
    and not with ``-q``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty() and not quiet()
        self._started = time.monotonic()
        self._width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        line = f"[{elapsed:6.1f}s] {text}"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
