"""What changed between two trees: the entries added, removed and changed, path by path.

:func:`diff_trees` walks two points' trees side by side, in the order of their nodes, and
yields a :class:`Change` for every entry that is only in the old tree (``removed``),
only in the new one (``added``), or in both but different (``modified``, with what
differs: ``type``, ``content``, ``target``, ``mode``, ``owner``, ``mtime``).  A folder
added or removed is followed by everything below it.  Two folders with the same tree id
hold the same entries (tree nodes are content-addressed), so they are skipped without
reading their nodes: a diff of two points of a large, mostly unchanged tree reads only
the nodes on the paths to what changed.

Content is compared by chunk ids and size (equal content, equal ids: both points are in
one vault, cut by one chunker).  A folder's own ``mtime`` is not compared: it moves
whenever an entry is added or removed, and those entries are listed themselves; its
mode and owner are.  ``atime`` and ``ctime`` are never compared.  A folder whose node
cannot be read raises :class:`~strongroom.errors.DamagedFolder`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import attrs

from .entry import DIR, Entry
from .tree import normalize_path

if TYPE_CHECKING:
    from .tree import TreeReader

__all__ = ["ADDED", "MODIFIED", "REMOVED", "Change", "diff_trees", "entry_changes"]

ADDED = "added"
REMOVED = "removed"
MODIFIED = "modified"


@attrs.frozen
class Change:
    """One entry that differs: ``kind`` added, removed or modified; ``what`` differs (for
    modified); the entry as it is in the new tree (``new``) and in the old one (``old``)."""

    path: str
    kind: str
    what: tuple[str, ...] = ()
    old: Entry | None = None
    new: Entry | None = None

    def to_dict(self) -> dict:
        shown = self.new or self.old
        return {"path": self.path, "change": self.kind, "what": list(self.what),
                "type": shown.type if shown else None,
                "old_size": self.old.size if self.old and self.old.type != DIR else None,
                "new_size": self.new.size if self.new and self.new.type != DIR else None}


def entry_changes(old: Entry, new: Entry) -> tuple[str, ...]:
    """What differs between two entries of one path (see the module docstring)."""
    if old.type != new.type:
        return ("type",)
    what = []
    if old.type != DIR and (old.chunks != new.chunks or old.size != new.size or old.rdev != new.rdev):
        what.append("content")
    if old.target != new.target:
        what.append("target")
    if old.mode != new.mode:
        what.append("mode")
    if (old.uid, old.gid, old.user, old.group) != (new.uid, new.gid, new.user, new.group):
        what.append("owner")
    if old.type != DIR and old.mtime_ns != new.mtime_ns:
        what.append("mtime")
    return tuple(what)


def diff_trees(old: TreeReader, new: TreeReader, path: str = "") -> Iterator[Change]:
    """The changes from tree ``old`` to tree ``new``, at and below ``path``, pre-order."""
    path = normalize_path(path)
    old_top = _top(old, path)
    new_top = _top(new, path)
    if path:
        yield from _pair(old, new, path, old_top, new_top)
        return
    yield from _nodes(old, new, "", old.root, new.root)


def _top(tree: TreeReader, path: str) -> Entry | None:
    from ..errors import PathNotInPoint

    if not path:
        return None
    try:
        return tree.lookup(path)
    except PathNotInPoint:
        return None


def _pair(old: TreeReader, new: TreeReader, path: str, a: Entry | None, b: Entry | None) -> Iterator[Change]:
    if a is None and b is None:
        return
    if a is None:
        yield Change(path, ADDED, new=b)
        yield from _below(new, path, b, ADDED)  # type: ignore[arg-type]
        return
    if b is None:
        yield Change(path, REMOVED, old=a)
        yield from _below(old, path, a, REMOVED)
        return
    what = entry_changes(a, b)
    if what:
        yield Change(path, MODIFIED, what, old=a, new=b)
    if what == ("type",):
        yield from _below(old, path, a, REMOVED)
        yield from _below(new, path, b, ADDED)
    elif a.type == DIR and a.subtree != b.subtree:
        yield from _nodes(old, new, path, a.subtree, b.subtree)  # type: ignore[arg-type]


def _nodes(old: TreeReader, new: TreeReader, prefix: str, a: bytes, b: bytes) -> Iterator[Change]:
    if a == b:
        return
    left = {e.name: e for e in old.folder(a, prefix)}
    right = {e.name: e for e in new.folder(b, prefix)}
    for name in sorted(left.keys() | right.keys(), key=lambda n: n.encode("utf-8", "surrogateescape")):
        yield from _pair(old, new, f"{prefix}/{name}" if prefix else name, left.get(name), right.get(name))


def _below(tree: TreeReader, path: str, entry: Entry, kind: str) -> Iterator[Change]:
    """Everything below folder ``entry`` at ``path``, as ``kind``."""
    if entry.type != DIR:
        return
    for child, found in tree.walk(path):
        if child != path:
            yield Change(child, kind, old=found if kind == REMOVED else None, new=found if kind == ADDED else None)
