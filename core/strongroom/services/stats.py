"""Vault statistics (``strongroom stats``), computed from the index and the points' trees.

Three measures, as ``restic stats`` has them:

- ``restore-size``: what restoring every point would write, the sum of the sizes of the
  files, streams and disks of each point (a point's content counted in full however much
  of it other points share; a hard link once, as its first name).
- ``raw``: the plaintext bytes of the unique blobs (content chunks and tree nodes) the
  points reference, each blob counted once: what deduplication leaves.
- ``stored``: the bytes on storage of the packs that hold those blobs (each pack counted
  once, whole: a pack that also holds blobs no point needs counts in full until prune
  repacks it).

Each is given per item and for the whole vault; the vault's ``raw`` and ``stored`` count a
blob or pack once even where several items share it, so they are at most the items' sum.
Only intact, not soft-deleted points are counted.  It reads tree nodes (each once), looks
blobs up in the index and asks the storage for each referenced pack's size; it writes
nothing.  A tree that cannot be read raises IntegrityError, as for prune; a content blob
missing from the index (a disk's holes are not stored) is counted in ``missing_blobs``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable

import attrs

from ..catalog.entry import DIR, DISK, FILE, STREAM
from ..catalog.tree import decode_tree
from ..errors import IntegrityError, ObjectNotFound
from ..repository.envelope import KIND_TREE
from ..repository.pack import pack_name

if TYPE_CHECKING:
    from ..models import RecoveryPoint
    from ..repository.repository import Repository

__all__ = ["MODES", "ItemStats", "StatsReport", "vault_stats"]

MODES = ("restore-size", "raw", "stored")

_SIZED = frozenset({FILE, STREAM, DISK})


@attrs.frozen
class ItemStats:
    """The figures of one item (or, with ``item`` None, of the whole vault)."""

    item: str | None
    points: int
    files: int
    restore_size: int
    blobs: int
    raw_size: int
    packs: int
    stored_size: int
    missing_blobs: int = 0

    def size(self, mode: str) -> int:
        return {"restore-size": self.restore_size, "raw": self.raw_size, "stored": self.stored_size}[mode]

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class StatsReport:
    mode: str
    items: tuple[ItemStats, ...]
    total: ItemStats

    def to_dict(self) -> dict:
        return {"mode": self.mode, "items": [i.to_dict() for i in self.items], "total": self.total.to_dict()}


@attrs.define
class _Walker:
    """Reads each tree node once; remembers each subtree's size and files, and each node's
    chunks and subtrees (not the blobs below it: those are gathered per item)."""

    repo: Repository
    _sizes: dict = attrs.field(factory=dict)  # tree id -> (bytes, files)
    _links: dict = attrs.field(factory=dict)  # tree id -> (subtree ids, chunk ids)

    def size(self, tree_id: bytes) -> tuple[int, int]:
        """The bytes and files of the tree ``tree_id`` and everything below it."""
        if tree_id not in self._sizes:
            self._walk(tree_id)
        return self._sizes[tree_id]

    def blobs(self, roots: Iterable[bytes]) -> set[bytes]:
        """Every blob (tree nodes and chunks) below ``roots``, each once; after :meth:`size`."""
        found: set[bytes] = set()
        stack = list(roots)
        while stack:
            tree_id = stack.pop()
            if tree_id in found:
                continue
            found.add(tree_id)
            subtrees, chunks = self._links[tree_id]
            found.update(chunks)
            stack.extend(t for t in subtrees if t not in found)
        return found

    def _walk(self, root: bytes) -> None:
        # iterative post-order: children first, so deep trees do not recurse
        stack: list[tuple[bytes, list | None]] = [(root, None)]
        while stack:
            tree_id, nodes = stack.pop()
            if tree_id in self._sizes:
                continue
            if nodes is None:
                nodes = self._read(tree_id)
                stack.append((tree_id, nodes))
                stack.extend((n.subtree, None) for n in nodes
                             if n.type == DIR and n.subtree is not None and n.subtree not in self._sizes)
                continue
            size = files = 0
            subtrees, chunks = [], []
            for node in nodes:
                chunks.extend(node.chunks)
                if node.type == DIR and node.subtree is not None:
                    sub_size, sub_files = self._sizes[node.subtree]
                    size, files = size + sub_size, files + sub_files
                    subtrees.append(node.subtree)
                elif node.type in _SIZED:
                    size, files = size + node.size, files + 1
            self._sizes[tree_id] = (size, files)
            self._links[tree_id] = (tuple(subtrees), tuple(chunks))

    def _read(self, tree_id: bytes) -> list:
        entry = self.repo.index.lookup(tree_id)
        what = f"tree {tree_id.hex()[:16]}"
        if entry is None or entry.kind != KIND_TREE:
            raise IntegrityError(what=what, reason="not found in any index" if entry is None else "blob is not a tree")
        return decode_tree(self.repo.read_blob(entry), what=what)


def vault_stats(repo: Repository, points: dict[str, Iterable[RecoveryPoint]], mode: str = "restore-size") -> StatsReport:
    """The statistics of ``points`` (item name -> that item's points), per item and in all."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    walker = _Walker(repo)
    per_item: list[tuple[str, int, int, int, set[bytes]]] = []
    for item, found in points.items():
        count = size = files = 0
        roots = []
        for point in found:
            root = bytes.fromhex(point.root)
            tree_size, tree_files = walker.size(root)
            count, size, files = count + 1, size + tree_size, files + tree_files
            roots.append(root)
        per_item.append((item, count, size, files, walker.blobs(roots)))
    everything: set[bytes] = set().union(*(blobs for *_, blobs in per_item)) if per_item else set()
    ids = sorted(everything)
    located = dict(zip(ids, repo.index.lookup_many(ids)))
    packs = {e.pack_id for e in located.values() if e is not None}
    with ThreadPoolExecutor(repo.io_threads) as pool:
        pack_sizes = dict(zip(sorted(packs), pool.map(lambda p: _pack_size(repo, p), sorted(packs))))

    def figures(name: str | None, count: int, size: int, files: int, blobs: set[bytes]) -> ItemStats:
        entries = [located[b] for b in blobs if located[b] is not None]
        held = {e.pack_id for e in entries}
        return ItemStats(item=name, points=count, files=files, restore_size=size, blobs=len(entries),
                         raw_size=sum(e.raw_length for e in entries), packs=len(held),
                         stored_size=sum(pack_sizes[p] for p in held), missing_blobs=len(blobs) - len(entries))

    items = tuple(figures(*row) for row in per_item)
    total = figures(None, sum(i.points for i in items), sum(i.restore_size for i in items),
                    sum(i.files for i in items), everything)
    return StatsReport(mode=mode, items=items, total=total)


def _pack_size(repo: Repository, pack_id: str) -> int:
    try:
        return repo.store.size(pack_name(pack_id))
    except ObjectNotFound:
        return 0
