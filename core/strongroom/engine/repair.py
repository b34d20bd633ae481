"""Repairing packs and the index: an intact copy for every blob, damaged packs moved aside.

:func:`plan_copies` decides from pack checks (:mod:`.packscan`) which copy of each blob
the index will name: an intact one, in a sound pack when there is one, the copy the
current index names first when it qualifies, else the pack with the smallest id.  A
blob whose only intact copies are in damaged packs is *rescued* (copied out into a new
pack).  A blob with no intact copy anywhere is *lost* here; the caller may heal it from
elsewhere.  The plan is a pure function of its inputs: verify reports from it, repair
and rebuild-index apply it.

:func:`apply_copies` applies a plan.  Writes, in this order (each step calls
``check()`` first, so a lost lease stops it): the rescued blobs into new packs with
their index files; the healed blobs, likewise; one index file naming the chosen copy of
every other blob, then one naming the other intact copies in sound packs (prune removes
those later as duplicates; listing them keeps their packs out of a backup's adoption);
each damaged pack moved aside (:func:`move_aside`; one larger than any pack can be,
:data:`~strongroom.repository.pack.MAX_PACK_SIZE`, is not a pack strongroom wrote and stays
where it is, named by every verify); then the index files that existed
before: intact ones deleted, damaged ones moved aside.  An interrupted run leaves old
index files that may name a pack already moved aside: verify reports it and running the
repair again finishes it.  Nothing damaged is deleted: it goes under
:data:`QUARANTINE_PREFIX` with its name kept.  Knows nothing of items or points.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import attrs

from ..errors import ObjectLocked, ObjectNotFound
from ..repository import maintenance
from ..repository.index import Index
from ..repository.pack import MAX_PACK_SIZE, IndexEntry, pack_name
from .packscan import BlobDamage, PackCheck

if TYPE_CHECKING:
    from ..repository.repository import Repository
    from ..storage import Store

__all__ = ["QUARANTINE_PREFIX", "CopyPlan", "CopyResult", "apply_copies", "move_aside", "plan_copies"]

#: Damaged objects are moved under this prefix, keeping their names.
QUARANTINE_PREFIX = "quarantine/"


@attrs.frozen
class CopyPlan:
    """Which copy of each blob the index names, and what is damaged (see the module doc)."""

    available: dict[bytes, IndexEntry]  # blob -> the intact copy it will be read from
    extra: tuple[IndexEntry, ...]  # other intact copies, in sound packs
    damaged: tuple[BlobDamage, ...]  # every damaged copy found
    quarantine: frozenset[str]  # damaged packs (a blob or the trailer)
    problems: tuple[str, ...]  # pack-level damage and index/trailer disagreements
    blob_counts: dict[str, int]  # pack -> blobs found in it
    packs_read: int = 0
    bytes_read: int = 0

    @property
    def chosen(self) -> list[IndexEntry]:
        """The copies the new index names as they are (in sound packs)."""
        return [e for e in self.available.values() if e.pack_id not in self.quarantine]

    @property
    def rescue(self) -> list[IndexEntry]:
        """Intact copies inside damaged packs that must be copied out first."""
        return [e for e in self.available.values() if e.pack_id in self.quarantine]

    @property
    def lost(self) -> frozenset[bytes]:
        """Blobs with a damaged copy and no intact one among the packs read."""
        return frozenset(d.entry.blob_id for d in self.damaged) - self.available.keys()

    def extra_by_pack(self) -> dict[str, int]:
        """pack -> number of its blobs that are extra copies of blobs chosen elsewhere."""
        return dict(Counter(e.pack_id for e in self.extra))

    @property
    def changes(self) -> bool:
        """Whether applying the plan changes anything beyond rewriting the index."""
        return bool(self.quarantine or self.damaged)


def plan_copies(checks: Iterable[PackCheck], current: Callable[[bytes], IndexEntry | None]) -> CopyPlan:
    """Choose a copy of every blob found in ``checks``; ``current(blob)`` is the entry
    the index names now (preferred when it is intact and in a sound pack)."""
    copies: dict[bytes, list[IndexEntry]] = {}
    damaged: list[BlobDamage] = []
    unsound: set[str] = set()
    problems: list[str] = []
    counts: dict[str, int] = {}
    packs_read = bytes_read = 0
    for check in checks:
        problems.extend(check.disagreements)
        if check.problem is not None:
            problems.append(check.problem)
        if check.missing:
            continue
        packs_read += 1
        bytes_read += check.size
        counts[check.pack_id] = len(check.entries)
        if not check.sound:
            unsound.add(check.pack_id)
        damaged.extend(check.damaged)
        for entry in check.intact():
            copies.setdefault(entry.blob_id, []).append(entry)
    available: dict[bytes, IndexEntry] = {}
    extra: list[IndexEntry] = []
    for blob, found in copies.items():
        if len(found) > 1:  # which copy the index names matters only among several
            now = current(blob)
            found.sort(key=lambda e: (e.pack_id in unsound, e != now, e.pack_id, e.offset))
        available[blob] = found[0]
        seen = {found[0].pack_id}
        for entry in found[1:]:
            if entry.pack_id not in unsound and entry.pack_id not in seen:
                extra.append(entry)
                seen.add(entry.pack_id)
    return CopyPlan(available, tuple(extra), tuple(damaged), frozenset(unsound), tuple(problems), counts,
                    packs_read, bytes_read)


@attrs.frozen
class CopyResult:
    """What :func:`apply_copies` wrote and moved."""

    index_files_written: int = 0
    blobs_rescued: int = 0
    blobs_healed: int = 0
    packs_moved: tuple[str, ...] = ()
    index_files_removed: int = 0
    moved: tuple[str, ...] = ()  # every object moved aside, by its old name


def move_aside(store: Store, name: str, limit: int | None = None) -> str | None:
    """Move object ``name`` under :data:`QUARANTINE_PREFIX`; its new name (None if it was
    already gone, or is larger than ``limit`` bytes: then it stays where it is, because
    moving it would hold it in memory, and verify keeps naming it).  The copy is written
    before the original is deleted."""
    try:
        if limit is not None and store.size(name) > limit:
            return None
        data = store.get(name)
    except ObjectNotFound:
        return None
    new_name = QUARANTINE_PREFIX + name
    store.put(new_name, data)
    try:
        store.delete(name)
    except ObjectLocked:  # object lock keeps it where it is: so does the copy
        store.delete(new_name)
        return None
    return new_name


def apply_copies(
    repo: Repository,
    plan: CopyPlan,
    healed: Mapping[bytes, tuple[int, bytes]],
    *,
    old_index_files: Iterable[str],
    damaged_index_files: Iterable[str] = (),
    check: Callable[[], None] = lambda: None,
) -> CopyResult:
    """Apply ``plan`` (see the module docstring); ``healed`` maps blob ids to (kind,
    plaintext) already checked against their ids.  The repository's in-memory index is
    replaced by one holding only what this wrote: the caller drops it afterwards."""
    repo.index = Index()  # deduplication must not see the copies being replaced
    written = 0
    rescued: list[IndexEntry] = []
    if plan.rescue:
        check()
        rescued = maintenance.copy_blobs(repo, plan.rescue)
        written += len({e.pack_id for e in rescued})
    if healed:
        check()
        with repo.writer() as writer:
            for blob, (kind, data) in sorted(healed.items()):
                writer.add(kind, data, blob)
        written += writer.packs_written
    check()
    for entries in (plan.chosen, list(plan.extra)):
        if entries:
            repo.write_index(entries)
            written += 1
    moved: list[str] = []
    for pack_id in sorted(plan.quarantine):
        check()
        if move_aside(repo.store, pack_name(pack_id), MAX_PACK_SIZE) is not None:
            moved.append(pack_name(pack_id))
    packs_moved = tuple(moved)
    damaged_index = set(damaged_index_files)
    removed = 0
    for name in sorted(old_index_files):
        check()
        if name in damaged_index:
            if move_aside(repo.store, name) is not None:
                moved.append(name)
        else:
            repo.store.delete(name)
        removed += 1
    return CopyResult(written, len(rescued), len(healed), packs_moved, removed, tuple(moved))
