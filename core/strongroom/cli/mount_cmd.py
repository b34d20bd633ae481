"""``strongroom mount DIR [ITEM[@POINT]]``: recovery points as read-only folders, through FUSE.

Without ITEM, ``DIR/<item>/<point time>/...``; with ITEM, ``DIR/<point time>/...``; with
ITEM@POINT, that point's files right under DIR (the layout: :mod:`strongroom.mount.tree`).
Runs in the foreground until the folder is unmounted (``fusermount3 -u DIR``) or the
command gets Ctrl-C or SIGTERM, then exits 0 (unmounting is how the command is meant to
end, so a signal here is not the 130/143 of an interrupted command).  Nothing is written to the vault; no job is
recorded.  Refused (exit 7, :class:`~strongroom.errors.MountUnavailable`) where FUSE is not
available, and before anything is mounted for an unknown item or point.
"""

from __future__ import annotations

import click

from .common import app, split_item_point
from .completion import complete_point


@click.command()
@click.argument("mountpoint", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("spec", metavar="[ITEM[@POINT]]", required=False, shell_complete=complete_point)
@click.pass_context
def mount(ctx, mountpoint, spec):
    """Show the vault's recovery points as read-only folders at DIR (FUSE) until unmounted."""
    from ..mount.fuse import serve
    from ..mount.tree import PointsFS
    from . import note

    item, ref = split_item_point(spec) if spec else (None, None)
    vault = app(ctx).open_vault()
    if item:
        vault.item(item)  # ItemNotFound before anything is mounted
    fs = PointsFS(vault, item, ref)
    fs.on_ready = lambda: note(f"mounted read-only at {mountpoint}: unmount with 'fusermount3 -u {mountpoint}'"
                               " or Ctrl-C")
    serve(fs, mountpoint)
