"""Geo replication: copy a vault's objects to a secondary store, in commit order.

:class:`Replicator` makes the secondary (any :class:`~strongroom.storage.Store`) a copy
of the primary vault that lags behind it, and promises that **the secondary is always a
consistent, older vault that opens on its own**, whenever a run stops (a crash, a kill,
its time bound, an unreachable store):

- **Names are immutable**: the same name holds the same object on both sides, so a run
  compares the two listings and copies only the vault's objects the secondary lacks
  (foreign objects, leases and quarantined objects are never copied).  The identity
  (``strongroom.json``) and key slots, which an upgrade or a re-keyed slot rewrites in
  place, are compared byte for byte; every other object by name (a store's put is whole
  or absent, so a copy cut short leaves no object, and the next run copies it).  The
  secondary is listed once per run, never object by object.
- **Listing order**: the primary is listed in the reverse of commit order (heads first,
  the identity and key slots last; the folders of one level of :data:`GROUPS` at once),
  so everything a listed object needs (a point header's packs and index files, a head's
  points) was written before it and is in the listing too.  For a secondary that holds
  no vault yet (its first copy: every pack is to copy) the key slots, data keys,
  settings, identity and packs (:data:`EARLY`) are listed first as well, and copied
  while the rest is listed; they are listed again in their turn, and what that finds is
  copied too (the packs' group completes only then).
- **Copy order** (:data:`GROUPS`): a group of objects starts once the groups it comes
  *after* are complete, and groups that need nothing of each other overlap, in one pool
  of ``concurrency`` copies.  Key slots, data keys and settings come before the identity
  (a new secondary becomes a vault, an empty one, only when it can be unlocked and
  read); packs need nothing and start at once; index files come after every pack (an
  index file names its packs) and data key; items, policies and alert sinks after the identity; point
  headers and statuses after the index files and documents; jobs, claims, prune records,
  alerts and tickets, and the journal (one entry at a time, oldest first, so a run
  killed half-way leaves a prefix of the chain, never a gap), after the points; the
  vault heads last, so no head on the secondary names an object it lacks.  The small
  objects of the later groups are read ahead (:data:`READ_AHEAD` readers, at most
  :data:`READ_AHEAD_BYTES` held) while the packs are copied; only their writes wait.
- **A primary that changes meanwhile** (a backup, a prune): before the heads are copied
  the primary's heads are listed again.  A head written since the run listed them may
  announce the removal of an object the run could not copy (a prune removes a point
  after the head that says so), so the heads listed first are not copied then: the run
  lists the primary again and copies what is new, up to :data:`PASSES` times, and
  otherwise stops there (``stopped``: ``"primary changing"``), its heads and deletions
  left for the next run.  A head reaches the secondary only in a pass during which no
  head was written on the primary: every object it names was listed and copied.
- **Deletions** follow the primary's, after every copy, only of objects the primary no
  longer has **and removed on purpose**: an object lost on the primary by accident (a
  disk fault, an operator, someone with storage access) keeps its copy on the secondary,
  the one a repair heals from.  Point headers and statuses, versions of items, policies
  and the settings, key slots, data keys, index files and packs (:data:`~.georemovals.JUDGED`)
  are deleted only as ``removals`` (:meth:`~.georemovals.PrimaryRecords.judge`: the
  primary's authenticated vault heads and index files) says; without it (no key) none
  is.  The rest (job records, alerts, journal entries, heads...) follows the primary as
  it is.  Those kept are counted (``missing_on_primary``, and in :class:`Lag`).  Order:
  point headers and statuses first (with every other document), then index files and
  removed key slots; packs only in a *later* run, one in which the secondary had no point
  that the primary lacked: a pack is never deleted while a point on the secondary may
  still need it.  A deletion the secondary refuses (an object lock) is left for a later
  run, never an error.
- **Object lock** (``lock_policy``): when the vault's immutability is on and the
  secondary's storage has object lock, every copy is locked as the primary's writes are
  (:class:`~strongroom.storage.locking.LockingStore`: for the policy's span from the
  copy, in its mode, transient objects never); the probe object is never locked.
- **Refusals** (:class:`ReplicationRefused`, exit 17): a secondary holding another vault
  (another ``vault_id`` in its ``strongroom.json``), the primary itself (the same URL, or
  the same vault on the same storage under another URL: a probe object put on the
  secondary shows up on the primary), and a primary that is no vault.

Memory is bounded (one listing of names per side, at most ``concurrency`` objects in
flight, from :func:`~strongroom.storage.capabilities.capabilities_of`, and what is read
ahead); ``deadline`` (a ``time.monotonic()`` value) stops a run between copies: the rest
waits for the next run.  :meth:`Replicator.lag` says what the secondary lacks without
copying anything.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import json
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable

import attrs

from ..engine.progress import Step
from ..errors import ObjectNotFound, StorageError, StrongroomError
from ..repository.names import kind_of
from ..storage.base import Store
from ..storage.capabilities import capabilities_of
from ..storage.locking import LockingStore, LockPolicy
from .georemovals import JUDGED, Verdict, keep_all

__all__ = ["GROUPS", "Group", "Lag", "ReplicationRefused", "ReplicationReport", "Replicator"]

IDENTITY = "strongroom.json"


@attrs.frozen
class Group:
    """Objects copied together (those under ``prefixes``), once every group named in
    ``after`` is complete; ``in_order``: one at a time, in name order (oldest first)."""

    name: str
    prefixes: tuple[str, ...]
    after: tuple[str, ...] = ()
    in_order: bool = False


#: The copy order (see the module docstring): a partial order, in commit order.
GROUPS: tuple[Group, ...] = (
    Group("keys", ("keys/", "datakeys/", "settings/")),
    Group("identity", (IDENTITY,), after=("keys",)),
    Group("packs", ("data/",)),
    Group("index", ("index/",), after=("packs", "keys")),
    Group("documents", ("items/", "policies/", "alert-sinks/"), after=("identity",)),
    Group("points", ("points/", "point-status/"), after=("index", "documents")),
    Group("records", ("jobs/", "runs/", "prune/", "alerts/", "alert-events/", "tickets/"), after=("points",)),
    Group("journal", ("journal/",), after=("points",), in_order=True),
    Group("heads", ("heads/",), after=("records", "journal")),
)
_BY_NAME = {group.name: group for group in GROUPS}
HEADS = "heads"
PACKS = "packs"
#: The groups a new secondary lists first and starts copying at once (the module docstring).
EARLY = ("keys", "identity", PACKS)
#: Never copied: leases belong to the primary's running operations, quarantine is never read.
NOT_COPIED = ("leases/", "quarantine/")
#: Compared byte for byte, not by name: rewritten in place by an upgrade or a slot change.
REWRITTEN = ("keys/", IDENTITY)
PROBE_PREFIX = "strongroom-replication-probe-"
#: Readers of the small objects that wait for other groups, and the most bytes they hold.
READ_AHEAD = 4
READ_AHEAD_BYTES = 64 * 1024 * 1024
#: Passes of one run while the primary's heads keep changing under it.
PASSES = 3
#: What a copy of an object the secondary holds already, byte for byte, returns.
SAME = -1


def _level(group: Group) -> int:
    return 1 + max((_level(_BY_NAME[name]) for name in group.after), default=-1)


#: The primary's listing, level by level in the reverse of commit order (the folders of
#: one level are listed at once: none of them names an object of another).
LISTING: tuple[tuple[str, ...], ...] = tuple(
    tuple(p for g in GROUPS if _level(g) == level for p in g.prefixes)
    for level in sorted({_level(g) for g in GROUPS}, reverse=True))
#: Whom a free copier serves first: the groups in order, the packs (large) last, so that
#: the small objects a later group waits for are never queued behind them.
PRIORITY: tuple[Group, ...] = tuple(sorted(GROUPS, key=lambda g: g.prefixes == ("data/",)))


class ReplicationRefused(StrongroomError):
    """Cannot replicate to {secondary}: {reason}."""

    exit_code = 17


def group_of(name: str) -> Group | None:
    """The group ``name`` is copied in, None for objects never copied."""
    for group in GROUPS:
        if any(name.startswith(prefix) for prefix in group.prefixes):
            return group
    return None


@attrs.define
class ReplicationReport:
    """What one run did: objects and bytes copied and deleted, and whether it completed
    (``complete``: the secondary held everything the primary listed when it ended);
    ``stopped``: why it did not ("deadline", or "primary changing": a head was written on
    the primary during each of its :data:`PASSES` passes); ``passes``: how many."""

    copied: int = 0
    copied_bytes: int = 0
    deleted: int = 0
    deferred_deletes: int = 0
    #: Objects the primary lacks but did not remove on purpose: kept on the secondary.
    missing_on_primary: int = 0
    complete: bool = False
    stopped: str | None = None  # why a run ended early: "deadline", "primary changing"
    passes: int = 0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class Lag:
    """How far the secondary is behind: objects and bytes it lacks, the oldest point it
    lacks (its creation time) and how many points; ``missing_on_primary``: objects the
    secondary keeps that the primary lacks and did not remove on purpose (lost there)."""

    objects: int
    bytes: int
    points: int
    oldest_point: str | None
    missing_on_primary: int = 0

    @property
    def in_sync(self) -> bool:
        return self.objects == 0

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "in_sync": self.in_sync}


@attrs.define
class Replicator:
    """Copies the vault on ``primary`` to ``secondary`` (see the module docstring);
    ``read_point``: the creation time of a point header's name (the lag's oldest point);
    ``lock_policy``: how copies are locked on the secondary (None: not locked);
    ``removals``: which objects the primary lacks it removed on purpose
    (:meth:`~.georemovals.PrimaryRecords.judge`; None: none is proven, none deleted)."""

    primary: Store
    secondary: Store
    read_point: Callable[[str], str | None] | None = None
    concurrency: int = 0
    lock_policy: Callable[[], LockPolicy | None] | None = None
    removals: Callable[[Iterable[str], bool], Verdict] | None = None
    _target: Store = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.concurrency:
            self.concurrency = max(1, capabilities_of(self.secondary).concurrency)
        self._target = self.secondary if self.lock_policy is None else LockingStore(self.secondary, self.lock_policy)

    # --- checks ------------------------------------------------------------------------

    def _refuse(self, reason: str) -> ReplicationRefused:
        return ReplicationRefused(secondary=self.secondary.url, reason=reason)

    def check(self) -> str:
        """The primary's vault id, once the secondary is known to be fit (else refused)."""
        if self.primary.url.rstrip("/") == self.secondary.url.rstrip("/"):
            raise self._refuse("it is the vault's own storage")
        mine = _vault_id(self.primary)
        if mine is None:
            raise ReplicationRefused(secondary=self.secondary.url, reason=f"{self.primary.url} holds no vault")
        theirs = _vault_id(self.secondary)
        if theirs is not None and theirs != mine:
            raise self._refuse(f"it holds another vault ({theirs}, not {mine})")
        if theirs == mine and self._same_storage():
            raise self._refuse("it is the vault's own storage, under another URL")
        return mine

    def _same_storage(self) -> bool:
        probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        self.secondary.put(probe, b"probe")  # never locked by this run (a bucket default may)
        try:
            return self.primary.exists(probe)
        finally:
            try:
                self.secondary.delete(probe)
            except StorageError:
                pass  # a bucket-default object lock keeps it: a foreign object, never read

    # --- listing -----------------------------------------------------------------------

    def _list_primary(self, pool: DaemonPool) -> set[str]:
        """The primary's vault objects, level by level (see :data:`LISTING`)."""
        listed: set[str] = set()
        for level in LISTING:
            for found in pool.map(self._listed, level):
                listed.update(found)
        if IDENTITY not in listed:
            raise ReplicationRefused(secondary=self.secondary.url, reason=f"{self.primary.url} holds no vault")
        return listed

    def _list_early(self, pool: DaemonPool, present: set[str]) -> dict[str, list[str]]:
        """The plan of the :data:`EARLY` groups, listed at once (a new secondary's)."""
        prefixes = [p for name in EARLY for p in _BY_NAME[name].prefixes]
        plan: dict[str, list[str]] = {group.name: [] for group in GROUPS}
        for prefix, names in zip(prefixes, pool.map(self._listed, prefixes)):
            plan[group_of(prefix).name] += sorted(n for n in names if n not in present)  # type: ignore[union-attr]
        return plan

    def _listed(self, prefix: str) -> list[str]:
        if prefix == IDENTITY:
            return [IDENTITY] if self.primary.exists(IDENTITY) else []
        return [n for n in self.primary.list(prefix) if group_of(n) is not None and kind_of(n) is not None]

    def _list_secondary(self) -> set[str]:
        return {n for n in self.secondary.list("") if kind_of(n) is not None}

    @staticmethod
    def _todo(listed: set[str], present: set[str]) -> tuple[dict[str, list[str]], set[str]]:
        """(the names to copy, by group, in name order), and those of them to compare first."""
        plan: dict[str, list[str]] = {group.name: [] for group in GROUPS}
        compare: set[str] = set()
        for name in sorted(listed):
            group = group_of(name)
            if group is None:
                continue
            if name not in present:
                plan[group.name].append(name)
            elif name.startswith(REWRITTEN):
                plan[group.name].append(name)
                compare.add(name)
        return plan, compare

    # --- replicate ---------------------------------------------------------------------

    def run(self, *, deadline: float | None = None, progress: Callable[[str], None] | None = None,
            report: ReplicationReport | None = None) -> ReplicationReport:
        """Copy what the secondary lacks, then follow the primary's deletions; stop between
        copies once ``deadline`` (``time.monotonic()``) has passed.  ``report`` (default: a
        new one) is filled in as the run goes: ``passes`` is 1 once the checks passed."""
        report = ReplicationReport() if report is None else report
        with DaemonPool(max(self.concurrency, 8), "replicate-list") as lister, DaemonPool(1, "replicate-plan") as planner:
            theirs = lister.submit(self._list_secondary)  # meanwhile: the checks
            self.check()
            present = theirs.result()
            while True:
                report.passes += 1
                listing: dict[str, set[str]] = {}

                def plan_pass() -> tuple[dict[str, list[str]], set[str]]:
                    listing["listed"] = self._list_primary(lister)
                    return self._todo(listing["listed"], present)
                landed: set[str] = set()
                if IDENTITY not in present and report.passes == 1:  # a new secondary: see the module docstring
                    later = planner.submit(plan_pass)
                    early = self._list_early(lister, present)
                    copier = _Copier(self, early, set(), report, deadline, landed, progress, later=later)
                else:
                    plan, compare = plan_pass()
                    copier = _Copier(self, plan, compare, report, deadline, landed, progress)
                stopped = copier.run(gate=lambda group: group != HEADS or self._heads_now() == _heads(listing["listed"]))
                present |= landed
                if stopped == "deadline":
                    report.stopped = "deadline"
                    return report
                listed = listing["listed"]
                if stopped is None:
                    break
                if report.passes >= PASSES:
                    report.stopped = "primary changing"
                    return report
        self._delete(listed, present, report)
        report.complete = True
        return report

    def _heads_now(self) -> set[str]:
        return _heads(n for n in self.primary.list(HEADS + "/") if kind_of(n) is not None)

    def fetch(self, name: str) -> bytes | None:
        """``name``'s bytes on the primary, None if it was deleted since it was listed."""
        try:
            return self.primary.get(name)
        except ObjectNotFound:
            return None  # deleted on the primary since it was listed: its deletion follows

    def copy_one(self, name: str, read: cf.Future | None, compare: bool) -> int | None:
        """Copy one object (its bytes from ``read`` when read ahead); its size, :data:`SAME`
        when the secondary holds the same bytes, None when the primary no longer has it."""
        data = read.result() if read is not None else self.fetch(name)
        if data is None:
            return None
        if compare:
            try:
                if self.secondary.get(name) == data:
                    return SAME
            except ObjectNotFound:
                pass
        self._target.put(name, data)
        return len(data)

    def _gone(self, listed: set[str], present: set[str]) -> tuple[list[str], frozenset[str], frozenset[str]]:
        """What the secondary holds and the primary lacks: (what to delete there; what to
        keep, not removed on purpose on the primary; packs whose deletion waits for a later
        run, one in which the secondary holds no point header the primary lacks)."""
        gone = sorted(n for n in present - listed if not n.startswith(NOT_COPIED) and n != IDENTITY)
        points_behind = any(n.startswith("points/") for n in gone)
        judged = [n for n in gone if n.startswith(JUDGED)]
        if not judged:
            return gone, frozenset(), frozenset()
        verdict = keep_all(judged) if self.removals is None else self.removals(judged, not points_behind)
        wait = verdict.wait | {n for n in verdict.delete if points_behind and n.startswith("data/")}
        kept = verdict.keep - wait
        return [n for n in gone if n not in kept and n not in wait], kept, frozenset(wait)

    def _delete(self, listed: set[str], present: set[str], report: ReplicationReport) -> None:
        gone, kept, wait = self._gone(listed, present)
        report.missing_on_primary = len(kept)
        report.deferred_deletes += len(wait)  # a point here may still need them: a later run
        documents = [n for n in gone if not n.startswith(("data/", "index/", "keys/", "datakeys/"))]
        documents.sort(key=lambda n: not n.startswith(("points/", "point-status/")))  # point headers first
        later = [n for n in gone if n.startswith(("index/", "keys/", "datakeys/"))]
        packs = [n for n in gone if n.startswith("data/")]
        for name in documents + later + packs:
            self._delete_one(name, report)

    def _delete_one(self, name: str, report: ReplicationReport) -> None:
        try:
            self.secondary.delete(name)
        except StorageError:
            report.deferred_deletes += 1  # refused (an object lock): left for a later run
        else:
            report.deleted += 1

    # --- lag ---------------------------------------------------------------------------

    def lag(self) -> Lag:
        """What the secondary lacks now (nothing is copied)."""
        self.check()
        with DaemonPool(8, "replicate-list") as lister:
            present = self._list_secondary()
            listed = self._list_primary(lister)
            plan, compare = self._todo(listed, present)
        kept = self._gone(listed, present)[1]
        missing = [name for names in plan.values() for name in names
                   if name not in compare or self._differs(name)]
        size = 0
        for name in missing:
            try:
                size += self.primary.size(name)
            except ObjectNotFound:
                pass
        points = [n for n in missing if n.startswith("points/")]
        times = [t for t in map(self._point_time, points) if t]
        return Lag(len(missing), size, len(points), min(times) if times else None, len(kept))

    def _differs(self, name: str) -> bool:
        try:
            return self.primary.get(name) != self.secondary.get(name)
        except ObjectNotFound:
            return True

    def _point_time(self, name: str) -> str | None:
        if self.read_point is None:
            return None
        try:
            return self.read_point(name)
        except (StrongroomError, ObjectNotFound):
            return None


