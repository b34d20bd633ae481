"""The vault head: what must not go backwards, and the checks that storage did not.

Whoever can write the vault's storage without the key cannot forge a document, but can
delete objects and put older copies back: the newest point header, the newest settings
or item version, an index file that a prune or rebuild-index removed (a new backup would
take the blobs it names for stored, though their packs are gone, and skip their data),
a key slot that was removed.  Each object is authentic; only the set is old.  As in
Borg's manifest check and TUF's snapshot metadata, the vault records what it holds in
authenticated documents, and every client remembers the newest it has seen.

**Heads.**  A *vault head* (``heads/<time-id>``, an encrypted document:
:class:`~strongroom.models.VaultHead`) is written after every commit that changes what
must not go backwards: a backup's point header, a prune, rebuild-index, a repair, a
change of an item's state, of a policy (and the statuses it re-evaluates) or of the
settings, a key slot added or removed.  It lists

- ``objects``: every point header and key slot, and the newest version of the settings,
  of each item, of each policy and of each point's status, that its writer saw on
  storage or in the heads it merged: each must stay on storage (a status whose point is
  gone with it is not reported on its own);
- ``removed``: tombstones of tracked objects removed on purpose (expired points,
  documents moved aside, removed key slots), kept :data:`TOMBSTONE_DAYS` days (those of
  key slots for good);
- ``index``: the index generation (:class:`~strongroom.models.IndexGeneration`);
- ``serial`` and ``previous``: the heads it merges, and one more than their highest serial.

**Order.**  Additions are recorded after they happen (the point header, then the head);
removals are announced before they happen (prune writes a head with the tombstones of
the points it expires, then deletes them; repair does so before it moves documents
aside), but for a key slot's, recorded just after the slot is deleted.  A check reads
the heads, lists storage and, only if something seems gone, reads the heads again for
tombstones: a change made meanwhile is never taken for a rollback.

**Merging.**  Writers race: two backups at once each write a head.  A head names the
heads it merged (``previous``); the *tips* are the heads that no other head names, less
any more than :data:`TIP_WINDOW` serials behind the newest (an old head put back).
Readers and writers merge the tips: the objects are their union less every tombstone,
the index generation is the highest.  A writer writes the merge of the tips it read
(just before writing) plus its own change, and deletes heads older than the newest
:data:`KEEP`.

**Index files.**  Every backup adds index files; only prune, rebuild-index and repair
remove some, and each then records a new index generation: the files it left, and the
time it listed them (``floor``).  An index file on storage that the generation does not
list is new (named after ``floor`` less :data:`INDEX_SKEW`, the clock skew allowed
between hosts), a replacement prune is writing for a listed one
(:func:`replacement_name`), or *replayed*: named before that, or ``retired``.  Replayed
index files are the danger the check keeps from backups; a missing one is not (a backup
indexes the packs no index file names from their own trailers).

**This client.**  Each client keeps, per vault, the highest serial it has seen, the
name of that head and a digest of its bytes, in ``state/<vault-id>.json`` of its home
folder (:func:`strongroom.home.strongroom_home`), raised after every check that passes
and every head it writes.  Storage whose newest head is older is a rollback of the heads
themselves.

**Checks** (:meth:`HeadService.check`): ``points`` warns, ``backup`` and ``prune``
refuse (:class:`~strongroom.errors.RollbackDetected`), ``vault verify`` counts a problem
and exits 54, ``vault repair`` reports.  Found: a tracked object the heads list that is
gone; a removed key slot that is back; a replayed index file; no head, or an older one,
where this client saw a newer one; a head newer than every readable one that cannot be
read.  Every finding goes to ``on_rollback``: the one place where an alert is raised.

**Accepting.**  ``vault rebuild-index`` and ``vault repair --apply`` remove replayed index
files (they rewrite the index from the packs).  ``vault repair --apply --accept-rollback``
records storage as it is: gone objects get tombstones, a removed key slot that is back is
taken back, unreadable newer heads are moved aside, and the new head's serial passes the
one this client saw.  Without that, no head written on a rolled-back storage drops what
is gone: the finding stays until someone decides.

A vault without heads (made by an older version) is taken as it is: the first head
written records what storage holds then.  Reads: the newest :data:`READ_LIMIT` heads, each
of at most :data:`HEAD_MAX` bytes.  Writes: ``heads/``, the client's state file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import attrs

from ..errors import IntegrityError, ObjectLocked, ObjectNotFound, RollbackDetected
from ..models import HEAD_NAME, HEAD_TRACKED, INDEX_NAME, IndexGeneration, VaultHead, iso, parse_iso, time_id
from ..models import time_of, utcnow
from ..repository.envelope import KIND_DOCUMENT
from ..repository.indexstate import INDEX_PREFIX
from ..storage import capabilities_of
from .items import ITEM_PREFIX
from .points import POINT_PREFIX
from .pointstatus import STATUS_PREFIX
from .policies import POLICY_PREFIX
from .settings import SETTINGS_PREFIX

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["HEAD_PREFIX", "HeadService", "HeadView", "Rollback", "replacement_name"]

HEAD_PREFIX = "heads/"
#: Key slots' folder (``keys/<slot-id>``, :mod:`strongroom.repository.keyring`).
SLOT_PREFIX = "keys/"
#: Heads kept on storage: the newest by name (older ones are deleted by writers).
KEEP = 8
#: At most this many heads, the newest by name, are read.
READ_LIMIT = 32
#: A tip this many serials behind the newest head is stale (a head put back): left out.
TIP_WINDOW = 8
#: The largest head read.
HEAD_MAX = 16 * 1024 * 1024
#: Tombstones of points and documents are kept this long (of key slots: for good).
TOMBSTONE_DAYS = 30
#: How far apart the clocks of hosts sharing a vault may be, for index file names.
INDEX_SKEW = dt.timedelta(days=1)
#: How many replacements of one index file a prune may make before its head is written.
REPLACEMENT_DEPTH = 8
#: Folders of the tracked objects: every object (points, key slots), or each folder's newest.
_EVERY = (POINT_PREFIX, SLOT_PREFIX)
_NEWEST = (SETTINGS_PREFIX, ITEM_PREFIX, POLICY_PREFIX, STATUS_PREFIX)
#: Findings named in one line before "and N more".
SHOWN = 3


def replacement_name(name: str) -> str:
    """The name prune gives the index file that replaces ``name``
    (:func:`strongroom.repository.maintenance.replace_index_file`): the same time, and a
    suffix derived from the old name."""
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    return f"{INDEX_PREFIX}{stamp}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@attrs.frozen
class HeadView:
    """The heads on storage, merged (see the module docstring)."""

    serial: int = 0
    newest: str = ""  # a head of the highest serial
    digest: str = ""  # of its bytes
    names: tuple[str, ...] = ()  # every head on storage, oldest first
    tips: tuple[str, ...] = ()
    objects: frozenset[str] = frozenset()
    removed: Mapping[str, str] = attrs.field(factory=dict)
    index: IndexGeneration | None = None
    damaged: tuple[tuple[str, str], ...] = ()  # (name, reason) of heads that cannot be read


@attrs.frozen
class Rollback:
    """What a check found; each field lists object names (``heads``: one line each)."""

    heads: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    back: tuple[str, ...] = ()
    replayed: tuple[str, ...] = ()
    damaged_heads: tuple[str, ...] = ()  # unreadable heads newer than every readable one
    lines: tuple[str, ...] = ()  # one line per finding, for people

    @property
    def found(self) -> bool:
        return bool(self.lines)

    @property
    def only_index(self) -> bool:
        """Whether replayed index files are all that was found."""
        return bool(self.replayed) and len(self.replayed) == len(self.lines)

    def without_index(self) -> Rollback:
        """These findings but the replayed index files (once the index is rewritten)."""
        return attrs.evolve(self, replayed=(), lines=self.lines[: len(self.lines) - len(self.replayed)])

    def summary(self) -> str:
        """The findings in one line (the first :data:`SHOWN`, and how many more)."""
        shown = "; ".join(self.lines[:SHOWN])
        return shown + (f"; and {len(self.lines) - SHOWN} more" if len(self.lines) > SHOWN else "")

    def advice(self) -> str:
        if self.only_index:
            return "no backup trusts the index until 'strongroom vault rebuild-index' rewrites it from the packs"
        return ("see 'strongroom vault repair'; if you accept the storage as it is, run"
                " 'strongroom vault repair --apply --accept-rollback'")

    def error(self) -> RollbackDetected:
        return RollbackDetected(what=self.summary(), advice=self.advice())

    def warning(self) -> str:
        """The one-line warning of ``points`` (empty when nothing was found)."""
        return str(self.error()) if self.found else ""


@attrs.frozen
class _Seen:
    """What this client saw last: the highest serial, that head's name and digest."""

    serial: int = 0
    head: str = ""
    digest: str = ""


