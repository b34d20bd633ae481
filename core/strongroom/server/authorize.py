"""Which role may do what to a hosted vault's objects: the gateway's authorization.

A request to the object gateway is one store operation (:class:`Action`: read, list,
put of a new object, put over an existing one, delete) on one object name.  The object's
kind (:func:`strongroom.repository.names.kind_of`) and the action decide the role it needs,
from :data:`TABLE`, Azure's matrix of backup roles (``docs/server.md``, "Roles"):

- **reader** lists everything and reads everything but the backed-up data (packs: a
  reader sees items, points, policies, jobs and alerts, but does not browse, restore or
  verify), and may acknowledge alerts (a new alert event);
- **operator** may also read the data (browse, restore, verify), back up and protect new
  items: it *adds* packs, index files, point headers, active point statuses, job records
  (of backups, restores and verifies), run claims, vault heads, journal entries, alerts,
  used-ticket records and the first version of an item.  It never overwrites or deletes a
  vault object, with one exception: the run claims its own token put through this server
  process (:class:`Taken`), which scheduled runs forget when they are done;
- **contributor** may also change policies and items (stop, resume, delete data),
  settings and alert sinks, take leases (only the exclusive operations do), soft-delete and undelete points, prune (delete packs, index
  files, point headers, statuses, prune marks, old heads), and verify or repair (move
  objects to quarantine);
- **owner** may also manage key slots, the vault identity (``strongroom.json``: upgrade,
  and its deletion: the vault's) - everything.

Nobody overwrites or deletes the security history through the gateway: settings
documents, journal entries and used-ticket records (an identical put, a retry, is
allowed: :func:`decide` is told when the bytes are the same).  A name of no vault kind
(a foreign object) is refused for everyone but reading.

What the table cannot see is in the object's content; :mod:`strongroom.server.rules`
checks that with the vault's key (settings history rules, soft delete, immutability,
guard tickets).  This module is pure: no I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from enum import Enum

import attrs

from ..repository.names import kind_of
from .roles import ROLES, at_least

__all__ = ["Action", "Decision", "TABLE", "Taken", "decide"]


class Action(str, Enum):
    READ = "read"
    LIST = "list"
    CREATE = "create"  # a put of a name that does not exist yet
    OVERWRITE = "overwrite"  # a put over an existing object
    DELETE = "delete"


R, O, C, W = "reader", "operator", "contributor", "owner"
NOBODY = None

#: kind label -> (role to create, role to overwrite, role to delete); NOBODY: refused to all.
TABLE: dict[str, tuple[str | None, str | None, str | None]] = {
    "vault identity": (W, W, W),
    "key slot": (W, W, W),
    "settings document": (C, NOBODY, NOBODY),
    "data key": (W, NOBODY, NOBODY),  # vault key rotate: an owner's, as adding a key slot; never changed
    "pack": (O, C, C),
    "index file": (O, C, C),
    "item": (O, C, C),  # create by an operator: only an item id with no version yet (rules)
    "point header": (O, C, C),
    "point status": (O, C, C),  # an operator's: state active only (rules)
    "policy": (C, C, C),
    "job record": (O, C, C),
    "run claim": (O, C, C),
    "prune mark or sweep": (C, C, C),
    "lease": (C, C, C),  # only the exclusive operations take one: prune, repair, rebuild-index
    "vault head": (O, C, O),  # delete: only one superseded by the newest eight (rules)
    "alert": (O, C, C),
    "alert event": (R, C, C),
    "alert sinks": (C, C, C),
    "journal entry": (O, NOBODY, NOBODY),
    "used guard ticket": (O, NOBODY, NOBODY),
    "quarantined object": (C, C, C),
}

#: What each action on a kind is called in a refusal ("role reader on vault V may not ...").
_VERBS = {Action.CREATE: "write", Action.OVERWRITE: "overwrite", Action.DELETE: "delete"}

#: Kinds an operator may delete (or rewrite) when its own token put them (Taken).
TRANSIENT = frozenset({"run claim"})
#: Kinds a reader may not read: the backed-up data itself (restore, browse and verify
#: read it; Azure's reader is a monitoring role).
DATA_KINDS = frozenset({"pack"})


@attrs.frozen
class Decision:
    """The answer: allowed, or refused with an HTTP status and the reason."""

    allowed: bool
    status: int = 200
    needed: str | None = None  # the role the action needs (None: nobody may)
    what: str = ""  # "delete point header points/..."

    @classmethod
    def allow(cls, what: str = "") -> Decision:
        return cls(True, 200, None, what)


def decide(role: str | None, action: Action, name: str | None, *, same_bytes: bool = False,
           taken_by_caller: bool = False) -> Decision:
    """May a caller with ``role`` on the vault do ``action`` to ``name``?

    ``same_bytes``: an overwrite with the bytes already stored (a retried put).
    ``taken_by_caller``: the object is a lease or claim the caller's token put.
    """
    if role is not None and role not in ROLES:
        role = None
    if action in (Action.READ, Action.LIST):
        kind = kind_of(name or "") if action is Action.READ else None
        if kind is not None and kind.label in DATA_KINDS:
            what, needed = f"read backed-up data ({kind.label} {name})", O
        else:
            what, needed = ("read the vault" if action is Action.READ else "list the vault's objects"), R
        return Decision.allow(what) if at_least(role, needed) else Decision(False, 403, needed, what)
    kind = kind_of(name or "")
    verb = _VERBS[action]
    if kind is None:
        return Decision(False, 400 if role is not None else 403, NOBODY,
                        f"{verb} {name!r}, which is not a vault object name")
    what = f"{verb} {kind.label} {name}"
    if not at_least(role, R):
        return Decision(False, 403, R, what)
    if action is Action.OVERWRITE and same_bytes:
        action = Action.CREATE  # a retried put changes nothing
    create, overwrite, delete = TABLE[kind.label]
    needed = {Action.CREATE: create, Action.OVERWRITE: overwrite, Action.DELETE: delete}[action]
    if (taken_by_caller and kind.label in TRANSIENT and action is not Action.CREATE
            and at_least(role, O)):
        return Decision.allow(what)
    if needed is NOBODY:
        return Decision(False, 403, NOBODY, what)
    if not at_least(role, needed):
        return Decision(False, 403, needed, what)
    return Decision.allow(what)


class Taken:
    """Which token put which run claim, in this server process (bounded).

    An operator may delete a claim only when its own token put it here: a scheduled run
    forgets the claims of its earlier slots.  What another token, another server process
    or this one before a restart put stays (a claim of a slot already run changes nothing)
    for a contributor.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._by: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit

    def record(self, vault: str, name: str, token_id: str) -> None:
        kind = kind_of(name)
        if kind is None or kind.label not in TRANSIENT:
            return
        with self._lock:
            self._by[(vault, name)] = token_id
            self._by.move_to_end((vault, name))
            while len(self._by) > self.limit:
                self._by.popitem(last=False)

    def by(self, vault: str, name: str, token_id: str) -> bool:
        with self._lock:
            return self._by.get((vault, name)) == token_id

    def forget(self, vault: str, name: str) -> None:
        with self._lock:
            self._by.pop((vault, name), None)
