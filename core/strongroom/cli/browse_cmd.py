"""``strongroom browse ITEM[@POINT] [PATH]``: look inside a recovery point."""

from __future__ import annotations

import datetime as dt
import stat

import click

from .common import app, json_option, split_item_point
from .completion import complete_point
from .output import emit_json, human_size, short_time, table

_TYPE_CHAR = {"file": "-", "dir": "d", "symlink": "l", "hardlink": "h", "fifo": "p",
              "chardev": "c", "blockdev": "b", "socket": "s"}


@click.command()
@click.argument("spec", metavar="ITEM[@POINT]", shell_complete=complete_point)
@click.argument("path", default="", required=False)
@json_option
@click.pass_context
def browse(ctx, spec, path, as_json):
    """List PATH (default: the top) inside a recovery point (default: the latest)."""
    item, point = split_item_point(spec)
    listing = app(ctx).open_vault().browse(item, point, path)
    if as_json:
        emit_json([row.to_dict() for row in listing])
        return
    if all(row.type in _TYPE_CHAR for row in listing):
        table(("MODE", "OWNER", "SIZE", "MODIFIED", "NAME"), [_file_row(row) for row in listing])
    else:
        table(("TYPE", "SIZE", "NAME", "DETAIL"),
              [(row.type, "-" if row.size is None else human_size(row.size), row.name, row.detail)
               for row in listing])


def _file_row(row) -> tuple:
    mode = _TYPE_CHAR[row.type] + stat.filemode(row.mode or 0)[1:]
    name = row.name + ("/" if row.type == "dir" else "") + (f" -> {row.target}" if row.type == "symlink" else "")
    mtime = short_time(dt.datetime.fromtimestamp((row.mtime_ns or 0) / 1e9, dt.timezone.utc))
    return (mode, row.owner, "-" if row.size is None else human_size(row.size), mtime, name)
