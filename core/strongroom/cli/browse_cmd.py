"""``strongroom browse ITEM[@POINT] [PATH]``: look inside a recovery point."""

from __future__ import annotations

import stat

import click

from ..catalog.entry import DIR, SYMLINK
from .common import app, json_option, split_item_point
from .output import emit_json, human_size, table

_TYPE_CHAR = {"file": "-", "dir": "d", "symlink": "l", "hardlink": "h", "fifo": "p",
              "chardev": "c", "blockdev": "b", "socket": "s", "stream": "S", "disk": "D"}


@click.command()
@click.argument("spec", metavar="ITEM[@POINT]")
@click.argument("path", default="", required=False)
@json_option
@click.pass_context
def browse(ctx, spec, path, as_json):
    """List PATH (default: the top) inside a recovery point (default: the latest)."""
    item, point = split_item_point(spec)
    listing = app(ctx).open_vault().browse(item, point, path)
    if as_json:
        emit_json([
            {"path": p, "name": e.name, "type": e.type, "mode": e.mode, "uid": e.uid, "gid": e.gid,
             "user": e.user, "group": e.group, "size": e.size, "mtime_ns": e.mtime_ns,
             "target": e.target or None}
            for p, e in listing
        ])
        return
    rows = []
    for p, e in listing:
        mode = _TYPE_CHAR.get(e.type, "?") + stat.filemode(e.mode)[1:]
        name = e.name + ("/" if e.type == DIR else "") + (f" -> {e.target}" if e.type == SYMLINK else "")
        owner = f"{e.user or e.uid}:{e.group or e.gid}"
        import datetime as dt

        mtime = dt.datetime.fromtimestamp(e.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")
        rows.append((mode, owner, human_size(e.size) if e.type != DIR else "-", mtime, name))
    table(("MODE", "OWNER", "SIZE", "MODIFIED", "NAME"), rows)
