"""``strongroom diff ITEM@A ITEM@B [PATH]``: what changed between two recovery points.

Lists, as ``restic diff`` does, every entry added (``+``), removed (``-``), changed in
content (``M``), changed in type (``T``) or in metadata only (``U``: mode, owner,
modification time), with what changed in brackets, then one summary line; ``--json``
prints the changes and the counts.  Subtrees whose tree id is the same in both points
are skipped unread (:mod:`strongroom.catalog.diff`).  PATH limits the diff to what is at
and below it.
"""

from __future__ import annotations

import click

from ..errors import UsageError
from .common import app, json_option, split_item_point
from .completion import complete_point
from .output import emit_json, human_size

_MARK = {"added": "+", "removed": "-"}  # the change kinds of catalog.diff (imported when the command runs)


def _mark(change) -> str:
    if change.kind in _MARK:
        return _MARK[change.kind]
    if "type" in change.what:
        return "T"
    return "M" if {"content", "target"} & set(change.what) else "U"


@click.command()
@click.argument("first", metavar="ITEM@A", shell_complete=complete_point)
@click.argument("second", metavar="ITEM@B", shell_complete=complete_point)
@click.argument("path", default="", required=False)
@json_option
@click.pass_context
def diff(ctx, first, second, path, as_json):
    """Show what was added, removed and changed from point A to point B (of PATH only, if given)."""
    vault = app(ctx).open_vault()
    points = []
    for spec in (first, second):
        item, ref = split_item_point(spec)
        if ref is None:
            raise UsageError(message=f"expected ITEM@POINT, got {spec!r}: diff compares two points")
        points.append(vault.point(item, ref))
    old, new = points
    from ..catalog.diff import ADDED, REMOVED, diff_trees

    changes = list(diff_trees(vault.tree(old), vault.tree(new), path))
    counts = {"added": 0, "removed": 0, "modified": 0}
    for change in changes:
        counts[change.kind] += 1
    added = sum(c.new.size for c in changes if c.kind == ADDED and c.new.has_content)
    removed = sum(c.old.size for c in changes if c.kind == REMOVED and c.old.has_content)
    if as_json:
        emit_json({"from": old.point_id, "to": new.point_id, "path": path,
                   "changes": [c.to_dict() for c in changes],
                   "summary": {**counts, "bytes_added": added, "bytes_removed": removed}})
        return
    for change in changes:
        shown = change.path + ("/" if (change.new or change.old).type == "dir" else "")
        detail = f" ({', '.join(change.what)})" if change.what else ""
        click.echo(f"{_mark(change)}    {shown}{detail}")
    click.echo(f"{counts['added']} added ({human_size(added)}), {counts['removed']} removed"
               f" ({human_size(removed)}), {counts['modified']} changed from {old.short_id} to {new.short_id}")