class HeadService:
    """Writes and checks the heads of one vault (see the module docstring).

    ``state_file``: this client's state for the vault; ``on_rollback(found)``: called
    with every finding (where alerts are raised); ``item_names()``: item id -> name, for
    the findings' lines.
    """

    def __init__(self, repo: Repository, state_file: Path | None, *,
                 on_rollback: Callable[[Rollback], None] = lambda found: None,
                 item_names: Callable[[], dict[str, str]] = dict) -> None:
        self.repo = repo
        self.state_file = state_file
        self.on_rollback = on_rollback
        self.item_names = item_names

    # --- reading -----------------------------------------------------------------------

    def read(self) -> HeadView:
        """The heads on storage, merged."""
        store = self.repo.store
        limit = utcnow() + INDEX_SKEW
        names: list[str] = []
        damaged: list[tuple[str, str]] = []
        for name in sorted(store.list(HEAD_PREFIX)):
            when = _time(name) if HEAD_NAME.fullmatch(name) else None
            if when is None:
                continue  # not a head (verify names foreign objects)
            if when > limit:
                damaged.append((name, "named after the present time"))
                continue
            names.append(name)
        heads: dict[str, tuple[VaultHead, str]] = {}
        recent = names[-READ_LIMIT:]
        if len(recent) > 1 and capabilities_of(store).remote:  # a local read is quicker than a thread
            with ThreadPoolExecutor(min(len(recent), self.repo.io_threads)) as pool:
                read = list(pool.map(self._read_one, recent))
        else:
            read = [self._read_one(name) for name in recent]
        for name, found in zip(recent, read):
            if isinstance(found, tuple):
                heads[name] = found
            elif found is not None:
                damaged.append((name, found))
        if not heads:
            return HeadView(names=tuple(names), damaged=tuple(sorted(damaged)))
        serial = max(head.serial for head, _ in heads.values())
        named = {prev for head, _ in heads.values() for prev in head.previous}
        tips = sorted(n for n, (head, _) in heads.items() if n not in named and head.serial >= serial - TIP_WINDOW)
        removed: dict[str, str] = {}
        objects: set[str] = set()
        index: IndexGeneration | None = None
        for name in tips:
            head = heads[name][0]
            objects |= head.objects
            for gone, when in head.removed.items():
                removed[gone] = max(when, removed.get(gone, when))
            if head.index is not None and (index is None or (head.index.generation, head.index.floor)
                                           > (index.generation, index.floor)):
                index = head.index
        newest = max((n for n, (head, _) in heads.items() if head.serial == serial))
        return HeadView(serial, newest, heads[newest][1], tuple(names), tuple(tips),
                        frozenset(objects - removed.keys()), removed, index, tuple(sorted(damaged)))

    def _read_one(self, name: str) -> tuple[VaultHead, str] | str | None:
        """The head at ``name`` and the digest of its bytes; the reason it cannot be read;
        None if it is gone (deleted by a writer meanwhile)."""
        try:
            sealed = self.repo.store.get_range(name, 0, HEAD_MAX + 1)
        except ObjectNotFound:
            return None
        if len(sealed) > HEAD_MAX:
            return f"larger than {HEAD_MAX // (1024 * 1024)} MiB"
        try:
            raw = self.repo.envelope.open(sealed, name.encode(), kind=KIND_DOCUMENT)
            head = VaultHead.from_dict(json.loads(raw), name)
        except IntegrityError as exc:
            return str(exc.fields.get("reason") or exc)
        except (ValueError, RecursionError) as exc:
            return f"not JSON ({type(exc).__name__})"
        return head, hashlib.sha256(sealed).hexdigest()

    # --- checking ----------------------------------------------------------------------

    def check(self, *, index_files: Callable[[], Iterable[str]] | None = None) -> Rollback:
        """What went backwards (see the module docstring); ``index_files()`` lists the
        index files the caller loaded (by default they are listed here), called after
        the heads are read.  A check that finds nothing raises this client's state."""
        first = self.read()
        listed = set(index_files() if index_files is not None else self.repo.store.list(INDEX_PREFIX))
        present = self._tracked()
        found = self._compare(first, first, present, listed)
        if found.found:  # a removal announced meanwhile, or a head written meanwhile, is no rollback
            second = self.read()
            merged = attrs.evolve(first, removed={**first.removed, **second.removed})
            found = self._compare(merged, second if second.serial > first.serial else first, present, listed)
        if found.found:
            self.on_rollback(found)
        else:
            self._raise_seen(first.serial, first.newest, first.digest)
        return found

    def require(self, *, index_files: Callable[[], Iterable[str]] | None = None) -> None:
        """:meth:`check`, raising :class:`~strongroom.errors.RollbackDetected` for a finding."""
        found = self.check(index_files=index_files)
        if found.found:
            raise found.error()

    def _compare(self, view: HeadView, latest: HeadView, present: set[str], listed: set[str]) -> Rollback:
        """Findings: storage (``present`` tracked objects, ``listed`` index files, listed
        after ``view`` was read) against ``view``, and ``latest`` against this client."""
        seen = self._seen()
        removed = view.removed
        heads: list[str] = []
        if seen.serial > latest.serial:
            if latest.serial == 0:
                heads.append(f"no vault head is left on storage, but this client saw {seen.head} (serial {seen.serial})")
            else:
                heads.append(f"the newest vault head is serial {latest.serial} ({latest.newest}), but this client"
                             f" saw serial {seen.serial} ({seen.head})")
        elif seen.head == latest.newest and seen.digest and seen.digest != latest.digest:
            heads.append(f"vault head {latest.newest} is not the one this client saw")
        unreadable = [(n, why) for n, why in view.damaged if not view.newest or n > view.newest]
        lines = heads + [f"vault head {n} cannot be read ({why})" for n, why in unreadable]
        missing = sorted(n for n in view.objects if n not in present and n not in removed
                         and not _with_its_point(n, present, removed))
        back = sorted(n for n in present if n.startswith(SLOT_PREFIX) and n in removed)
        replayed = sorted(self._replayed(view.index, listed)) if view.index is not None else []
        names = self._names() if missing else {}
        lines += [_gone(n, names) for n in missing]
        lines += [f"key slot {n} was removed on {removed[n][:10]} and is back" for n in back]
        lines += [f"index file {n} was removed by a prune, rebuild-index or repair and is back" for n in replayed]
        return Rollback(tuple(heads), tuple(missing), tuple(back), tuple(replayed),
                        tuple(n for n, _ in unreadable), tuple(lines))

    def _replayed(self, index: IndexGeneration, listed: set[str]) -> list[str]:
        try:
            floor = time_of(index.floor) - INDEX_SKEW
        except OverflowError:
            return sorted(listed & index.retired)
        by_stamp: dict[str, list[str]] = defaultdict(list)
        for name in index.files:
            by_stamp[name[len(INDEX_PREFIX):].split("-", 1)[0]].append(name)
        replayed = []
        for name in listed - index.files:
            when = _time(name) if INDEX_NAME.fullmatch(name) else None
            if when is None:
                continue  # not an index file: a foreign object
            if name in index.retired:
                replayed.append(name)
            elif when < floor and not _replaces(name, by_stamp[name[len(INDEX_PREFIX):].split("-", 1)[0]]):
                replayed.append(name)
        return replayed

    def _names(self) -> dict[str, str]:
        try:
            return self.item_names()
        except (IntegrityError, ObjectNotFound, KeyError, TypeError, ValueError):
            return {}

    # --- writing -----------------------------------------------------------------------

    def record(self, operation: str, *, removed: Iterable[str] = (), index_before: Iterable[str] | None = None,
               accept: Rollback | None = None) -> str:
        """Write a head after ``operation``: the merge of the heads on storage, what
        storage holds now, less ``removed`` (tombstones).  ``index_before``: the index
        files listed before an operation that removed some (a new index generation is
        recorded).  ``accept``: a rollback found and accepted (see the module
        docstring).  Returns the new head's name."""
        view = self.read()
        now = utcnow()
        stamp = iso(now)
        oldest = now - dt.timedelta(days=TOMBSTONE_DAYS)
        tombstones = {name: when for name, when in view.removed.items()
                      if name.startswith(SLOT_PREFIX) or _after(when, oldest)}
        tombstones.update({name: stamp for name in removed if HEAD_TRACKED.fullmatch(name)})
        seen = self._seen()
        serial = view.serial + 1
        if accept is not None:
            tombstones.update({name: stamp for name in accept.missing})
            for name in accept.back:
                tombstones.pop(name, None)
            for name in accept.damaged_heads:
                self._move_aside(name)
            serial = max(serial, seen.serial + 1)
        objects = (view.objects | _newest_of(self._tracked())) - tombstones.keys()
        index = view.index
        if index is None or index_before is not None:
            floor = now.strftime("%Y%m%dT%H%M%S%fZ")
            files = frozenset(n for n in self.repo.store.list(INDEX_PREFIX) if INDEX_NAME.fullmatch(n))
            gone = (set(index_before or ()) | (index.files if index else set())) - files
            recent = now - INDEX_SKEW
            retired = frozenset(n for n in gone | (index.retired if index else set())
                                if INDEX_NAME.fullmatch(n) and (_time(n) or recent) >= recent)
            index = IndexGeneration((index.generation if index else 0) + 1, floor, files, retired)
        head = VaultHead(serial, stamp, operation, view.tips, frozenset(objects), tombstones, index)
        name = self._new_name(view, now)
        sealed = self.repo.envelope.seal(KIND_DOCUMENT, name.encode(),
                                         json.dumps(head.to_dict(), separators=(",", ":")).encode())
        self.repo.store.put(name, sealed)
        self._raise_seen(serial, name, hashlib.sha256(sealed).hexdigest())
        self._forget_old(view, name)
        return name

    def _new_name(self, view: HeadView, now: dt.datetime) -> str:
        """A head name sorting after every head on storage (even when this clock is behind)."""
        if view.names:
            now = max(now, time_of(view.names[-1]) + dt.timedelta(microseconds=1))
        return f"{HEAD_PREFIX}{time_id(now)}"

    def _forget_old(self, view: HeadView, mine: str) -> None:
        """Delete heads older than the newest :data:`KEEP` (a few at a time)."""
        names = sorted({*view.names, mine})
        for name in names[: max(0, len(names) - KEEP)][:READ_LIMIT]:
            try:
                self.repo.store.delete(name)
            except ObjectNotFound:
                pass
            except ObjectLocked:  # still under its lock (immutability): so are the newer ones
                break

    def _move_aside(self, name: str) -> None:
        from ..engine.repair import move_aside

        move_aside(self.repo.store, name)

    # --- storage and this client ---------------------------------------------------------

    def _tracked(self) -> set[str]:
        """Every tracked object on storage (names of the tracked shapes only)."""
        found: set[str] = set()
        for prefix in (*_EVERY, *_NEWEST):
            found.update(n for n in self.repo.store.list(prefix) if HEAD_TRACKED.fullmatch(n))
        return found

    def _seen(self) -> _Seen:
        if self.state_file is None:
            return _Seen()
        try:
            doc = json.loads(self.state_file.read_text())
            seen = _Seen(int(doc["serial"]), str(doc["head"]), str(doc["digest"]))
        except (OSError, ValueError, KeyError, TypeError):
            return _Seen()  # none yet, or unreadable: start again from what storage holds
        return seen

    def _raise_seen(self, serial: int, head: str, digest: str) -> None:
        """Remember ``serial`` (and its head) unless this client saw a higher one."""
        seen = self._seen()
        if self.state_file is None or serial <= 0 or serial < seen.serial or (serial, head) == (seen.serial, seen.head):
            return
        doc = {"serial": serial, "head": head, "digest": digest, "updated": iso(utcnow())}
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # a read-only home: this client then checks against storage's heads only


