"""Verify a vault: its structure, and with ``read_data`` every byte of every pack on storage.

Structure (always in full): every tree node reachable from a point is indexed, is a
tree, decrypts and parses; every chunk a tree references is in the index; every pack
the index names exists on storage.  Packs on storage that no index names are notes.

Trailers (every pack not read whole, so every pack without ``read_data``): the pack's
trailer is read alone (:func:`.packscan.check_trailer`: its size, then a ranged read of
its tail) and opened.  The trailer is sealed under its pack's id and accounts for every
byte before it, so a pack whose trailer opens and agrees with the index has the size the
index says and is the vault's own pack of that name: a pack swapped with another,
replaced, cut or grown is a problem without reading its blobs (a blob damaged inside an
intact pack needs ``read_data``).

Data: every pack on storage is read whole (or the subset the caller selects), not only
the packs the index chooses: packs no index names (an interrupted backup's) and packs
holding second copies of blobs (two backups that stored the same data at once) too.
Each blob of each pack is opened and re-hashed and the trailer checked against the pack
and the index (:mod:`.packscan`); the copies are then weighed as a repair would
(:func:`.leanplan.lean_plan`, which holds a few bytes per blob until every pack is
read).  Problems: every damaged copy, even one with an intact copy elsewhere (the vault
has lost redundancy), a damaged trailer, a trailer that contradicts the index.  Notes:
unindexed packs and packs of extra copies.  A damaged blob with no intact copy is
reported with the recovery points and files that need it
(found by a second walk of the trees, only when some blob is damaged: nothing per blob
is held while the packs are read, so memory does not grow with the number of files).

Elsewhere (``elsewhere``, with ``read_data``): for a damaged blob with no intact copy here,
and for a pack the index names that is missing from storage, ``elsewhere(blobs)`` gives
the text the problem ends with: whether another copy of the vault (a geo secondary,
:mod:`strongroom.services.heal`) holds them intact.

With ``read_data``, the packs of a local vault are read by worker processes
(:mod:`.packforks`) when that pays: forked before the walk's thread starts.

The walk of the trees runs in a thread of its own beside the rest (the packs' trailers or
data are read meanwhile): it holds the interpreter, the reading threads mostly do not, so
on two cores it costs little wall time.  Its problems come first in the report, as if it
had run first.  A tree node's chunks are checked against the index in one batch.  The
cyclic garbage collector runs less often meanwhile (:mod:`.gcquiet`), as during a backup.

Reads only; writes nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterable

import attrs

from ..catalog.entry import DIR
from ..catalog.tree import decode_tree
from ..errors import IntegrityError, ObjectNotFound
from ..models import RecoveryPoint
from ..processes import cpus
from ..repository.envelope import KIND_TREE
from ..repository.pack import pack_name
from ..repository.repository import Repository
from ..allocator import keep_freed_top, limit_retained_memory
from .gcquiet import quiet_gc
from .packforks import PackCheckers, can_fork
from .packscan import scan_packs, scan_trailers
from .leanplan import lean_plan
from .repair import CopyPlan

if TYPE_CHECKING:
    from ..repository.indextables import PackEntries

__all__ = ["VerifyReport", "VerifyWithHead", "Verifier"]

#: Damaged blobs name at most this many (point, path) pairs that need them.
USERS_SHOWN = 3
#: With ``read_data``, each arena keeps this much freed memory at its top: a few of the
#: pieces the reading threads read (:data:`.packscan.PIECE`), which are then not faulted
#: in afresh each time (:func:`strongroom.allocator.keep_freed_top`).
KEEP_FREED = 4 * 1024 * 1024
#: With ``read_data``, packs are read by worker processes (:mod:`.packforks`) when the
#: index names at least this many bytes: below that, forking costs more than it saves.
FORK_FROM_BYTES = 64 * 1024 * 1024


@attrs.frozen
class VerifyReport:
    problems: tuple[str, ...]
    points: int
    trees: int
    packs: int
    packs_read: int
    bytes_read: int
    notes: tuple[str, ...] = ()
    subset: str | None = None
    unreferenced_packs: int = 0
    duplicate_packs: int = 0
    trailers_read: int = 0
    foreign_objects: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["ok"] = self.ok
        return doc


@attrs.frozen
class VerifyWithHead(VerifyReport):
    """A verify report with what the vault head's check found (its lines are problems
    too): ``rollback``, a :class:`~strongroom.services.head.Rollback`."""

    rollback: object = None


class Verifier:
    def __init__(
        self,
        repo: Repository,
        *,
        threads: int = 2,
        processes: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.problems: list[str] = []
        self.notes: list[str] = []
        self._threads = threads
        if processes is None:
            processes = cpus() if cpus() > 1 else 0
        self._processes = processes
        self._progress = progress or (lambda message: None)

    def run(
        self,
        points: Iterable[RecoveryPoint],
        *,
        read_data: bool,
        select: Callable[[set[str]], list[str]] | None = None,
        subset: str | None = None,
        on_storage: set[str] | None = None,
        elsewhere: Callable[[list[bytes]], str] | None = None,
    ) -> VerifyReport:
        """Check the structure, the trailers of the packs not read whole, and with
        ``read_data`` the packs ``select`` picks from those on storage (default: all);
        ``subset`` names the selection in the report.  ``on_storage``: the ids of the
        packs on storage, when the caller has listed them already; ``elsewhere``: another
        copy of the vault's, asked of what is damaged or missing (see the module docstring)."""
        points = list(points)
        if read_data:
            limit_retained_memory()  # pieces of packs and blobs read and freed one after the other (..allocator)
            keep_freed_top(KEEP_FREED)
        self._progress("checking trees")
        tree_problems: list[str] = []
        stop = threading.Event()
        by_pack = self.repo.index.pack_entries()  # each pack's entries built as it is checked
        # index entries, trees' entries, pack checks by the hundred thousand: collect less often (.gcquiet)
        # the packs' checkers are forked first: before this process starts a thread of its own
        with self._checkers(read_data, by_pack) as checkers, quiet_gc(), \
                ThreadPoolExecutor(1, thread_name_prefix="verify-trees") as walker:
            walk = walker.submit(self._check_trees, points, problems=tree_problems, stop=stop)
            try:
                report = self._check_packs(points, walk, by_pack, read_data=read_data, select=select,
                                           subset=subset, on_storage=on_storage, elsewhere=elsewhere,
                                           checkers=checkers)
            except BaseException:
                stop.set()
                raise
        self.problems[:0] = tree_problems  # the trees' problems first, as when they were checked first
        return attrs.evolve(report, problems=tuple(self.problems), trees=walk.result())

    def _checkers(self, read_data: bool,
                  by_pack: PackEntries) -> contextlib.AbstractContextManager[PackCheckers | None]:
        """Worker processes reading the packs (:mod:`.packforks`): with ``read_data``, more
        than one process allowed, a local store, and at least :data:`FORK_FROM_BYTES` indexed."""
        if not read_data or self._processes < 2 or not can_fork(self.repo):
            return contextlib.nullcontext()
        if by_pack.total_length(self.repo.index.named_pack_ids()) < FORK_FROM_BYTES:
            return contextlib.nullcontext()
        return PackCheckers(self.repo, self._processes, by_pack)

    def _check_packs(self, points: list[RecoveryPoint], walk, by_pack: PackEntries, *, read_data: bool,
                     select: Callable[[set[str]], list[str]] | None, subset: str | None,
                     on_storage: set[str] | None, elsewhere: Callable[[list[bytes]], str] | None,
                     checkers: PackCheckers | None = None) -> VerifyReport:
        """What :meth:`run` checks beside the walk of the trees (``walk``, a future: its
        result is needed before damaged blobs are reported); ``by_pack``: each pack's index entries."""
        if on_storage is None:
            on_storage = self.repo.pack_ids_on_storage()
        indexed = self.repo.index.named_pack_ids()
        ask = elsewhere if read_data else None
        for pack_id in sorted(indexed - on_storage):
            where = ask([e.blob_id for e in by_pack.get(pack_id, ())]) if ask is not None else ""
            self.problems.append(f"{pack_name(pack_id)}: named by the index but missing from storage{where}")
        packs_read = bytes_read = duplicates = 0
        todo: list[str] = []
        if read_data:
            todo = select(on_storage) if select is not None else sorted(on_storage)
        rest = on_storage.difference(todo)
        unopened: set[str] = set()
        for pack_id, problems in scan_trailers(self.repo, rest, by_pack, threads=self.repo.io_threads,
                                               progress=self._progress):
            self.problems.extend(problems)
            if problems:
                unopened.add(pack_id)
        unindexed = on_storage - indexed
        for pack_id in sorted(unindexed - unopened):  # a pack whose trailer does not open is not adopted
            self.notes.append(
                f"{pack_name(pack_id)}: in no index (an interrupted backup's, or one a damaged index file named):"
                " the next backup adopts it; 'strongroom vault repair' re-indexes every pack"
            )
        if read_data:
            self._progress("reading data")
            checks = scan_packs(self.repo, todo, by_pack, threads=self._threads, progress=self._progress,
                                checked_by=checkers.check if checkers is not None else None)
            plan = lean_plan(checks, self.repo.index.lookup)
            walk.result()  # the second walk, for damaged blobs' users, after the first
            self._report_data(plan, points, partial=subset is not None, elsewhere=elsewhere)
            packs_read, bytes_read = plan.packs_read, plan.bytes_read
            duplicates = len(plan.extra_by_pack())
        return VerifyReport(
            (), len(points), 0, len(on_storage), packs_read, bytes_read,
            tuple(self.notes), subset, len(unindexed), duplicates, len(rest),
        )

    def _report_data(self, plan: CopyPlan, points: list[RecoveryPoint], *, partial: bool,
                     elsewhere: Callable[[list[bytes]], str] | None = None) -> None:
        self.problems.extend(plan.problems)
        users_of = self._users(points, {d.entry.blob_id for d in plan.damaged}) if plan.damaged else {}
        for damage in plan.damaged:
            blob = damage.entry.blob_id
            text = damage.describe()
            intact = plan.available.get(blob)
            used = self.repo.index.lookup(blob)
            uses_damaged = used is not None and used.pack_id == damage.entry.pack_id
            users = ", ".join(users_of.get(blob) or ["no recovery point"])
            if intact is not None:
                text += (f"; an intact copy is in {pack_name(intact.pack_id)}:"
                         " 'strongroom vault repair --apply' restores the redundancy")
                if uses_damaged:
                    text += f"; until then the index uses the damaged copy, needed by: {users}"
            else:
                text += f"; no intact copy{' among the packs read' if partial else ''}"
                text += elsewhere([blob]) if elsewhere is not None else ""
                text += f"; needed by: {users}"
            self.problems.append(text)
        counts = plan.blob_counts
        for pack_id, extra in sorted(plan.extra_by_pack().items()):
            self.notes.append(
                f"{pack_name(pack_id)}: {extra} of its {counts.get(pack_id, extra)} blob(s) are extra copies of"
                " blobs stored in other packs (two backups stored the same data at once); prune removes them"
            )

    def _check_trees(self, points: list[RecoveryPoint], wanted: set[bytes] | None = None, *,
                     problems: list[str] | None = None, stop: threading.Event | None = None) -> int:
        """Check the trees of ``points`` (the number of trees read), appending problems to
        ``problems``; with ``wanted``, only note in :attr:`_found` a few ``point path`` that
        need each wanted blob.  Ends early once ``stop`` is set."""
        seen: set[bytes] = set()
        users: defaultdict[bytes, list[str]] = defaultdict(list)
        if wanted is not None:
            self._found = users
        problems = [] if problems is None else problems
        for point in points:
            label = f"point {point.short_id} ({point.item_name})"
            stack = [(bytes.fromhex(point.root), "/")]
            while stack:
                if stop is not None and stop.is_set():
                    return len(seen)
                tree_id, path = stack.pop()
                if tree_id in seen:
                    continue
                seen.add(tree_id)
                entry = self.repo.index.lookup(tree_id)
                if entry is None:
                    problems.append(f"{label}: tree of {path} is missing from the index")
                    continue
                if wanted is not None and tree_id in wanted:
                    users[tree_id].append(f"{label} {path}")
                try:
                    if entry.kind != KIND_TREE:
                        raise IntegrityError(what=f"tree of {path}", reason="blob is not a tree")
                    nodes = decode_tree(self.repo.get_blob(tree_id), what=f"tree of {path}")
                except (IntegrityError, ObjectNotFound) as exc:
                    problems.append(f"{label}: tree of {path}: {exc}")
                    continue
                # one search of the index for the node's chunks (holes of disk images: nothing stored)
                absent = self.repo.index.missing(c for child in nodes for c in child.chunks if c) \
                    if wanted is None else set()
                for child in nodes:
                    child_path = path.rstrip("/") + "/" + child.name
                    if child.type == DIR and child.subtree is not None:
                        stack.append((child.subtree, child_path))
                    for chunk in child.chunks:
                        if not chunk:
                            continue
                        if wanted is not None:
                            if chunk in wanted and len(users[chunk]) < USERS_SHOWN:
                                users[chunk].append(f"{label} {child_path}")
                        elif chunk in absent:
                            problems.append(f"{label}: {child_path}: chunk {chunk.hex()[:16]} is missing")
        return len(seen)

    def _users(self, points: list[RecoveryPoint], blobs: set[bytes]) -> dict[bytes, list[str]]:
        """A few ``point path`` that need each of ``blobs`` (a second walk of the trees)."""
        self._check_trees(points, blobs)
        return self._found
