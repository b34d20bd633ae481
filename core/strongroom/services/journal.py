"""The audit journal: one entry per change to the vault, each chained to the one before.

Every operation that changes the vault (items, policies, points, keys, settings, security,
restores) appends entries ``journal/<day>/<time-id>`` (``<day>``: ``YYYYMMDD``, UTC), encrypted and authenticated like every
document: a ``started`` entry before the operation does anything, and one with its outcome
(``succeeded``, ``failed``, ``cancelled``) after; an operation refused by a security rule
gets one ``refused`` entry.  An entry holds the time, host, user, operation, parameters,
outcome, the nonce of the guard ticket that authorized it (if any), and ``prev``: the
SHA-256 of the entry that was newest when it was written (its name in ``prev_name``).

:meth:`Journal.verify` walks the chain: an entry that does not decrypt was changed (or
damaged); an entry whose predecessor is missing shows a gap (an entry was deleted); an
entry whose predecessor's hash differs from its ``prev`` shows that the predecessor was
rewritten.  Two writers at once may both follow the same entry: a fork is not damage.
Deleting the newest entries leaves no successor to notice it; object lock (immutability
on S3) is what stops that.

Appending lists only the day's entries (and, on the first entry of a day, the day
before; a full listing only after a longer pause), so its cost does not grow with the
journal.

Guard tickets are single use: :meth:`Journal.use_ticket` records a ticket's nonce as
``tickets/<nonce>`` (beside its journal entry) and refuses a nonce seen before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import socket
from typing import TYPE_CHECKING, Callable, Iterator

import attrs

from ..errors import IntegrityError, ObjectNotFound, StrongroomError, TicketInvalid
from ..models import iso, time_id, time_of

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["JOURNAL_PREFIX", "TICKETS_PREFIX", "Journal", "JournalEntry", "JournalCheck", "actor"]

JOURNAL_PREFIX = "journal/"
TICKETS_PREFIX = "tickets/"
OUTCOMES = ("started", "succeeded", "failed", "cancelled", "refused")


def actor() -> dict[str, str]:
    """Who is acting: the host, and the user (``STRONGROOM_USER`` or the login name)."""
    try:
        user = os.environ.get("STRONGROOM_USER") or getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user}


@attrs.frozen
class JournalEntry:
    """One entry, as stored."""

    name: str
    time: str
    host: str
    user: str
    operation: str
    params: dict
    outcome: str
    detail: str = ""
    ticket: str | None = None
    prev: str | None = None
    prev_name: str | None = None
    role: str | None = None

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        del doc["name"]
        return doc

    @classmethod
    def from_dict(cls, name: str, doc: object) -> JournalEntry:
        if not isinstance(doc, dict):
            raise IntegrityError(what=name, reason="not a journal entry")
        try:
            entry = cls(name=name, **doc)
        except TypeError as exc:
            raise IntegrityError(what=name, reason=f"not a journal entry ({exc})") from None
        if not isinstance(entry.params, dict) or entry.outcome not in OUTCOMES:
            raise IntegrityError(what=name, reason="not a journal entry")
        return entry


def entry_hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@attrs.frozen
class JournalCheck:
    """What :meth:`Journal.verify` found: entries read, and problems (empty: intact)."""

    entries: int
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


class Journal:
    """The audit journal of one vault (see the module docstring)."""

    def __init__(self, repo: Repository, clock: Callable[[], dt.datetime],
                 who: Callable[[], dict[str, str]] = actor) -> None:
        self.repo = repo
        self.clock = clock
        self.who = who
        self._newest: tuple[str, str] | None = None  # (name, hash) of the newest entry this process wrote

    # --- writing -------------------------------------------------------------------------

    def record(self, operation: str, params: dict | None = None, outcome: str = "succeeded", *,
               detail: str = "", ticket: str | None = None) -> JournalEntry:
        """Append one entry."""
        now = self.clock()
        newest = self._newest_name(now)
        if newest is not None:
            now = max(now, time_of(newest) + dt.timedelta(microseconds=1))  # sorts after it
        name = f"{JOURNAL_PREFIX}{day_of(now)}/{time_id(now)}"
        prev_name, prev = self._hash_of(newest)
        who = self.who()
        entry = JournalEntry(name=name, time=iso(now), host=who.get("host", ""), user=who.get("user", ""),
                             role=who.get("role"), operation=operation, params=_plain(params or {}), outcome=outcome,
                             detail=detail[:2000], ticket=ticket, prev=prev, prev_name=prev_name)
        doc = entry.to_dict()
        self.repo.put_document(name, doc)
        self._newest = (name, entry_hash(doc))
        return entry

    @contextlib.contextmanager
    def operation(self, operation: str, params: dict | None = None, *, ticket: str | None = None) -> Iterator[None]:
        """Journal ``operation``: ``started`` before the body runs, its outcome after.
        A security refusal inside is journaled by whoever refused it, not twice."""
        from ..errors import SecurityError

        self.record(operation, params, "started", ticket=ticket)
        try:
            yield
        except SecurityError:
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            self.record(operation, params, "cancelled", detail=type(exc).__name__)
            raise
        except BaseException as exc:
            detail = str(exc).splitlines()[0] if isinstance(exc, StrongroomError) and str(exc) else type(exc).__name__
            with contextlib.suppress(StrongroomError, OSError):
                self.record(operation, params, "failed", detail=detail)
            raise
        self.record(operation, params, "succeeded")

    def use_ticket(self, nonce: str, operation: str) -> None:
        """Record that the ticket with ``nonce`` was used; TicketInvalid if it was before."""
        name = self.check_ticket(nonce, operation)
        self.repo.put_document(name, {"operation": operation, "used": iso(self.clock())})

    def check_ticket(self, nonce: str, operation: str) -> str:
        """TicketInvalid if the ticket with ``nonce`` was used before (or its nonce is
        malformed); writes nothing.  The name its use is recorded under."""
        if not nonce or len(nonce) != 32 or any(c not in "0123456789abcdef" for c in nonce):
            raise TicketInvalid(operation=operation, reason="its nonce is malformed")
        name = f"{TICKETS_PREFIX}{nonce}"
        if self.repo.store.exists(name):
            raise TicketInvalid(operation=operation, reason="it was used before (a ticket is good for one operation)")
        return name

    def _newest_name(self, now: dt.datetime) -> str | None:
        """The newest entry on storage: today's shard, else yesterday's, else all of them."""
        for day in (now, now - dt.timedelta(days=1)):
            names = self.repo.list_names(f"{JOURNAL_PREFIX}{day_of(day)}/")
            if names:  # (a writer whose clock is a day ahead forks the chain: not damage)
                return max(names)
        return max(self.repo.list_names(JOURNAL_PREFIX), default=None)

    def _hash_of(self, newest: str | None) -> tuple[str | None, str | None]:
        if newest is None:
            return None, None
        if self._newest is not None and self._newest[0] == newest:
            return self._newest
        try:
            return newest, entry_hash(self.repo.get_document(newest))
        except (IntegrityError, ObjectNotFound):
            return newest, None  # a damaged predecessor: verify reports it

    # --- reading -------------------------------------------------------------------------

    def entries(self, since: dt.datetime | None = None) -> list[JournalEntry]:
        """Every readable entry, oldest first (from ``since``); damaged ones are left out."""
        names = sorted(self.repo.list_names(JOURNAL_PREFIX))
        if since is not None:
            names = [n for n in names if time_of(n) >= since]
        out = []
        for name, doc in self._read(names):
            if doc is not None:
                with contextlib.suppress(IntegrityError):
                    out.append(JournalEntry.from_dict(name, doc))
        return out

    def verify(self) -> JournalCheck:
        """Walk the chain (see the module docstring)."""
        names = sorted(self.repo.list_names(JOURNAL_PREFIX))
        docs = dict(self._read(names))
        problems: list[str] = []
        hashes: dict[str, str] = {}
        for name in names:
            doc = docs.get(name)
            try:
                entry = JournalEntry.from_dict(name, doc) if doc is not None else None
            except IntegrityError:
                entry = None
            if entry is None:
                problems.append(f"{name}: changed or damaged (it does not decrypt as a journal entry)")
            else:
                hashes[name] = entry_hash(doc)  # type: ignore[arg-type]
        for name in names:
            doc = docs.get(name)
            if name not in hashes or doc is None:
                continue
            prev_name, prev = doc.get("prev_name"), doc.get("prev")
            if prev_name is None:
                if name != names[0]:
                    problems.append(f"{name}: names no predecessor, but entries come before it")
                continue
            if prev_name not in docs:
                problems.append(f"gap before {name}: the entry it follows, {prev_name}, is missing")
            elif prev_name in hashes and prev is not None and hashes[prev_name] != prev:
                problems.append(f"{prev_name}: changed after {name} was written (its hash differs)")
        return JournalCheck(entries=len(names), problems=tuple(problems))

    def _read(self, names: list[str]) -> list[tuple[str, dict | None]]:
        def one(name: str) -> dict | None:
            try:
                return self.repo.get_document(name)
            except (IntegrityError, ObjectNotFound):
                return None

        if len(names) < 4:
            return [(name, one(name)) for name in names]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.repo.io_threads) as pool:
            return list(zip(names, pool.map(one, names)))


def day_of(moment: dt.datetime) -> str:
    """The journal shard of ``moment``: its UTC day, ``YYYYMMDD``."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%d")


def _plain(params: dict) -> dict:
    """``params`` as JSON can hold them (datetimes as ISO text, others as strings)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dt.datetime):
            value = iso(value)
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
            value = str(value)
        out[str(key)] = value
    return out
