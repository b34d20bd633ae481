"""Checking stored packs: whole (every blob opened and re-hashed), or by their trailers alone.

:func:`check_pack` reads one stored pack whole and says what it holds and what is wrong
with it (a :class:`PackCheck`); :func:`scan_packs` does so for many packs, a few at a
time, in pack-id order.  From a remote store a pack is read with one request.  From a
local one its trailer is read first (as :func:`check_trailer` does) and then its blobs,
in pieces of at most :data:`PIECE` bytes (or one blob): a reading thread then holds a
piece, not a whole pack of 8 MiB mapped and faulted in afresh for every pack.  Pieces
stay below the C allocator's mmap threshold, so where the arenas keep some freed memory
(verify's :func:`strongroom.allocator.keep_freed_top`) they reuse the same pages.  Every
byte is read either way: the trailer accounts for every byte before it.  A pack whose
trailer does not open is then read whole, as from a remote store, so what is found does
not depend on the store.  :func:`check_trailer` reads only a pack's trailer (its size and a
ranged read of its tail, :func:`~strongroom.repository.pack.read_trailer`)
and compares it with the index: what plain ``vault verify`` does for every pack, so a
pack swapped with another, replaced, cut or grown is found without reading its blobs;
:func:`scan_trailers` does so for many packs, ``threads`` at a time.  All are read-only
and know nothing of items or points: verify (:mod:`.verify`) and repair (:mod:`.repair`)
build on them.

What a check finds:

- the pack's blobs, from its own trailer; when the trailer is damaged (bit flip,
  truncation), from the index entries that name the pack (``indexed``), so the intact
  blobs of a pack with a damaged trailer are still found;
- each blob's damage: its sealed bytes are opened (authenticated, decompressed) and the
  plaintext re-hashed against its id; a blob cut short by truncation is damaged too;
- a missing pack, and index entries that disagree with the trailer (another offset,
  length or kind, or a blob the trailer does not list);
- a pack larger than any pack a writer makes (:data:`~strongroom.repository.names.PACK_MAX`):
  it is not read (at most the first 16 MiB are), and every blob the index places in it is
  damaged.

Promises: never raises IntegrityError or ObjectNotFound for a damaged or missing pack
(that is the result); a storage failure (StorageError) is raised.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

import attrs

from ..errors import IntegrityError, ObjectNotFound
from ..repository.envelope import Scratch
from ..repository.pack import IndexEntry, pack_name, parse_pack, read_trailer
from ..storage import capabilities_of
from .progress import Step

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["PIECE", "BlobDamage", "PackCheck", "check_pack", "check_trailer", "scan_packs", "scan_trailers"]

#: From a local store, a pack's blobs are read this many bytes at a time at most (or one
#: blob): below glibc's mmap threshold of 1 MiB (:data:`strongroom.allocator.MMAP_THRESHOLD`).
PIECE = 768 * 1024


@attrs.frozen
class BlobDamage:
    """One damaged copy of a blob: where it is, and why it does not open."""

    entry: IndexEntry
    reason: str

    def describe(self) -> str:
        return f"{pack_name(self.entry.pack_id)} (blob {self.entry.blob_id.hex()[:16]}): {self.reason}"


@attrs.frozen
class PackCheck:
    """What one pack on storage holds and what is wrong with it."""

    pack_id: str
    size: int
    entries: tuple[IndexEntry, ...] = ()
    damaged: tuple[BlobDamage, ...] = ()
    problem: str | None = None  # the pack as a whole: missing, or its trailer damaged
    disagreements: tuple[str, ...] = ()  # index entries that the trailer contradicts
    missing: bool = False

    @property
    def name(self) -> str:
        return pack_name(self.pack_id)

    @property
    def sound(self) -> bool:
        """Nothing in the pack itself is damaged (disagreements are the index's fault)."""
        return self.problem is None and not self.damaged

    def intact(self) -> list[IndexEntry]:
        """The entries of the blobs that opened and hashed to their ids."""
        bad = {d.entry.blob_id for d in self.damaged}
        return [e for e in self.entries if e.blob_id not in bad]


def check_pack(repo: Repository, pack_id: str, indexed: Iterable[IndexEntry] = (), *,
               scratch: Scratch | None = None) -> PackCheck:
    """Read every byte of pack ``pack_id`` and check it; ``indexed`` are the index entries that
    name it (used when its trailer is damaged, and compared with the trailer).  With
    ``scratch`` (a buffer the calling thread reuses), blobs are decrypted into it and
    hashed in the calling thread only."""
    name = pack_name(pack_id)
    indexed = list(indexed)
    if not capabilities_of(repo.store).remote:
        try:
            listed = read_trailer(repo.store, pack_id, repo.envelope)
            size = repo.store.size(name)
        except ObjectNotFound:
            return PackCheck(pack_id, 0, problem=f"{name}: missing from storage", missing=True)
        except IntegrityError:
            pass  # read whole below, which says what is wrong
        else:
            return _check_in_pieces(repo, pack_id, size, listed, indexed, scratch)
    try:
        data = repo.read_whole(name, "pack")
    except ObjectNotFound:
        return PackCheck(pack_id, 0, problem=f"{name}: missing from storage", missing=True)
    except IntegrityError as exc:  # larger than any pack: not read
        reason = exc.fields.get("reason", str(exc))
        entries = _by_offset(indexed)
        return PackCheck(pack_id, 0, tuple(entries), tuple(BlobDamage(e, f"its pack is {reason}") for e in entries),
                         problem=f"{name}: {reason}")
    view = memoryview(data)
    problem = None
    disagreements: list[str] = []
    try:
        entries = parse_pack(data, pack_id, repo.envelope)
    except IntegrityError as exc:
        problem = f"{name}: trailer damaged ({exc.fields.get('reason', exc)})"
        entries = _by_offset(indexed)
    else:
        disagreements = _disagreements(name, entries, indexed)
    damaged = []
    for entry in entries:
        try:
            repo.open_blob(entry, view[entry.offset : entry.offset + entry.length], scratch=scratch,
                           threaded=scratch is None)
        except IntegrityError as exc:
            damaged.append(BlobDamage(entry, exc.fields.get("reason", str(exc))))
    return PackCheck(pack_id, len(data), tuple(entries), tuple(damaged), problem, tuple(disagreements))


def _check_in_pieces(repo: Repository, pack_id: str, size: int, listed: list[IndexEntry],
                     indexed: list[IndexEntry], scratch: Scratch | None) -> PackCheck:
    """:func:`check_pack` of a pack of ``size`` bytes whose trailer opened (``listed``:
    its entries), its blobs read in pieces of at most :data:`PIECE` bytes.  A piece cut
    short (the pack shrank since its trailer was read) damages the blobs it lacks."""
    name = pack_name(pack_id)
    damaged: list[BlobDamage] = []
    threaded = scratch is None
    first = 0
    while first < len(listed):
        start = listed[first].offset
        last = first + 1
        while last < len(listed) and listed[last].offset + listed[last].length - start <= PIECE:
            last += 1
        end = listed[last - 1].offset + listed[last - 1].length
        try:
            piece = memoryview(repo.store.get_range(name, start, end - start))
        except ObjectNotFound:  # deleted since its trailer was read (a prune)
            return PackCheck(pack_id, 0, problem=f"{name}: missing from storage", missing=True)
        for entry in listed[first:last]:
            try:
                repo.open_blob(entry, piece[entry.offset - start : entry.offset - start + entry.length],
                               scratch=scratch, threaded=threaded)
            except IntegrityError as exc:
                damaged.append(BlobDamage(entry, exc.fields.get("reason", str(exc))))
        first = last
    return PackCheck(pack_id, size, tuple(listed), tuple(damaged), None, tuple(_disagreements(name, listed, indexed)))


def _by_offset(entries: Iterable[IndexEntry]) -> list[IndexEntry]:
    return sorted({e.blob_id: e for e in entries}.values(), key=lambda e: e.offset)


def _disagreements(name: str, listed: Iterable[IndexEntry], indexed: Iterable[IndexEntry]) -> list[str]:
    """One line per index entry that the pack's trailer (``listed``) contradicts."""
    by_blob = {e.blob_id: e for e in listed}
    out = []
    for entry in indexed:
        if by_blob.get(entry.blob_id) != entry:
            what = "does not list" if entry.blob_id not in by_blob else "disagrees with the index on"
            out.append(f"{name}: the pack's trailer {what} blob {entry.blob_id.hex()[:16]}")
    return out


def check_trailer(repo: Repository, pack_id: str, indexed: Iterable[IndexEntry] = ()) -> list[str]:
    """Problems of stored pack ``pack_id`` that its trailer shows, read alone: a trailer
    that does not open (the pack is cut or grown - the trailer accounts for every byte
    before it -, damaged, another pack's, or not this vault's), and ``indexed`` entries
    it contradicts.  A pack gone since it was listed has none (a prune deleted it)."""
    name = pack_name(pack_id)
    try:
        listed = read_trailer(repo.store, pack_id, repo.envelope)
    except ObjectNotFound:
        return []
    except IntegrityError as exc:
        return [f"{name}: its trailer does not open ({exc.fields.get('reason', exc)}): the pack is damaged,"
                " cut or replaced; 'strongroom vault verify --read-data' reads it, 'strongroom vault repair'"
                " sets it aside"]
    return _disagreements(name, listed, indexed)


def scan_trailers(
    repo: Repository,
    pack_ids: Iterable[str],
    indexed: Mapping[str, list[IndexEntry]] | None = None,
    *,
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, list[str]]]:
    """(pack id, :func:`check_trailer` problems) of each pack, in pack-id order."""
    todo = sorted(set(pack_ids))
    indexed = indexed or {}
    report = progress or (lambda message: None)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        checks = pool.map(lambda p: check_trailer(repo, p, indexed.get(p, ())), todo)
        for done, (pack_id, problems) in enumerate(zip(todo, checks), 1):
            if done % 100 == 0 or done == len(todo):
                report(Step(f"reading pack trailers: {done}/{len(todo)}", done=done, total=len(todo), unit="packs"))
            yield pack_id, problems


