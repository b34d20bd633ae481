"""Which recovery points and files lose data when some blobs are gone.

:func:`find_losses` walks the tree of every given point, each tree node once however
many points share it, and lists every file whose content needs a blob that ``have``
says is not available, and every folder whose listing (tree node) is not available or
does not read (everything below it is then lost to that point).  Paths are point paths
(``srv/www/index.html``; ``/`` for a point's root).  The walk is iterative, so a deep
tree cannot exhaust the stack.

``have(blob, kind)`` answers whether a blob will be readable (it may fetch it from
elsewhere, see :mod:`.repair`'s ``heal``); ``read_tree(blob)`` returns a node's
plaintext or None.  Reads only.
"""

from __future__ import annotations

from typing import Callable, Iterable

import attrs

from ..catalog.entry import DIR, Entry
from ..catalog.tree import decode_tree
from ..errors import IntegrityError
from ..models import RecoveryPoint
from ..repository.envelope import KIND_DATA, KIND_TREE

__all__ = ["Loss", "find_losses"]


@attrs.frozen
class Loss:
    """A file of a point whose data is gone, or a folder whose listing is."""

    item: str
    point: str
    path: str
    kind: str  # "file" or "folder"
    blobs: int = 0  # for a file: how many of its chunks are gone

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    def describe(self) -> str:
        what = (f"{self.blobs} chunk(s) of its data" if self.kind == "file"
                else "its folder listing, so everything in it")
        return f"{self.item}@{self.point[:8]} {self.path}: lost {what}"


def find_losses(
    points: Iterable[RecoveryPoint],
    have: Callable[[bytes, int], bool],
    read_tree: Callable[[bytes], bytes | None],
) -> list[Loss]:
    """Every loss of every point (see the module docstring), by point then path."""
    below: dict[bytes, list[tuple[str, str, int]]] = {}  # node -> (relative path, kind, blobs)
    found: list[Loss] = []
    for point in points:
        root = bytes.fromhex(point.root)
        _walk(root, below, have, read_tree)
        for rel, kind, blobs in below[root]:
            found.append(Loss(point.item_name, point.point_id, rel or "/", kind, blobs))
    return found


def _nodes(tree_id: bytes, have: Callable[[bytes, int], bool],
           read_tree: Callable[[bytes], bytes | None]) -> list[Entry] | None:
    if not have(tree_id, KIND_TREE):
        return None
    raw = read_tree(tree_id)
    if raw is None:
        return None
    try:
        return decode_tree(raw, what=f"tree {tree_id.hex()[:16]}")
    except IntegrityError:
        return None


def _walk(root: bytes, below: dict, have: Callable[[bytes, int], bool],
          read_tree: Callable[[bytes], bytes | None]) -> None:
    """Fill ``below`` for ``root`` and every node under it (post-order, iteratively)."""
    stack: list[tuple[bytes, list[Entry] | None, bool]] = [(root, None, False)]
    while stack:
        tree_id, nodes, expanded = stack.pop()
        if tree_id in below:
            continue
        if not expanded:
            nodes = _nodes(tree_id, have, read_tree)
            if nodes is None:
                below[tree_id] = [("", "folder", 0)]
                continue
            stack.append((tree_id, nodes, True))
            stack.extend((c.subtree, None, False) for c in nodes
                         if c.type == DIR and c.subtree is not None and c.subtree not in below)
            continue
        lost: list[tuple[str, str, int]] = []
        for child in nodes or ():
            gone = len({c for c in child.chunks if c and not have(c, KIND_DATA)})
            if gone:
                lost.append((child.name, "file", gone))
            if child.type == DIR and child.subtree is not None:
                lost.extend((f"{child.name}/{rel}" if rel else child.name, kind, blobs)
                            for rel, kind, blobs in below[child.subtree])
        below[tree_id] = lost
