"""Object locks on storage: what immutability asks of an S3 object-lock bucket, kept up.

While a vault's immutability is on (:class:`~strongroom.policy.security.Immutability`)
and its storage has object lock (:func:`~strongroom.storage.object_lock_of`), every
object the vault writes is locked by :class:`~strongroom.storage.locking.LockingStore`
for ``lock_days`` from the time of writing, in GOVERNANCE while immutability is
``enabled`` and COMPLIANCE once it is ``locked`` (:meth:`ObjectLockService.policy`).

A lock of a fixed length would lapse under data that live points still need (packs are
shared by many points, as in Kopia), so :meth:`ObjectLockService.extend` moves the
retain-until date of every object still needed to now + ``lock_days``.  It runs when due
(:meth:`ObjectLockService.due`: the last extension in this mode and span is older than a
third of the span, or there was none), from prune and from ``run_due`` (the agent), and
at once when immutability is switched on or locked (:mod:`strongroom.cli.immutability_cmd`).
"Still needed" is every vault object but:

- the transient ones (:data:`~strongroom.storage.locking.TRANSIENT_PREFIXES`), never locked;
- vault heads older than the newest :data:`~strongroom.services.head.KEEP` (which the
  vault deletes once their lock lapses: newer heads supersede them);
- garbage: the header and statuses of a point whose retention ended, or which was
  soft-deleted and whose purge time passed (prune deletes them once their lock lapses;
  until then it counts their data live), every pack whose blobs a prune mark holds all of or a sweep
  dooms, and every index file that a sweep replaced or that names only such packs.

Garbage is not extended: its lock lapses and the next prune frees it (prune keeps, and
counts, what is still locked: :class:`~strongroom.errors.ObjectLocked`).  Dates are the
real time (:attr:`ObjectLockService.lock_clock`), not the vault's clock, because the
storage compares them with its own; :attr:`ObjectLockService.day` is one lock day
(tests shorten it to seconds).  An extension is a ``object-locks`` job; the newest
(mode, span, time) is also kept in ``state_file`` on this machine, so the due check
costs no listing.  Credentials without ``BypassGovernanceRetention`` cannot turn an
object's GOVERNANCE into COMPLIANCE: such objects keep GOVERNANCE, their date moved
forward, and the report counts them (``kept_governance``).

:meth:`ObjectLockService.hidden` and :meth:`~ObjectLockService.recover` find and remove
the delete markers that a raw ``DeleteObject`` (someone holding the credentials) left
over the vault's objects: the objects come back as they were.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound, StorageError
from ..models import parse_iso
from ..engine.gcstate import Mark, Sweep, cycles_on_storage, read_part
from ..repository.maintenance import replacement_name
from ..repository.pack import pack_name
from ..storage import capabilities_of, object_lock_of
from ..storage.capabilities import ObjectLock
from ..storage.locking import HiddenObject, LockPolicy, is_transient_name, lock_object
from .head import HEAD_PREFIX
from .head import KEEP as HEADS_KEPT

if TYPE_CHECKING:
    from ..policy.security import Immutability
    from ..repository.repository import Repository
    from ..storage import Store
    from .items import ItemBook
    from .jobs import JobLog
    from .points import PointBook
    from .retention import Retention

__all__ = ["JOB_TYPE", "ExtendReport", "ObjectLockService", "hidden_vault_objects", "unhide_objects"]

JOB_TYPE = "object-locks"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.define
class ExtendReport:
    """What one extension did; ``ran`` false with the ``reason`` it did not run."""

    ran: bool = False
    reason: str = ""
    mode: str | None = None
    until: str | None = None
    extended: int = 0
    kept_governance: int = 0
    garbage: int = 0
    transient: int = 0
    gone: int = 0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


class ObjectLockService:
    """Object locks of one vault (see the module docstring)."""

    def __init__(self, repo: Repository, store: Store, immutability: Callable[[], Immutability],
                 jobs: JobLog, items: ItemBook, points: PointBook, retention: Retention,
                 clock: Callable[[], dt.datetime], state_file: Path | None = None) -> None:
        self.repo = repo
        self.store = store
        self.immutability = immutability
        self.jobs = jobs
        self.items = items
        self.points = points
        self.retention = retention
        self.clock = clock
        self.state_file = state_file
        #: The storage's notion of now (retain-until dates are compared with it).
        self.lock_clock: Callable[[], dt.datetime] = _utcnow
        #: One lock day.
        self.day = dt.timedelta(days=1)

    # --- what is in force ----------------------------------------------------------------

    def storage_lock(self) -> ObjectLock:
        """The object lock of the vault's storage (asked once; StorageError if it cannot say)."""
        return object_lock_of(self.store)

    def policy(self) -> LockPolicy | None:
        """How new objects are locked now; None when immutability is off or the storage
        has no object lock."""
        imm = self.immutability()
        if not imm.on or imm.lock_mode is None:
            return None
        if not capabilities_of(self.store).object_lock or not self.storage_lock().enabled:
            return None
        return LockPolicy(imm.lock_mode, imm.lock_days * self.day)

    def describe(self) -> dict:
        """The object lock state, for ``vault info`` and ``vault security``."""
        imm = self.immutability()
        try:
            lock = self.storage_lock()
            storage = lock.describe()
        except StorageError as exc:
            lock, storage = None, f"unknown ({exc})"
        enforced = bool(imm.on and lock is not None and lock.enabled)
        last = self._last()
        return {
            "immutability": imm.state,
            "lock_days": imm.lock_days,
            "client_side_only": imm.client_side_only,
            "storage_object_lock": storage,
            "enforced_by_storage": enforced,
            "mode": imm.lock_mode if enforced else None,
            "last_extension": last.get("at") if last else None,
        }

    def summary(self) -> str:
        """:meth:`describe` in one line."""
        d = self.describe()
        if d["immutability"] == "disabled":
            return f"immutability disabled; storage: {d['storage_object_lock']}"
        how = (f"objects locked in {d['mode']} for {d['lock_days']} day(s), extended while needed"
               if d["enforced_by_storage"] else "not enforced by storage (client side only)")
        return f"immutability {d['immutability']}: {how}; storage: {d['storage_object_lock']}"

    # --- extension -----------------------------------------------------------------------

    def due(self) -> tuple[bool, str]:
        """Whether an extension is due now, and why (or why not)."""
        policy = self.policy()
        if policy is None:
            return False, "immutability is off or the storage has no object lock"
        last = self._last()
        if not last or last.get("mode") != policy.mode or last.get("span") != policy.span.total_seconds():
            return True, "no extension yet in this mode and span"
        try:
            at = dt.datetime.fromisoformat(last["at"])
        except (KeyError, TypeError, ValueError):
            return True, "the last extension's time cannot be read"
        if self.lock_clock() - at >= policy.span / 3:
            return True, "the last extension is older than a third of the lock"
        return False, f"extended at {last['at']}, less than a third of the lock ago"

    def extend_if_due(self) -> ExtendReport:
        """:meth:`extend` when :meth:`due`; else a report saying why not."""
        due, reason = self.due()
        return self.extend(reason=reason) if due else ExtendReport(reason=reason)

    def extend(self, *, reason: str = "asked for") -> ExtendReport:
        """Lock every object still needed until now + the span (see the module docstring)."""
        policy = self.policy()
        if policy is None:
            return ExtendReport(reason="immutability is off or the storage has no object lock")
        report = ExtendReport(ran=True, reason=reason, mode=policy.mode)
        with self.jobs.running(JOB_TYPE, None, mode=policy.mode) as run:
            names, report.garbage, report.transient = self.needed()
            started = self.lock_clock()
            until = policy.until(started)
            report.until = until.isoformat(timespec="seconds")

            def lock(name: str) -> str:
                try:
                    return lock_object(self.store, name, until, policy.mode).mode
                except ObjectNotFound:
                    return "gone"

            threads = max(1, min(capabilities_of(self.store).concurrency, len(names)))
            with ThreadPoolExecutor(threads) as pool:
                for mode in pool.map(lock, names):
                    if mode == "gone":
                        report.gone += 1
                    else:
                        report.extended += 1
                        report.kept_governance += mode != policy.mode
            run.end("completed", details=report.to_dict())
        self._remember({"at": started.isoformat(), "mode": policy.mode, "span": policy.span.total_seconds()})
        return report

    def needed(self) -> tuple[list[str], int, int]:
        """The objects to extend, and how many were left out as garbage and as transient."""
        names = self.repo.list_names("")
        transient = {n for n in names if is_transient_name(n)}
        garbage = self._garbage(names)
        keep = [n for n in names if n not in transient and n not in garbage]
        return keep, len(garbage - transient), len(transient)

    def _garbage(self, names: list[str]) -> set[str]:
        present = set(names)
        garbage = self._expired_points(present)
        heads = sorted(n for n in names if n.startswith(HEAD_PREFIX))
        garbage |= set(heads[:-HEADS_KEPT])
        dead = self._dead_packs()
        garbage |= {pack_name(p) for p in dead} & present
        index_files = sorted(n for n in names if n.startswith("index/"))
        for name, entries in self.repo.read_index_files(index_files):
            if replacement_name(name) in present:
                garbage.add(name)  # a sweep wrote its replacement; deleting it was refused
            elif not isinstance(entries, IntegrityError) and entries and all(
                    e.pack_id in dead or pack_name(e.pack_id) not in present for e in entries):
                garbage.add(name)
        return garbage

    def _expired_points(self, present: set[str]) -> set[str]:
        """Headers and statuses of points a prune removes now: retention ended, or
        soft-deleted with their purge time passed."""
        now = self.clock()
        headers: set[str] = set()
        for item in self.items.list():
            survey = self.points.survey(item, notices=False)
            for deleted in getattr(survey, "deleted", ()):  # soft-deleted points (services/softdelete.py)
                purge_at = getattr(deleted, "purge_at", None)
                if purge_at and parse_iso(purge_at) <= now:
                    headers.add(deleted.point.object_name)
            points = list(survey.points)
            if points:
                for point, verdict in zip(points, self.retention.evaluate(item, points, now)):
                    if point.state == "active" and not verdict.keep:
                        headers.add(point.object_name)
        prefixes = tuple("point-status/" + h.removeprefix("points/") + "/" for h in headers)
        return headers | ({n for n in present if n.startswith(prefixes)} if prefixes else set())

    def _dead_packs(self) -> set[str]:
        """Packs a sweep dooms, or all of whose blobs a mark holds."""
        doomed: set[str] = set()
        marked: dict[str, set[bytes]] = {}
        for cycle, parts in cycles_on_storage(self.repo).items():
            for part in sorted(parts):
                try:
                    found = read_part(self.repo, cycle, part)
                except IntegrityError:
                    continue
                if isinstance(found, Sweep):
                    doomed |= found.doomed
                elif isinstance(found, Mark):
                    for held in (found.packs, found.duplicates):
                        for pack, blobs in held.items():
                            marked.setdefault(pack, set()).update(blobs)
        if marked:
            blobs_of: dict[str, set[bytes]] = {}
            for _, entries in self.repo.read_index_files(sorted(self.repo.list_names("index/"))):
                if not isinstance(entries, IntegrityError):
                    for e in entries:
                        if e.pack_id in marked:
                            blobs_of.setdefault(e.pack_id, set()).add(e.blob_id)
            doomed |= {p for p, blobs in marked.items() if blobs_of.get(p, set()) <= blobs}
        return doomed

    # --- this machine's memory of the last extension --------------------------------------

    def _last(self) -> dict | None:
        if self.state_file is not None:
            try:
                found = json.loads(self.state_file.read_text())
                if isinstance(found, dict):
                    return found
            except (OSError, ValueError):
                pass
        for job in reversed(self.jobs.list(type_=JOB_TYPE, state="completed")):
            details = job.details or {}
            if job.ended and details.get("ran"):
                imm = self.immutability()
                return {"at": details.get("started") or job.ended, "mode": details.get("mode"),
                        "span": (imm.lock_days * self.day).total_seconds()}
        return None

    def _remember(self, state: dict) -> None:
        if self.state_file is None:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.state_file.with_suffix(".tmp")
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # the jobs say it too

    # --- hidden objects -------------------------------------------------------------------

    def hidden(self) -> list[HiddenObject]:
        return hidden_vault_objects(self.store)

    def recover(self, found: list[HiddenObject]) -> int:
        return unhide_objects(self.store, found)


def hidden_vault_objects(store: Store) -> list[HiddenObject]:
    """The vault's objects on ``store`` hidden by a delete marker (foreign and transient
    objects left out).  Needs no key: the vault's identity may be hidden too."""
    from ..repository.names import is_vault_name
    from ..storage.locking import hidden_objects

    return [h for h in hidden_objects(store) if is_vault_name(h.name) and not is_transient_name(h.name)]


def unhide_objects(store: Store, found: list[HiddenObject]) -> int:
    """Remove the delete markers hiding ``found``; how many objects came back."""
    from ..storage.locking import unhide

    return sum(1 for h in found if unhide(store, h.name))
