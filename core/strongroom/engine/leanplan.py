"""The copy plan of every pack read, without holding an index entry per blob meanwhile.

:func:`lean_plan` gives verify what :func:`.repair.plan_copies` gives for the same
checks, as far as verify asks: the problems, every damaged copy, the intact copy of each
damaged blob (``available``), the extra copies (``extra``), the blobs of each pack and
what was read.  ``available`` and ``extra`` hold only the blobs with a damaged copy or
with intact copies in more than one place; repair, which needs the copy of every blob,
keeps :func:`.repair.plan_copies`.

Why: :func:`.repair.plan_copies` keeps every intact entry it is given until all packs
are read, about 330 bytes per blob (an ``IndexEntry``, its id, a list and a dict slot):
16 MiB for the 51,600 blobs of the 2 GiB corpus, the only part of ``verify --read-data``
that grows with the vault while the packs are read.  Here each pack leaves its intact
blobs' ids and places in flat buffers (about 60 bytes per blob); once every pack is read,
one sort finds the blobs held more than once, and only those and the damaged ones are
built again as index entries and weighed by :func:`.repair.plan_copies` itself, so the
choice of copies is the same.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable

import attrs

from ..repository.pack import IndexEntry
from .packscan import PackCheck
from .repair import CopyPlan, plan_copies

__all__ = ["lean_plan"]

_ID = 32  # bytes of a blob id


@attrs.frozen
class _Read:
    """One pack read, its intact entries kept as flat columns."""

    check: PackCheck  # without its entries
    count: int  # blobs found in the pack
    ids: bytes  # the intact blobs' ids, end to end
    places: array  # kind, offset, length, raw length of each intact blob
    key_ids: tuple[bytes, ...]  # the key id of each intact blob, or one for all


def lean_plan(checks: Iterable[PackCheck], current: Callable[[bytes], IndexEntry | None]) -> CopyPlan:
    """:func:`.repair.plan_copies` of ``checks`` as verify uses it (see the module docstring)."""
    reads = [_keep(check) for check in checks]
    damaged = {d.entry.blob_id for r in reads for d in r.check.damaged}
    wanted = damaged | _held_twice(reads)
    plan = plan_copies((_rebuilt(r, wanted) for r in reads), current)
    counts = {r.check.pack_id: r.count for r in reads if not r.check.missing}
    return attrs.evolve(plan, blob_counts=counts)


def _keep(check: PackCheck) -> _Read:
    """``check`` without its intact entries, which are kept as columns (a pack with an
    id of another length, which no vault writes, is kept whole)."""
    intact = check.intact()
    if any(len(e.blob_id) != _ID for e in intact):
        return _Read(check, len(check.entries), b"", array("q"), ())
    places = array("q")
    for e in intact:
        places.extend((e.kind, e.offset, e.length, e.raw_length))
    keys = {e.key_id for e in intact}
    key_ids = tuple(keys) if len(keys) == 1 else tuple(e.key_id for e in intact)
    lean = attrs.evolve(check, entries=tuple(d.entry for d in check.damaged))
    return _Read(lean, len(check.entries), b"".join(e.blob_id for e in intact), places, key_ids)


def _held_twice(reads: list[_Read]) -> set[bytes]:
    """The blob ids with intact copies at more than one place."""
    import numpy as np

    ids = np.frombuffer(b"".join(r.ids for r in reads), dtype=f"S{_ID}")
    if not len(ids):
        return set()
    ids = np.sort(ids)
    twice = ids[1:][ids[1:] == ids[:-1]]
    return {bytes(b).ljust(_ID, b"\0") for b in np.unique(twice)}


def _rebuilt(read: _Read, wanted: set[bytes]) -> PackCheck:
    """The check of ``read`` with its damaged entries and the intact ones in ``wanted``."""
    check, ids, places, keys = read.check, read.ids, read.places, read.key_ids
    if not wanted or not ids:
        return check
    kept = []
    for i in range(len(ids) // _ID):
        blob = ids[i * _ID : (i + 1) * _ID]
        if blob in wanted:
            kind, offset, length, raw = places[4 * i : 4 * i + 4]
            key_id = keys[0] if len(keys) == 1 else keys[i]
            kept.append(IndexEntry(blob, kind, check.pack_id, offset, length, raw, key_id))
    return attrs.evolve(check, entries=check.entries + tuple(kept)) if kept else check
