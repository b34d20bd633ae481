"""``strongroom dump ITEM@POINT PATH``: one entry's content, exactly, to standard output.

PATH names an entry with content in the point: a file of a ``files`` point (a hard link
is followed to its first name), a dump stream of a ``postgres`` point, a disk image of a
``vm`` point (``strongroom browse`` lists what a point holds).  The bytes are streamed as
the point holds them, chunk by chunk (every chunk authenticated before any of its bytes
is written), with no temporary file.  A folder, a symbolic link or a special file has no
content to dump: refused (exit 3).  A reader that goes away (``| head``) ends the command
quietly with 141.
"""

from __future__ import annotations

import sys

import click

from ..catalog.entry import HARDLINK
from ..errors import UsageError
from .common import app, split_item_point
from .completion import complete_point


@click.command()
@click.argument("spec", metavar="ITEM@POINT", shell_complete=complete_point)
@click.argument("path")
@click.pass_context
def dump(ctx, spec, path):
    """Write the content of PATH in a recovery point (default: the latest) to standard output."""
    item, ref = split_item_point(spec)
    view = app(ctx).open_vault().point_view(item, ref)
    entry = view.lookup(path)
    if entry is not None and entry.type == HARDLINK:
        entry = view.lookup(entry.target)
    if entry is None or not entry.has_content:
        kind = "the top folder" if entry is None else f"a {entry.type}"
        raise UsageError(message=f"'{path}' is {kind} in point {view.point.short_id} of '{item}': dump writes"
                                 " the content of one file ('strongroom restore' writes folders)")
    sys.stdout.flush()  # nothing of the text layer may come after the bytes
    out = sys.stdout.buffer
    _, whole = view.write_stream(entry, out)
    if not whole:
        raise BrokenPipeError  # the reader went away: the root command exits 141, silently
    out.flush()
