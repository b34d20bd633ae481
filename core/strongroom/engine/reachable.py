"""Reachability: every blob that recovery points need, found by walking their trees.

A point needs its root tree node, every tree node below it and every content chunk
that a node's entries list.  :func:`reachable` walks the trees breadth-first, reading
each level's nodes concurrently, and each node once however many points share it.

It is used by prune (a blob no point reaches is garbage) and by a backup that must
check what its new point relies on before committing (:mod:`strongroom.engine.gcstate`).
A tree node that cannot be found or read raises IntegrityError: not knowing what a
point needs must stop whatever was about to delete data.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable

from ..catalog.entry import DIR
from ..catalog.tree import decode_tree
from ..errors import IntegrityError
from ..repository.envelope import KIND_TREE

if TYPE_CHECKING:
    from ..repository.index import Index
    from ..repository.repository import Repository

__all__ = ["reachable"]


def _read_node(repo: Repository, index: Index, tree_id: bytes) -> list:
    entry = index.lookup(tree_id)
    if entry is None:
        raise IntegrityError(what=f"tree {tree_id.hex()[:16]}", reason="not found in any index")
    if entry.kind != KIND_TREE:
        raise IntegrityError(what=f"tree {tree_id.hex()[:16]}", reason="blob is not a tree")
    return decode_tree(repo.read_blob(entry), what=f"tree {tree_id.hex()[:16]}")


def reachable(repo: Repository, roots: Iterable[bytes], *, index: Index | None = None) -> set[bytes]:
    """Every blob id (tree nodes and chunks) reachable from the root trees ``roots``.

    Blobs are looked up in ``index`` (default: the repository's).
    """
    index = index if index is not None else repo.index
    found: set[bytes] = set()
    level = sorted(set(roots))
    found.update(level)
    with ThreadPoolExecutor(repo.io_threads) as pool:
        while level:
            following: list[bytes] = []
            for nodes in pool.map(lambda tree_id: _read_node(repo, index, tree_id), level):
                for child in nodes:
                    found.update(child.chunks)
                    if child.type == DIR and child.subtree is not None and child.subtree not in found:
                        found.add(child.subtree)
                        following.append(child.subtree)
            level = following
    return found