def scan_packs(
    repo: Repository,
    pack_ids: Iterable[str],
    indexed: Mapping[str, list[IndexEntry]] | None = None,
    *,
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
    checked_by: Callable[[list[str]], Iterator[PackCheck]] | None = None,
) -> Iterator[PackCheck]:
    """:func:`check_pack` of each pack, in pack-id order, ``threads`` packs at a time
    (each holds one whole pack in memory while it is checked, and decrypts its blobs
    into a buffer of its own), or by ``checked_by`` (:meth:`.packforks.PackCheckers.check`:
    worker processes), which yields the checks of the packs it is given in their order."""
    todo = sorted(set(pack_ids))
    indexed = indexed or {}
    report = progress or (lambda message: None)
    # the bytes to read, as the index knows them (a pack it does not list counts as 0); an
    # index's PackEntries sums them without building every pack's entries first
    lengths = getattr(indexed, "total_length", None)
    total_bytes = lengths(todo) if lengths is not None else sum(e.length for p in todo for e in indexed.get(p, ()))
    read = 0
    local = threading.local()

    def check(pack_id: str) -> PackCheck:
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = Scratch()
        return check_pack(repo, pack_id, indexed.get(pack_id, ()), scratch=scratch)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        checks = checked_by(todo) if checked_by is not None else pool.map(check, todo)
        for done, check in enumerate(checks, 1):
            read += check.size
            report(Step(f"reading packs: {done}/{len(todo)}", done=done, total=len(todo), unit="packs",
                        bytes=read, total_bytes=max(total_bytes, read)))
            yield check
