"""Run claims: ``runs/<subject>/<slot-id>/<claim-id>``, so one scheduled run happens once.

``subject`` is an item id (its backups), ``<item-id>/drill`` (its restore drills,
:func:`drill_subject`), or ``prune``; ``slot-id`` the slot's UTC time
(``20261121T020000Z``); ``claim-id`` a time id.  Before ``run-due`` (or the agent) starts
scheduled work for a slot it *claims* the slot, in the way leases are taken:

1. list the slot's claims; if there are any, look again a moment later (a process that
   lost a race removes its claim at once): claims still there mean the slot is taken;
2. write a claim; list again: if ours is the only one, the slot is ours;
3. otherwise remove ours, wait a random moment and start over (a few times at most).

Two processes can never both win (whichever lists second after writing sees the other's
claim), so two ``run-due`` started together - on one host or two - run each due backup
once.  The winning claim stays: the latest claimed slot of a subject is *when it last
ran* for :func:`strongroom.policy.due.due_slot`, whatever the run's outcome.  Claims of
older slots are removed once a newer slot is claimed.  An item's drill claims sit under
its backup claims' prefix without being taken for them (a claim of a subject is exactly
``<slot-id>/<claim-id>`` after the subject), so forgetting an item's claims forgets its
drill claims too.  Only names of claims count
(:mod:`strongroom.repository.names`): a foreign object under ``runs/`` neither takes a
slot nor is removed.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import time
from typing import TYPE_CHECKING

from ..errors import ObjectLocked
from ..models import iso, time_id

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["CLAIM_PREFIX", "Claims", "drill_subject", "slot_id"]

CLAIM_PREFIX = "runs/"
_SLOT_FORMAT = "%Y%m%dT%H%M%SZ"


def slot_id(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime(_SLOT_FORMAT)


def drill_subject(item_id: str) -> str:
    """The claim subject of an item's scheduled drills."""
    return f"{item_id}/drill"


def _slot_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, _SLOT_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


class Claims:
    """The claims of one subject (an item id, or ``prune``)."""

    def __init__(self, repo: Repository, subject: str, *, settle: float = 0.2, attempts: int = 5) -> None:
        self.repo = repo
        self.prefix = f"{CLAIM_PREFIX}{subject}/"
        self.settle = settle
        self.attempts = attempts

    def _names(self, slot: dt.datetime | None = None) -> list[str]:
        prefix = self.prefix + (f"{slot_id(slot)}/" if slot else "")
        return sorted(self.repo.list_names(prefix))

    def _slot_of(self, name: str) -> dt.datetime | None:
        """The slot of a claim of this subject (``<prefix><slot>/<claim>``), else None."""
        rest = name[len(self.prefix):].split("/")
        return _slot_time(rest[0]) if len(rest) == 2 else None

    def last_slot(self) -> dt.datetime | None:
        """The latest slot ever claimed, or None."""
        return max((s for s in map(self._slot_of, self._names()) if s is not None), default=None)

    def claim(self, slot: dt.datetime, now: dt.datetime) -> bool:
        """Try to take ``slot``; True if this process may run it."""
        prefix = f"{self.prefix}{slot_id(slot)}/"
        for attempt in range(self.attempts):
            if self._names(slot):
                time.sleep(self.settle)
                if self._names(slot):
                    return False
            mine = prefix + time_id(now)
            self.repo.put_document(mine, {"slot": iso(slot), "claimed": iso(now),
                                          "holder": f"{socket.gethostname()} pid {os.getpid()}"})
            if self._names(slot) == [mine]:
                self._forget_before(slot)
                return True
            self._delete(mine)
            time.sleep(random.uniform(0.5, 1.5) * self.settle * (attempt + 1))
        return False

    def _forget_before(self, slot: dt.datetime) -> None:
        for name in self._names():
            when = self._slot_of(name)
            if when is not None and when < slot:
                self._delete(name)

    def forget(self) -> None:
        """Remove every claim under the subject (its item was deleted: its drills' too)."""
        for name in self._names():
            self._delete(name)

    def _delete(self, name: str) -> None:
        """Delete a claim; one that storage keeps locked (a bucket's default retention)
        stays: a claim of a slot already run changes nothing."""
        try:
            self.repo.store.delete(name)
        except ObjectLocked:
            pass