def _gone(name: str, items: dict[str, str]) -> str:
    parts = name.split("/")
    if parts[0] == "points":
        item = items.get(parts[1])
        return f"point {parts[2][:8]} of item {repr(item) if item else parts[1]} is gone ({name})"
    if parts[0] == "items":
        item = items.get(parts[1])
        return f"the newest version of item {repr(item) if item else parts[1]} is gone ({name})"
    if parts[0] == "policies":
        return f"the newest version of policy '{parts[1]}' is gone ({name})"
    if parts[0] == "settings":
        return f"the newest settings document is gone ({name})"
    if parts[0] == "point-status":
        item = items.get(parts[1])
        return (f"the newest status of point {parts[2][:8]} of item {repr(item) if item else parts[1]}"
                f" is gone ({name})")
    return f"key slot {name} is gone"


def _with_its_point(name: str, present: set[str], removed: Mapping[str, str]) -> bool:
    """Whether ``name`` is a point status whose point header is gone too (removed with it,
    or itself reported missing): the status is not reported on its own."""
    parts = name.split("/")
    if parts[0] != "point-status":
        return False
    header = f"{POINT_PREFIX}{parts[1]}/{parts[2]}"
    return header in removed or header not in present


def _newest_of(names: set[str]) -> set[str]:
    """Point headers and key slots, and the newest of each folder of the others."""
    newest: dict[str, str] = {}
    kept = set()
    for name in names:
        if name.startswith(_EVERY):
            kept.add(name)
        else:
            folder = name.rpartition("/")[0]
            if name > newest.get(folder, ""):
                newest[folder] = name
    return kept | set(newest.values())


def _replaces(name: str, candidates: list[str]) -> bool:
    """Whether index file ``name`` replaces one of ``candidates`` (or a replacement of one)."""
    for start in candidates:
        current = start
        for _ in range(REPLACEMENT_DEPTH):
            current = replacement_name(current)
            if current == name:
                return True
    return False


def _time(name: str) -> dt.datetime | None:
    """The time in a name ending in a time id (or a time id's stamp); None if it has none."""
    try:
        return time_of(name)
    except (ValueError, OverflowError):
        return None


def _after(when: str, moment: dt.datetime) -> bool:
    try:
        return parse_iso(when) >= moment
    except (TypeError, ValueError):
        return False
