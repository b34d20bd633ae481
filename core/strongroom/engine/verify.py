"""Verify a vault: its structure, and with ``read_data`` every byte of every pack.

Structure: every index file decrypts; every recovery-point header decrypts; every
tree node reachable from a point decrypts and parses; every chunk a tree references
is in the index; every pack the index names exists on storage.
Data: every pack is read whole; its trailer must decrypt and agree with the index;
every blob must decrypt and hash to its id.  A damaged blob is reported with the
recovery points and files that need it.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import attrs

from ..catalog.entry import DIR
from ..catalog.tree import decode_tree
from ..errors import IntegrityError, ObjectNotFound
from ..models import RecoveryPoint
from ..repository.envelope import KIND_TREE
from ..repository.pack import pack_name, parse_pack
from ..repository.repository import Repository


@attrs.frozen
class VerifyReport:
    problems: tuple[str, ...]
    points: int
    trees: int
    packs: int
    packs_read: int
    bytes_read: int
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["ok"] = self.ok
        return doc


class Verifier:
    def __init__(
        self,
        repo: Repository,
        *,
        threads: int = 2,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.problems: list[str] = []
        self.notes: list[str] = []
        self._threads = threads
        self._progress = progress or (lambda message: None)
        # blob id -> a few (point, path) that need it, to name what a damaged blob breaks
        self._users: dict[bytes, list[str]] = defaultdict(list)

    def run(self, points: Iterable[RecoveryPoint], *, read_data: bool) -> VerifyReport:
        points = list(points)
        self._progress("checking trees")
        trees = self._check_trees(points)
        on_storage = self.repo.pack_ids_on_storage()
        indexed = self.repo.index.named_pack_ids()
        for pack_id in sorted(indexed - on_storage):
            self.problems.append(f"{pack_name(pack_id)}: named by the index but missing from storage")
        for pack_id in sorted(on_storage - indexed):
            self.notes.append(
                f"{pack_name(pack_id)}: in no index (an interrupted backup, or a damaged index file):"
                " the next backup adopts it; 'strongroom vault rebuild-index' re-reads every pack"
            )
        packs_read = bytes_read = 0
        if read_data:
            self._progress("reading data")
            by_pack = self.repo.index.entries_by_pack()
            todo = sorted(set(by_pack) & on_storage)
            with ThreadPoolExecutor(self._threads) as pool:
                for size in pool.map(lambda p: self._check_pack(p, by_pack[p]), todo):
                    packs_read += 1
                    bytes_read += size
        return VerifyReport(
            tuple(self.problems), len(points), trees, len(on_storage), packs_read, bytes_read,
            tuple(self.notes),
        )

    def _check_trees(self, points: list[RecoveryPoint]) -> int:
        seen: set[bytes] = set()
        for point in points:
            label = f"point {point.short_id} ({point.item_name})"
            stack = [(bytes.fromhex(point.root), "/")]
            while stack:
                tree_id, path = stack.pop()
                if tree_id in seen:
                    continue
                seen.add(tree_id)
                entry = self.repo.index.lookup(tree_id)
                if entry is None:
                    self.problems.append(f"{label}: tree of {path} is missing from the index")
                    continue
                self._users[tree_id].append(f"{label} {path}")
                try:
                    if entry.kind != KIND_TREE:
                        raise IntegrityError(what=f"tree of {path}", reason="blob is not a tree")
                    nodes = decode_tree(self.repo.get_blob(tree_id), what=f"tree of {path}")
                except (IntegrityError, ObjectNotFound) as exc:
                    self.problems.append(f"{label}: tree of {path}: {exc}")
                    continue
                for child in nodes:
                    child_path = path.rstrip("/") + "/" + child.name
                    if child.type == DIR and child.subtree is not None:
                        stack.append((child.subtree, child_path))
                    for chunk in child.chunks:
                        if not chunk:
                            continue  # a hole of a disk image: nothing stored
                        if chunk not in self.repo.index:
                            self.problems.append(f"{label}: {child_path}: chunk {chunk.hex()[:16]} is missing")
                        elif len(self._users[chunk]) < 3:
                            self._users[chunk].append(f"{label} {child_path}")
        return len(seen)

    def _check_pack(self, pack_id: str, indexed: list) -> int:
        name = pack_name(pack_id)
        try:
            data = self.repo.store.get(name)
        except ObjectNotFound:
            self.problems.append(f"{name}: missing")
            return 0
        try:
            trailer = {e.blob_id: e for e in parse_pack(data, pack_id, self.repo.envelope)}
        except IntegrityError as exc:
            self.problems.append(f"{name}: trailer damaged ({exc})")
            trailer = None
        view = memoryview(data)
        for entry in indexed:
            if trailer is not None and trailer.get(entry.blob_id) != entry:
                self.problems.append(f"{name}: index and pack trailer disagree on blob {entry.blob_id.hex()[:16]}")
            try:
                self.repo.open_blob(entry, view[entry.offset : entry.offset + entry.length])
            except IntegrityError as exc:
                users = self._users.get(entry.blob_id) or ["no recovery point"]
                self.problems.append(f"{exc}; needed by: {', '.join(users)}")
        return len(data)
