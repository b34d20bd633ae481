"""Garbage-collection state shared by prune and by backups: marks and sweeps.

Prune removes data in two phases (``docs/policies.md``, "How prune stays safe"):

- a **mark** (``prune/<cycle-id>/mark``) lists blobs that no recovery point needed when
  it was written, by pack, with the time it was written and the grace period;
- a **sweep** (``prune/<cycle-id>/sweep``), written by a later prune once the grace has
  passed, lists the packs it is about to delete or repack (*doomed* packs) before it
  changes anything.  Both are removed when the sweep is done.

Backups take no lock; they follow three rules instead, all kept by :class:`GcView`:

1. When a backup starts (after loading the index), it reads every mark and sweep.  It
   does not deduplicate against a marked blob (``MaskedIndex`` hides marked blobs from
   ``in``, so the engine stores a fresh copy, and re-reads a file whose old chunks are
   marked), and it never adopts a doomed pack as an unindexed one.
2. Before it writes its point header, it lists ``prune/`` and ``index/`` again.  For a
   mark it had not seen that holds a blob its point needs: if less than half the grace
   has passed since the mark, committing now is safe (the sweep, at least a grace after
   the mark, will read the new header and keep the blob); otherwise the backup copies
   those blobs into new packs first (:func:`strongroom.repository.maintenance.copy_blobs`).
3. If an index file it loaded has gone (a sweep finished meanwhile), it reloads the index
   and checks that every blob its point needs is still there.

When a check fails (a needed pack was already deleted) the backup raises
:class:`~strongroom.errors.PruneConflict` without writing a header: the vault is never
damaged, and the next backup simply runs again.

A mark or sweep document that cannot be read - it fails authentication, is malformed
(a field of the wrong type, a time without a time zone, a grace that is not a finite
number of seconds, ids that are not pack or blob ids) or is stored under another
cycle's name - raises IntegrityError from :func:`read_part`, never another exception.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Iterator

import attrs

from ..errors import IntegrityError, ObjectNotFound, PruneConflict
from ..models import damaged, iso, parse_iso, stored_time
from ..repository import maintenance
from ..repository.pack import is_pack_id
from ..repository.index import Index
from .reachable import reachable

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["PRUNE_PREFIX", "GcView", "MaskedIndex", "Mark", "Sweep", "cycles_on_storage"]

PRUNE_PREFIX = "prune/"


@attrs.frozen
class Mark:
    """Blobs found unneeded at ``marked``, by pack; swept no earlier than ``marked + grace``.

    ``packs`` holds blobs no point needed; ``duplicates`` extra copies of needed blobs
    (another copy, not marked, stays).  Backups avoid the first kind only.
    """

    cycle: str
    marked: dt.datetime
    grace: float
    packs: dict[str, frozenset[bytes]]
    duplicates: dict[str, frozenset[bytes]] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return f"{PRUNE_PREFIX}{self.cycle}/mark"

    @property
    def blobs(self) -> set[bytes]:
        return set().union(*self.packs.values()) if self.packs else set()

    def sweepable(self, now: dt.datetime) -> bool:
        return now >= self.marked + dt.timedelta(seconds=self.grace)

    def commit_safe(self, now: dt.datetime) -> bool:
        """Whether a backup that needs marked blobs may still commit without copying them."""
        return now < self.marked + dt.timedelta(seconds=self.grace / 2)

    def to_dict(self) -> dict:
        return {"cycle": self.cycle, "marked": iso(self.marked), "grace": self.grace,
                "packs": _hex(self.packs), "duplicates": _hex(self.duplicates)}

    @classmethod
    def from_dict(cls, doc: dict) -> Mark:
        """The mark stored as ``doc``; IntegrityError if it is malformed."""
        what = "prune mark"
        _check_object(doc, what, ("cycle", "marked", "grace", "packs"))
        marked = parse_iso(stored_time(doc["marked"], "marked", what)).astimezone(dt.timezone.utc)
        grace = doc["grace"]
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= _LONGEST:
            raise damaged(what, "field 'grace' is not a number of seconds")
        try:
            marked + dt.timedelta(seconds=grace)
        except OverflowError:
            raise damaged(what, "field 'marked' is too late") from None
        return cls(cycle=_text(doc["cycle"], "cycle", what), marked=marked, grace=float(grace),
                   packs=_unhex(doc["packs"], what), duplicates=_unhex(doc.get("duplicates", {}), what))


#: The longest grace a mark may hold: 100 years, in seconds.
_LONGEST = 100 * 366 * 86400


def _check_object(doc: object, what: str, required: tuple[str, ...]) -> None:
    if not isinstance(doc, dict):
        raise damaged(what, "not a JSON object")
    for key in required:
        if key not in doc:
            raise damaged(what, f"no field '{key}'")


def _text(value: object, field: str, what: str) -> str:
    if not isinstance(value, str):
        raise damaged(what, f"field '{field}' is not text")
    return value


def _hex(blobs_by_pack: dict[str, frozenset[bytes]]) -> dict[str, list[str]]:
    return {pack: sorted(b.hex() for b in blobs) for pack, blobs in sorted(blobs_by_pack.items())}


def _unhex(doc: object, what: str) -> dict[str, frozenset[bytes]]:
    if not isinstance(doc, dict):
        raise damaged(what, "its blobs are not an object of packs")
    out = {}
    for pack, blobs in doc.items():
        if not is_pack_id(pack) or not isinstance(blobs, list):
            raise damaged(what, f"{pack!r} is not a pack id with a list of blobs")
        if not all(isinstance(b, str) and len(b) == 64 for b in blobs):
            raise damaged(what, f"the blobs of pack {pack} are not blob ids")
        try:
            out[pack] = frozenset(bytes.fromhex(b) for b in blobs)
        except ValueError:
            raise damaged(what, f"the blobs of pack {pack} are not blob ids") from None
    return out


@attrs.frozen
class Sweep:
    """The packs a sweep of ``cycle`` deletes (wholly garbage) or repacks."""

    cycle: str
    started: str
    doomed: frozenset[str]

    @property
    def name(self) -> str:
        return f"{PRUNE_PREFIX}{self.cycle}/sweep"

    def to_dict(self) -> dict:
        return {"cycle": self.cycle, "started": self.started, "doomed": sorted(self.doomed)}

    @classmethod
    def from_dict(cls, doc: dict) -> Sweep:
        """The sweep stored as ``doc``; IntegrityError if it is malformed."""
        what = "prune sweep"
        _check_object(doc, what, ("cycle", "started", "doomed"))
        doomed = doc["doomed"]
        if not isinstance(doomed, list) or not all(is_pack_id(p) for p in doomed):
            raise damaged(what, "field 'doomed' is not a list of pack ids")
        return cls(cycle=_text(doc["cycle"], "cycle", what), started=stored_time(doc["started"], "started", what),
                   doomed=frozenset(doomed))


def cycles_on_storage(repo: Repository) -> dict[str, set[str]]:
    """cycle id -> the parts stored for it (``mark``, ``sweep``)."""
    cycles: dict[str, set[str]] = {}
    for name in repo.list_names(PRUNE_PREFIX):
        parts = name.split("/")
        if len(parts) == 3 and parts[2] in ("mark", "sweep"):
            cycles.setdefault(parts[1], set()).add(parts[2])
    return cycles


def read_part(repo: Repository, cycle: str, part: str) -> Mark | Sweep | None:
    """The mark or sweep of ``cycle``, None if gone; IntegrityError if damaged."""
    name = f"{PRUNE_PREFIX}{cycle}/{part}"
    try:
        doc = repo.get_document(name)
    except ObjectNotFound:
        return None
    try:
        found = (Mark if part == "mark" else Sweep).from_dict(doc)
    except IntegrityError as exc:
        raise IntegrityError(what=name, reason=exc.fields.get("reason", str(exc))) from None
    if found.cycle != cycle:
        raise IntegrityError(what=name, reason=f"it names another cycle ({found.cycle!r})")
    return found


class MaskedIndex:
    """A view of an index that answers ``in`` as if some blobs were absent.

    ``in`` is what deduplication asks; lookups (to read a blob) see everything.
    """

    def __init__(self, base: Index, mask: frozenset[bytes]) -> None:
        self.base = base
        self.mask = mask

    def __contains__(self, blob: object) -> bool:
        return bytes(blob) not in self.mask and blob in self.base  # type: ignore[arg-type]

    def missing(self, blob_ids) -> set[bytes]:
        ids = [bytes(b) for b in blob_ids]
        return self.base.missing(ids) | self.mask.intersection(ids)

    def add(self, entries) -> None:
        self.base.add(entries)

    def lookup(self, blob: bytes):
        return self.base.lookup(blob)

    def pack_ids(self) -> set[str]:
        return self.base.pack_ids()

    def named_pack_ids(self) -> set[str]:
        return self.base.named_pack_ids()

    def entries(self):
        return self.base.entries()

    def entries_by_pack(self):
        return self.base.entries_by_pack()

    def __len__(self) -> int:
        return len(self.base)


@attrs.frozen
class GcView:
    """What a backup saw of prune's work when it started (rules 1-3 of the module doc)."""

    cycles: frozenset[str]
    masked: frozenset[bytes]
    doomed: frozenset[str]
    index_files: frozenset[str]

    @classmethod
    def load(cls, repo: Repository, index_files: frozenset[str]) -> GcView:
        """Read marks and sweeps; call it after loading ``index_files`` into the index."""
        masked: set[bytes] = set()
        doomed: set[str] = set()
        cycles = cycles_on_storage(repo)
        for cycle, parts in cycles.items():
            for part in sorted(parts):
                found = read_part(repo, cycle, part)
                if isinstance(found, Mark):
                    masked |= found.blobs
                elif isinstance(found, Sweep):
                    doomed |= found.doomed
        return cls(frozenset(cycles), frozenset(masked), frozenset(doomed), index_files)

    @contextlib.contextmanager
    def masking(self, repo: Repository) -> Iterator[None]:
        """Hide marked blobs from deduplication while the backup runs."""
        if not self.masked:
            yield
            return
        base = repo.index
        repo.index = MaskedIndex(base, self.masked)  # type: ignore[assignment]
        try:
            yield
        finally:
            repo.index = base

    def before_commit(self, repo: Repository, root: bytes, now: dt.datetime, item: str) -> int:
        """Make sure committing a point with tree ``root`` now is safe; returns blobs copied."""
        cycles = cycles_on_storage(repo)
        new = sorted(c for c, parts in cycles.items() if c not in self.cycles and "mark" in parts)
        files = frozenset(repo.list_names("index/"))
        vanished = not self.index_files <= files
        if not new and not vanished:
            return 0
        index = repo.index
        if vanished:  # read the index as it is now; a needed blob must still be in it
            index = Index()
            for name, entries in repo.read_index_files(sorted(files)):
                if isinstance(entries, list):
                    index.add(entries)
        try:
            needed = reachable(repo, [root], index=index)
        except IntegrityError as exc:
            raise PruneConflict(item=item, reason=f"a prune removed data it needs while it ran ({exc})") from None
        if vanished:
            missing = [blob for blob in needed if blob not in index]
            if missing:
                raise PruneConflict(item=item, reason=f"a prune removed {len(missing)} blob(s) it needs while it ran")
        rescue: set[bytes] = set()
        for cycle in new:
            mark = read_part(repo, cycle, "mark")
            if isinstance(mark, Mark) and not mark.commit_safe(now):
                rescue |= needed & mark.blobs
        if not rescue:
            return 0
        entries = [index.lookup(blob) for blob in sorted(rescue)]
        try:
            return len(maintenance.copy_blobs(repo, [e for e in entries if e is not None]))
        except IntegrityError as exc:
            raise PruneConflict(item=item, reason=f"a prune is removing data it needs ({exc})") from None
