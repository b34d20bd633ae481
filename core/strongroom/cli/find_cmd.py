"""``strongroom find PATTERN [--item ITEM] [--newer TIME] [--older TIME]``: which points hold a path.

Searches the intact points of every item (or of ``--item``), oldest first, for entries
matching the glob PATTERN (its name, or its whole point path when PATTERN has a ``/``:
:mod:`strongroom.catalog.find`), and prints one row per match: item, point, when the
point was made, path, size and modification time.  ``--newer`` and ``--older`` keep the
points made after or before a time: a duration back from now (``7d``, ``12h``), a date
(``2026-11-30``, midnight local time) or a date and time (local time unless it has an
offset).  A folder that cannot be read is left out with a warning.
"""

from __future__ import annotations

import datetime as dt
import re

import click

from ..catalog.find import Finder
from ..errors import UsageError
from ..models import parse_iso
from .common import app, json_option
from .completion import complete_item
from .output import emit_json, human_size, quiet, short_time, table, warn

_AGO = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """``7d`` (that long before ``now``), a date or a date and time; UsageError otherwise."""
    text = text.strip()
    ago = _AGO.fullmatch(text)
    if ago:
        return now - dt.timedelta(seconds=int(ago.group(1)) * _UNITS[ago.group(2).lower()])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(message=f"cannot read {text!r} as a time: give a duration back from now (7d, 12h),"
                                 " a date (2026-11-30) or a date and time") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment


@click.command()
@click.argument("pattern")
@click.option("--item", metavar="ITEM", shell_complete=complete_item, help="Search the points of this item only.")
@click.option("--newer", metavar="TIME", help="Only points made after TIME (7d, 2026-11-30, 2026-11-30T12:00).")
@click.option("--older", metavar="TIME", help="Only points made before TIME.")
@json_option
@click.pass_context
def find(ctx, pattern, item, newer, older, as_json):
    """Find the recovery points that hold paths matching PATTERN (a glob)."""
    vault = app(ctx).open_vault()
    now = vault.clock()
    after = parse_moment(newer, now) if newer else None
    before = parse_moment(older, now) if older else None
    finder = Finder(pattern, on_damaged=lambda exc: warn(str(exc)))
    rows = []
    for point in vault.points(item):
        made = parse_iso(point.created)
        if (after is not None and made <= after) or (before is not None and made >= before):
            continue
        for path, entry in finder.find(vault.tree(point)):
            rows.append((point, path, entry))
    if as_json:
        emit_json({"pattern": pattern, "matches": [
            {"item": p.item_name, "point": p.point_id, "created": p.created, "path": path, "type": e.type,
             "size": None if e.type == "dir" else e.size, "mtime_ns": e.mtime_ns} for p, path, e in rows]})
        return
    table(("ITEM", "POINT", "CREATED", "PATH", "SIZE", "MODIFIED"),
          [(p.item_name, p.short_id, short_time(p.created), path + ("/" if e.type == "dir" else ""),
            "-" if e.type == "dir" else human_size(e.size),
            dt.datetime.fromtimestamp(e.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")) for p, path, e in rows])
    points = len({p.point_id for p, _, _ in rows})
    if not quiet():
        click.echo(f"{len(rows)} match(es) in {points} point(s)", err=True)
