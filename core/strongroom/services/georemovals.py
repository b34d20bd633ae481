"""What the primary removed on purpose: the only objects replication deletes on the geo secondary.

An object can leave the primary's storage by accident (a disk fault, an operator, someone
with storage access) as well as by a prune, a repair or a deletion.  Replication
(:mod:`.replication`) must never take the first for the second: the secondary's copy is
then the one intact copy, the one ``vault repair`` heals from (:mod:`.heal`,
:mod:`.copyback`).  :meth:`PrimaryRecords.judge` sorts the objects the secondary holds and
the primary no longer does into those the primary's *authenticated* records say were
removed on purpose (``delete``) and the others (``keep``: missing on the primary), by the
rule the rollback check (:mod:`.head`) and the copy-back (:mod:`.copyback`) use:

- **Tracked documents** (point headers, key slots, and versions of the settings, items,
  policies and point statuses): removed on purpose only when the merged vault heads carry
  its tombstone (written *before* a prune or a deletion removes it), or, for a version,
  when a head lists a newer version of the same document (superseded), or, for a point
  status, when its point header has a tombstone.  One that a head lists without a tombstone
  is lost; one no head lists and no tombstone names cannot be told from a loss (a
  tombstone older than :data:`~.head.TOMBSTONE_DAYS` days): kept.  Deleting heads never
  makes more deletable (tombstones cannot be forged, only lost).
- **Index files**: removed on purpose when the newest index generation of the heads (which
  only prune, rebuild-index and repair write, each after removing index files) does not
  list it and it is one the rollback check would call replayed were it back: ``retired``,
  or named before the generation's ``floor`` less :data:`~.head.INDEX_SKEW`.  One written
  since (or listed) is lost.  While a pack is kept as missing on the primary, no index file
  is deleted either: the secondary's copies may be the only ones naming its blobs, which a
  repair looks up there (:class:`~.heal.SecondaryCopies`).
- **Packs**: removed on purpose only when no index file on the primary names it (each read
  and authenticated by the envelope; after a prune's sweep, a repair or rebuild-index the
  index names no pack they removed), no index file is lost or unreadable on the primary
  (a lost one may have named it), and every blob the primary's points need is in the
  primary's index (their trees walked, :func:`~strongroom.engine.reachable.reachable`: a
  repair that could not heal a lost pack rewrites the index without its blobs, which the
  points still need; a tree that cannot be read keeps every pack too).  A pack the primary's
  index still names, or whose blobs it may need, is *missing* on the primary.  Replication
  adds its own rule: no pack is deleted in a run in which the secondary holds a point
  header the primary lacks (``packs=False``: a pack the index names is missing, the others
  wait, unwalked).
- **Data keys** are never removed on purpose: kept.

Reads the primary only (its heads and, when packs are in question, its index files);
writes nothing.  A record that cannot be read keeps everything it would have decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ..errors import IntegrityError, ObjectNotFound, StorageError
from ..engine.reachable import reachable
from ..models import HEAD_TRACKED, INDEX_NAME, IndexGeneration, time_of
from ..repository.index import Index
from ..repository.indexstate import INDEX_PREFIX
from .head import INDEX_SKEW, HeadView
from .points import POINT_PREFIX
from .pointstatus import STATUS_PREFIX

if TYPE_CHECKING:
    from .head import HeadService

__all__ = ["JUDGED", "PrimaryRecords", "Verdict"]

#: The folders whose objects are deleted on the secondary only as :meth:`PrimaryRecords.judge` says.
JUDGED = (POINT_PREFIX, STATUS_PREFIX, "items/", "policies/", "settings/", "keys/", "datakeys/", INDEX_PREFIX, "data/")
#: Tracked folders of which a head lists every object (the others: each folder's newest).
_EVERY = (POINT_PREFIX, "keys/")


@attrs.frozen
class Verdict:
    """Of the objects judged: those removed on purpose, and those kept (missing on the primary)."""

    delete: frozenset[str] = frozenset()
    keep: frozenset[str] = frozenset()
    #: Packs neither proven removed nor missing (``packs=False``): their deletion waits.
    wait: frozenset[str] = frozenset()


def keep_all(names: Iterable[str]) -> Verdict:
    """The verdict without the primary's records: nothing is proven removed."""
    return Verdict(keep=frozenset(names))


