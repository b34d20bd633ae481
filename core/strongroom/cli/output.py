"""Output helpers shared by the commands: JSON, tables, sizes, times, progress.

Every JSON document strongroom prints goes through :func:`json_document`, which adds
``"schema": SCHEMA``: a top-level object gets the key (first), a top-level array stays
an array (scripts index it) and each of its objects gets the key.  ``docs/json.md``
lists the shapes and the rule: adding a field keeps ``SCHEMA``; removing one or changing
what one means bumps it.

Times: JSON carries ISO 8601 with an offset; tables show :func:`short_time`, which
always ends with the offset (``2026-12-04 22:06:00 +00:00``) and, given a zone, is in
that zone and names it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, Sequence

import click

from .sizes import human_size  # noqa: F401  (commands import it from here)


#: The version of the JSON documents' shapes (docs/json.md).
SCHEMA = 1


def json_document(data: Any) -> Any:
    """``data`` with the schema key: on an object, or on each object of an array."""
    if isinstance(data, dict):
        return {"schema": SCHEMA, **{k: v for k, v in data.items() if k != "schema"}}
    if isinstance(data, (list, tuple)):
        return [json_document(element) if isinstance(element, dict) else element for element in data]
    return data


def emit_json(data: Any, *, compact: bool = False) -> None:
    """Print ``data`` as one JSON document with its schema key (:func:`json_document`);
    ``compact``: on one line (a stream of documents, one a line)."""
    document = json_document(data)
    if compact:
        click.echo(json.dumps(document, default=str))
    else:
        click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def short_time(moment: str | dt.datetime | None, zone: str | None = None) -> str:
    """``moment`` (ISO 8601 text or a datetime) for a table: in this machine's zone, or in
    the IANA ``zone`` and labelled with it, always with its offset; "-" for none."""
    if not moment:
        return "-"
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # stored times are UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if zone:
        import zoneinfo

        shown = moment.astimezone(zoneinfo.ZoneInfo(zone))
        return f"{shown.strftime('%Y-%m-%d %H:%M:%S')} {_offset(shown)} ({zone})"
    shown = moment.astimezone()
    return f"{shown.strftime('%Y-%m-%d %H:%M:%S')} {_offset(shown)}"


def _offset(moment: dt.datetime) -> str:
    text = moment.strftime("%z")  # +0100
    return f"{text[:3]}:{text[3:5]}" if len(text) >= 5 else "+00:00"


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
    and not with ``-q``, for commands that report in messages (verify, prune, replicate).

    A message is drawn as it is, after the time elapsed; a message that carries numbers
    (``strongroom.engine.progress.Step``: packs of total, bytes of total) is drawn with
    percent, rate and ETA (:mod:`.meter`), at most five times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty() and not quiet()
        self._line = None
        self._phase = ""

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        from .meterline import Meter, MeterLine

        if self._line is None:
            self._line = MeterLine(Meter())
        if getattr(text, "total", None) is None and getattr(text, "total_bytes", None) is None:
            self._line.note(str(text))
            return
        label = str(text).partition(":")[0]
        if label != self._phase:  # a new phase counts from zero
            self._phase = label
            self._line.restart(Meter(unit=text.unit or "items", label=label))
        self._line.update(bytes=text.bytes, files=text.done, total=text.total_bytes, total_files=text.total)

    def done(self) -> None:
        if self._line is not None:
            self._line.done()
