"""Prune's decisions, apart from the doing: what to mark, what a sweep deletes or repacks.

:class:`PackState` is the vault's index as stored (every index file with its entries),
grouped by pack, with each pack's age and the set of *live* blobs (those some recovery
point needs).  :func:`plan_mark` and :func:`plan_sweep` are pure functions of it, so a
dry run and a real run decide the same way.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable, Iterable

import attrs

from ..errors import IntegrityError
from ..repository.index import Index
from ..repository.pack import IndexEntry
from .gcstate import Mark
from .reachable import reachable

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["PackState", "SweepPlan", "plan_mark", "plan_sweep"]


@attrs.define
class PackState:
    """Index files, entries by pack, pack ages and live blobs."""

    files: list[tuple[str, list[IndexEntry]]]
    packs: dict[str, dict[bytes, IndexEntry]]
    pack_time: dict[str, dt.datetime]
    live: set[bytes] = attrs.field(factory=set)

    @classmethod
    def from_files(cls, results: Iterable[tuple[str, list[IndexEntry] | IntegrityError]],
                   time_of: Callable[[str], dt.datetime]) -> PackState:
        """From :meth:`Repository.read_index_files`; a damaged index file stops prune."""
        files: list[tuple[str, list[IndexEntry]]] = []
        packs: dict[str, dict[bytes, IndexEntry]] = {}
        pack_time: dict[str, dt.datetime] = {}
        for name, entries in results:
            if isinstance(entries, IntegrityError):
                raise IntegrityError(what=name, reason=f"{entries.fields.get('reason')}; run 'strongroom vault rebuild-index' before pruning")
            if not entries:
                continue
            try:
                written = time_of(name)
            except ValueError:  # a name without a time: take it as new, never old enough to mark
                written = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
            files.append((name, entries))
            for entry in entries:
                packs.setdefault(entry.pack_id, {}).setdefault(entry.blob_id, entry)
                if entry.pack_id not in pack_time or written < pack_time[entry.pack_id]:
                    pack_time[entry.pack_id] = written
        return cls(files, packs, pack_time)

    def index(self) -> Index:
        index = Index()
        for _, entries in self.files:
            index.add(entries)
        return index

    def find_live(self, repo: Repository, roots: Iterable[bytes]) -> None:
        self.live = reachable(repo, roots, index=self.index())


def _bytes(entries: Iterable[IndexEntry]) -> int:
    return sum(e.length for e in entries)


def plan_mark(state: PackState, young_limit: dt.datetime, threshold: float,
              pending: set[tuple[str, bytes]]) -> tuple[dict[str, frozenset[bytes]], dict[str, frozenset[bytes]]]:
    """(garbage, duplicates) to mark, as pack -> blobs.

    *Garbage*: blobs no point needs.  *Duplicates*: extra copies of needed blobs (two
    backups that stored the same new blob at once); the copy in the oldest pack is kept.
    Only packs written at or before ``young_limit`` are marked, and only where all of the
    pack, or at least ``threshold`` of its bytes, would go.  (pack, blob) pairs in
    ``pending`` are marked already.
    """
    garbage: dict[str, frozenset[bytes]] = {}
    duplicates: dict[str, frozenset[bytes]] = {}
    kept: set[bytes] = set()
    for pack in sorted(state.packs, key=lambda p: (state.pack_time[p], p)):
        entries = state.packs[pack]
        dead = [e for b, e in entries.items() if b not in state.live]
        extra = [e for b, e in entries.items() if b in state.live and b in kept]
        kept.update(b for b in entries if b in state.live)
        if state.pack_time[pack] > young_limit:
            continue
        new_dead = frozenset(e.blob_id for e in dead if (pack, e.blob_id) not in pending)
        new_extra = frozenset(e.blob_id for e in extra if (pack, e.blob_id) not in pending)
        if not new_dead and not new_extra:
            continue
        going = dead + extra
        if len(going) == len(entries) or _bytes(going) >= threshold * _bytes(entries.values()):
            if new_dead:
                garbage[pack] = new_dead
            if new_extra:
                duplicates[pack] = new_extra
    return garbage, duplicates


@attrs.frozen
class SweepPlan:
    """Packs to delete, packs to repack (with the blobs to copy out of them)."""

    delete: frozenset[str]
    repack: frozenset[str]
    leftovers: frozenset[str]  # doomed by an interrupted sweep, no longer indexed
    copy: tuple[IndexEntry, ...]
    dead_blobs: int
    bytes_doomed: int

    @property
    def doomed(self) -> frozenset[str]:
        return self.delete | self.repack | self.leftovers


def plan_sweep(mark: Mark, state: PackState, threshold: float, doomed_before: frozenset[str]) -> SweepPlan:
    """What sweeping ``mark`` does now: its blobs that are still unneeded are dead.

    ``doomed_before`` are the packs an interrupted sweep of the same mark had doomed:
    they are finished whatever the threshold says.
    """
    delete: set[str] = set()
    repack: set[str] = set()
    dead_in: dict[str, set[bytes]] = {}
    copies: dict[bytes, int] = {}
    for pack, blobs in mark.duplicates.items():
        for blob in blobs:
            copies[blob] = 0
    for pack, entries in state.packs.items():  # copies of marked duplicates that stay
        for blob in copies.keys() & entries.keys():
            if blob not in mark.duplicates.get(pack, ()):
                copies[blob] += 1
    for pack in set(mark.packs) | set(mark.duplicates) | set(doomed_before):
        entries = state.packs.get(pack)
        if not entries:
            continue
        dead = {b for b in mark.packs.get(pack, ()) if b in entries and b not in state.live}
        dead |= {b for b in mark.duplicates.get(pack, ()) if b in entries and copies.get(b)}
        forced = pack in doomed_before
        if len(dead) == len(entries):
            delete.add(pack)
        elif forced or (dead and _bytes(entries[b] for b in dead) >= threshold * _bytes(entries.values())):
            repack.add(pack)
        else:
            continue
        dead_in[pack] = dead
    doomed = delete | repack
    leftovers = frozenset(doomed_before - set(state.packs))
    keep = [e for pack in sorted(repack) for b, e in state.packs[pack].items() if b not in dead_in[pack]]
    wanted = {e.blob_id for e in keep}
    elsewhere = {b for pack, entries in state.packs.items() if pack not in doomed for b in entries if b in wanted}
    copy = tuple(e for e in keep if e.blob_id not in elsewhere)
    return SweepPlan(
        delete=frozenset(delete), repack=frozenset(repack), leftovers=leftovers, copy=copy,
        dead_blobs=sum(len(d) for d in dead_in.values()),
        bytes_doomed=sum(_bytes(state.packs[p].values()) for p in doomed),
    )
