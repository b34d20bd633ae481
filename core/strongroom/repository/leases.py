"""Leases: ``leases/<lease-id>``, held by the few exclusive operations (prune, rebuild-index).

A lease is an encrypted document naming the operation, its holder (host and process)
and when it expires.  Backups never take one.  Storage offers no atomic
"create if absent", so a lease is taken by *write, then look*:

1. list ``leases/``: a lease of another holder that has not expired means "busy"
   (:class:`~strongroom.errors.LeaseHeld`); expired ones are deleted;
2. write our own lease ``leases/<time-id>``;
3. list again: if any other unexpired lease is there, delete ours and report busy.

Two processes that race may both back off, but both can never go on: whichever listed
second after writing sees the other's lease.  (This needs storage whose listing shows a
completed write, as local folders and S3 do.)

A lease lasts ``ttl`` seconds and a background thread renews it every ``ttl / 3``, by
writing a new lease document and deleting the previous one, so a process that is
killed leaves a lease that expires by itself within ``ttl``.  Before each destructive
step the holder calls :meth:`Lease.check`, which raises
:class:`~strongroom.errors.LeaseLost` if the lease ran out (renewals failed, or the
process was suspended), so it never acts on a lease another process may now hold.

A lease document that cannot be read (it fails authentication, or is malformed: a
field that is not text, an expiry without a time zone) counts as held by an unknown
holder until ``DEFAULT_TTL`` after the time in its name, never as an error: listing
leases never raises for a damaged one.  A foreign object under ``leases/`` (a name that
is not a lease's, :mod:`.names`) is not a lease: it is neither read nor deleted.
Leases are never locked by the vault (object lock); should the bucket's default
retention lock one, the delete that storage refuses is skipped
(:func:`_delete_unless_locked`): an expired lease is ignored by every reader anyway,
and a released one blocks others until it expires.

Clock assumption: the clocks of the hosts sharing a vault agree to well within ``ttl``
(NTP does this).  ``clock`` is injectable for tests.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, LeaseHeld, LeaseLost, ObjectLocked, ObjectNotFound, StrongroomError
from ..models import damaged, iso, new_id, parse_iso, stored_time, time_id, time_of, utcnow

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["LEASE_PREFIX", "Lease", "LeaseInfo", "read_leases"]

LEASE_PREFIX = "leases/"
DEFAULT_TTL = 300.0


@attrs.frozen
class LeaseInfo:
    """One lease document as read from storage."""

    name: str
    token: str
    operation: str
    holder: str
    expires: dt.datetime

    def to_dict(self) -> dict:
        return {"token": self.token, "operation": self.operation, "holder": self.holder,
                "expires": iso(self.expires)}

    @classmethod
    def from_dict(cls, name: str, doc: object) -> LeaseInfo:
        """The lease stored at ``name`` as ``doc``; IntegrityError if it is malformed."""
        what = f"lease {name}"
        if not isinstance(doc, dict):
            raise damaged(what, "not a JSON object")
        fields = {}
        for key in ("token", "operation", "holder"):
            if not isinstance(doc.get(key), str):
                raise damaged(what, f"field '{key}' is not text")
            fields[key] = doc[key]
        expires = parse_iso(stored_time(doc.get("expires"), "expires", what)).astimezone(dt.timezone.utc)
        return cls(name, fields["token"], fields["operation"], fields["holder"], expires)


def read_leases(repo: Repository, now: dt.datetime) -> tuple[list[LeaseInfo], list[str]]:
    """(unexpired leases, names of expired ones).  An unreadable lease counts as held
    for ``DEFAULT_TTL`` after the time in its name."""
    live, expired = [], []
    for name in repo.list_names(LEASE_PREFIX):
        try:
            info = LeaseInfo.from_dict(name, repo.get_document(name))
        except ObjectNotFound:
            continue
        except IntegrityError:
            try:
                until = time_of(name) + dt.timedelta(seconds=DEFAULT_TTL)
            except (ValueError, OverflowError):
                until = now
            info = LeaseInfo(name, "", "unknown", "unreadable lease", until)
        if info.expires > now:
            live.append(info)
        else:
            expired.append(name)
    return live, expired


@attrs.define
class Lease:
    """A lease held by this process; use as a context manager (acquire ... release)."""

    repo: Repository
    operation: str
    ttl: float = DEFAULT_TTL
    clock: Callable[[], dt.datetime] = utcnow
    token: str = attrs.field(factory=lambda: new_id(8))
    holder: str = attrs.field(factory=lambda: f"{socket.gethostname()} pid {os.getpid()}")
    name: str | None = None
    expires: dt.datetime | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _stop: threading.Event = attrs.field(factory=threading.Event)
    _thread: threading.Thread | None = None
    _renew_error: BaseException | None = None

    def _busy(self, other: LeaseInfo) -> LeaseHeld:
        return LeaseHeld(operation=other.operation.capitalize(), lease=other.name.rsplit("/", 1)[-1],
                         holder=other.holder, until=iso(other.expires)[:19])

    def _others(self) -> list[LeaseInfo]:
        live, expired = read_leases(self.repo, self.clock())
        for name in expired:
            _delete_unless_locked(self.repo, name)
        return [lease for lease in live if lease.token != self.token]

    def _write(self) -> None:
        now = self.clock()
        name = f"{LEASE_PREFIX}{time_id(now)}"
        expires = now + dt.timedelta(seconds=self.ttl)
        info = LeaseInfo(name, self.token, self.operation, self.holder, expires)
        self.repo.put_document(name, info.to_dict())
        old, self.name, self.expires = self.name, name, expires
        if old is not None:
            _delete_unless_locked(self.repo, old)

    def acquire(self) -> Lease:
        others = self._others()
        if others:
            raise self._busy(others[0])
        self._write()
        others = self._others()
        if others:
            self.release()
            raise self._busy(others[0])
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.operation}", daemon=True)
        self._thread.start()
        return self

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self._lock:
                    if self.expires is not None and self.clock() < self.expires:
                        self._write()
            except (StrongroomError, OSError) as exc:
                self._renew_error = exc  # check() reports it once the lease runs out

    def check(self) -> None:
        """LeaseLost unless the lease is still ours and has not expired."""
        with self._lock:
            if self.expires is None or self.clock() >= self.expires:
                reason = f"renewing failed: {self._renew_error}" if self._renew_error else "it expired"
                raise LeaseLost(operation=self.operation, reason=reason)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self.name is not None:
                _delete_unless_locked(self.repo, self.name)
            self.name = self.expires = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _delete_unless_locked(repo: Repository, name: str) -> None:
    """Delete lease ``name``; one that storage keeps locked stays (see the module docstring)."""
    try:
        repo.store.delete(name)
    except ObjectLocked:
        pass