@attrs.define
class PrimaryRecords:
    """The primary's authenticated records, read through its :class:`~.head.HeadService`."""

    heads: HeadService

    def judge(self, gone: Iterable[str], packs: bool = True) -> Verdict:
        """Sort ``gone`` (objects of :data:`JUDGED` folders the secondary holds and the
        primary lacks) by the module docstring's rule; with ``packs`` false, packs are only
        told missing (named by the index) or left to ``wait``."""
        names = sorted(set(gone))
        try:
            view = self.heads.read()
        except (StorageError, IntegrityError, ObjectNotFound):
            return keep_all(names)
        delete = {n for n in names if HEAD_TRACKED.fullmatch(n) and _tracked_removed(n, view)}
        delete |= {n for n in names if n.startswith(INDEX_PREFIX) and _index_removed(n, view.index)}
        lost_index = any(n.startswith(INDEX_PREFIX) and n not in delete for n in names)
        candidates = [n for n in names if n.startswith("data/")]
        wait: set[str] = set()
        index = self._index() if candidates and not lost_index else None
        if index is not None:
            named = index.pack_ids()
            unnamed = {n for n in candidates if n.rsplit("/", 1)[-1] not in named}
            if not packs:
                wait = unnamed
            elif self._needs_only(index):
                delete |= unnamed
        if any(n.startswith("data/") and n not in delete and n not in wait for n in names):
            delete -= {n for n in names if n.startswith(INDEX_PREFIX)}  # they may name what a repair heals from
        return Verdict(frozenset(delete), frozenset(names) - frozenset(delete) - wait, frozenset(wait))

    def _index(self) -> Index | None:
        """The primary's index, from its index files; None if one cannot be read."""
        repo = self.heads.repo
        index = Index()
        try:
            files = sorted(n for n in repo.store.list(INDEX_PREFIX) if INDEX_NAME.fullmatch(n))
            for _, entries in repo.read_index_files(files):
                if isinstance(entries, IntegrityError):
                    return None
                index.add(entries)
        except (StorageError, IntegrityError):
            return None
        return index

    def _needs_only(self, index: Index) -> bool:
        """Whether every blob the primary's points need is in ``index`` (False when a point
        header or tree cannot be read): a lost blob may be only in a pack gone from it."""
        repo = self.heads.repo
        try:
            headers = [n for n in repo.list_names(POINT_PREFIX) if HEAD_TRACKED.fullmatch(n)]
            roots = [bytes.fromhex(doc["root"]) for _, doc in repo.get_documents(headers)]
            needed = reachable(repo, roots, index=index)
        except (StorageError, IntegrityError, KeyError, TypeError, ValueError):
            return False
        return not index.missing(needed)


def _tracked_removed(name: str, view: HeadView) -> bool:
    """Whether tracked document ``name`` was removed on purpose (see the module docstring)."""
    if not view.serial:
        return False  # no readable head: nothing is proven
    if name in view.removed:
        return True
    if name.startswith(STATUS_PREFIX):
        parts = name.split("/")
        if len(parts) == 4 and f"{POINT_PREFIX}{parts[1]}/{parts[2]}" in view.removed:
            return True  # removed with its point
    if name in view.objects or name.startswith(_EVERY):
        return False
    folder = name.rpartition("/")[0] + "/"
    return any(other.startswith(folder) and other.rpartition("/")[0] + "/" == folder and other > name
               for other in view.objects)


def _index_removed(name: str, index: IndexGeneration | None) -> bool:
    """Whether index file ``name`` was removed by a prune, rebuild-index or repair."""
    if index is None or not INDEX_NAME.fullmatch(name) or name in index.files:
        return False
    if name in index.retired:
        return True
    try:
        return time_of(name) < time_of(index.floor) - INDEX_SKEW
    except (ValueError, OverflowError):
        return False