class _Copier:
    """One pass of copies in :data:`GROUPS` order (see the module docstring): a group
    starts when the groups it comes after are complete and ``gate(group)`` agrees; the
    small objects of waiting groups are read ahead."""

    def __init__(self, replicator: Replicator, plan: dict[str, list[str]], compare: set[str],
                 report: ReplicationReport, deadline: float | None, landed: set[str],
                 progress: Callable[[str], None] | None, later: cf.Future | None = None) -> None:
        self.r = replicator
        self.plan = plan
        self.compare = compare
        self.report = report
        self.deadline = deadline
        self.landed = landed
        self.progress = progress
        self.waiting = list(GROUPS)
        self.complete: set[str] = set()
        self.left = {name: len(names) for name, names in plan.items()}
        self.ready: dict[str, deque[str]] = {group.name: deque() for group in GROUPS}
        self.chains: dict[str, deque[str]] = {}
        ahead = [n for g in GROUPS if g.after for n in plan[g.name] if n not in compare]
        self.to_read = deque(ahead)
        self.read: dict[str, cf.Future] = {}  # read ahead, not yet copied
        self.taken: set[str] = set()  # copies submitted
        self.held: dict[str, int] = {}  # bytes read ahead, per name, until copied
        self.held_bytes = 0
        #: The whole plan (plan, compare), when ``plan`` holds only packs listed first: until it
        #: is merged, only packs are copied.
        self.later = later

    def run(self, gate: Callable[[str], bool]) -> str | None:
        """None once every group is copied; else why it stopped: "deadline", or "held" (by
        ``gate``); what is in flight then lands first.  Raises what a copy or the later plan raised."""
        copies: dict[cf.Future, str] = {}
        reads: dict[cf.Future, str] = {}
        with DaemonPool(self.r.concurrency, "replicate") as copier, DaemonPool(READ_AHEAD, "replicate-read") as reader:
            try:
                while True:
                    held = self._start_groups(gate)
                    if len(self.complete) == len(GROUPS):
                        return None
                    late = self.deadline is not None and time.monotonic() >= self.deadline
                    if held or late:
                        _wait_all(copies, self._landed)
                        return "deadline" if late else "held"
                    while len(copies) < self.r.concurrency and (name := self._next()) is not None:
                        self.taken.add(name)
                        future = copier.submit(self.r.copy_one, name, self.read.pop(name, None), name in self.compare)
                        copies[future] = name
                    while self.to_read and len(reads) < READ_AHEAD and self.held_bytes < READ_AHEAD_BYTES:
                        name = self.to_read.popleft()
                        if name not in self.taken:
                            future = reader.submit(self.r.fetch, name)
                            reads[future] = name
                            self.read[name] = future
                    if not copies and not reads and self.later is None:
                        continue  # nothing in flight: every started group is complete, start the next
                    plan = [self.later] if self.later is not None else []
                    done, _ = cf.wait([*copies, *reads, *plan], return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        if future is self.later:
                            continue  # merged by _start_groups
                        if future in reads:
                            name = reads.pop(future)
                            data = future.result() if future.exception() is None else None
                            if name in self.read and data is not None:
                                self.held[name] = len(data)
                                self.held_bytes += len(data)
                        else:
                            self._landed(copies.pop(future), future)
            finally:
                for future in (*copies, *reads):
                    future.cancel()

    def _merge(self) -> None:
        """Take the whole plan in: what was listed first is not copied twice, and an early
        group with names listed since is open again (the packs never closed before this)."""
        assert self.later is not None
        plan, compare = self.later.result()  # a failed listing raises here
        self.later = None
        early = {n for name in EARLY for n in self.plan[name]}
        self.compare |= compare
        for group in GROUPS:
            names = [n for n in plan[group.name] if n not in early]
            if group.after:
                self.to_read.extend(n for n in names if n not in self.compare)
            if group.name not in EARLY:
                self.plan[group.name], self.left[group.name] = names, len(names)
                continue
            self.plan[group.name] = self.plan[group.name] + names
            self.left[group.name] += len(names)
            if group in self.waiting:
                continue
            if names:
                self.complete.discard(group.name)
                chain = self.chains.get(group.name)
                if chain is not None:
                    chain.extend(names)
                    if not self.ready[group.name] and self.left[group.name] == len(names):
                        self.ready[group.name].append(chain.popleft())
                else:
                    self.ready[group.name].extend(names)
            elif not self.left[group.name]:
                self._completed(group)

    def _start_groups(self, gate: Callable[[str], bool]) -> bool:
        """Start the groups whose predecessors are complete; True if ``gate`` held one."""
        if self.later is not None and self.later.done():
            self._merge()
        started = True
        while started:
            started = False
            for group in list(self.waiting):
                if self.later is not None and (group.name not in EARLY or not self.plan[group.name]):
                    continue  # the whole plan first
                if not all(name in self.complete for name in group.after):
                    continue
                if not gate(group.name):
                    return True
                self.waiting.remove(group)
                started = True
                names = self.plan[group.name]
                if not names:
                    self._completed(group)
                elif group.in_order:
                    self.chains[group.name] = deque(names)
                    self.ready[group.name].append(self.chains[group.name].popleft())
                else:
                    self.ready[group.name].extend(names)
        return False

    def _next(self) -> str | None:
        for group in PRIORITY:
            if self.ready[group.name]:
                return self.ready[group.name].popleft()
        return None

    def _landed(self, name: str, future: cf.Future) -> None:
        size = future.result()  # a failed copy raises here, in the caller's thread
        self.held_bytes -= self.held.pop(name, 0)
        if size is not None:
            self.landed.add(name)  # on the secondary now
        if size is not None and size != SAME:
            self.report.copied += 1
            self.report.copied_bytes += size
        group = group_of(name)
        assert group is not None
        self.left[group.name] -= 1
        if self.progress:
            total = sum(len(names) for names in self.plan.values())
            done = total - sum(self.left.values())
            self.progress(Step(f"copying objects: {done}/{total}", done=done, total=total, unit="objects",
                               bytes=self.report.copied_bytes))
        chain = self.chains.get(group.name)
        if chain:
            self.ready[group.name].append(chain.popleft())
        if not self.left[group.name] and (self.later is None or group.name != PACKS):
            self._completed(group)

    def _completed(self, group: Group) -> None:
        self.complete.add(group.name)
        if self.progress and self.plan[group.name]:
            self.progress(f"copied {len(self.plan[group.name])} object(s) of {'/'.join(group.prefixes)}")


class DaemonPool:
    """Threads running submitted calls, with :class:`concurrent.futures.Future` results, as
    a ``ThreadPoolExecutor`` does, but daemon threads: a run left behind at its time bound
    (:mod:`strongroom.services.geo`), its calls retrying a secondary out of reach, never
    holds up the exit of the process (whose end is a kill the secondary is safe from).
    Each call runs in a copy of its submitter's context, so a run abandoned at its bound
    (:mod:`strongroom.services.bounded`) is abandoned in every thread of its pools."""

    def __init__(self, threads: int, name: str) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable, *args: object) -> cf.Future:
        future: cf.Future = cf.Future()
        self._calls.put((future, contextvars.copy_context().run, (fn, *args)))
        return future

    def map(self, fn: Callable, items: Iterable) -> list:
        return [future.result() for future in [self.submit(fn, item) for item in items]]

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args = call
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits for the future
                    future.set_exception(exc)

    def __enter__(self) -> DaemonPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in self._threads:
            self._calls.put(None)
        for thread in self._threads:
            thread.join()


def _heads(names: Iterable[str]) -> set[str]:
    return {n for n in names if n.startswith(HEADS + "/")}


def _wait_all(copies: dict[cf.Future, str], landed: Callable[[str, cf.Future], None]) -> None:
    for future in cf.as_completed(list(copies)):
        landed(copies.pop(future), future)


def _vault_id(store: Store) -> str | None:
    try:
        doc = json.loads(store.get(IDENTITY))
    except ObjectNotFound:
        return None
    except ValueError:
        return "(unreadable identity)"
    return doc.get("vault_id") if isinstance(doc, dict) else "(unreadable identity)"
