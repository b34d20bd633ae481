"""Deleting a vault: only an empty one, and only as its security rules allow.

:meth:`VaultDeletion.run` refuses (:class:`~strongroom.errors.VaultNotEmpty`, nothing
changed) while the vault still protects anything: an item that is not ``deleted``, or any
recovery point header, soft-deleted ones included (a soft-deleted point keeps the vault
until its purge time has passed and a prune has purged it), as Azure refuses to delete a
vault with protected items or soft-deleted data.  It is the ``vault.delete`` critical
operation (:meth:`~.security.SecurityService.authorize`): with a guard linked it needs the
guard's ticket; its start is journaled.

Objects go in an order that keeps a half-finished deletion recognisable and finishable:
the vault's data and records first, then the journal and used tickets, then the settings,
then the data keys (what is left stays readable until they go), then the key slots, and
``strongroom.json`` (the vault's identity) last.  Objects the
storage keeps (S3 object lock, or a server that never deletes some records) are listed in
the report, not an error; but if the identity itself is kept the vault still exists, and
:class:`~strongroom.errors.VaultNotEmpty` says so.  Foreign objects are never touched.

``run(dry_run=True)`` makes the same checks (empty, the guard's ticket) and deletes,
journals and alerts nothing: its report counts the objects that would go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import ObjectLocked, ObjectNotFound, VaultNotEmpty
from ..models import DELETED

if TYPE_CHECKING:
    from ..repository.repository import Repository
    from .items import ItemBook
    from .journal import Journal
    from .security import SecurityService

__all__ = ["DeleteReport", "VaultDeletion"]

#: Deleted in this order, each group after the one before; everything else goes first.
LAST = ("journal/", "tickets/", "settings/", "datakeys/", "keys/", "strongroom.json")


@attrs.frozen
class DeleteReport:
    """What a deletion removed, and what the storage kept."""

    deleted: int
    kept: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    #: a dry run: ``deleted`` is what would be deleted
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"deleted": self.deleted, "kept": list(self.kept), "foreign": list(self.foreign),
                "dry_run": self.dry_run}


class VaultDeletion:
    """Deletes one vault (see the module docstring)."""

    def __init__(self, repo: Repository, items: ItemBook, security: SecurityService, journal: Journal) -> None:
        self.repo = repo
        self.items = items
        self.security = security
        self.journal = journal

    def check(self) -> None:
        """VaultNotEmpty unless every item is deleted and no point header is left."""
        live = [item.name for item in self.items.list() if item.state != DELETED]
        if live:
            shown = ", ".join(live[:5]) + (" ..." if len(live) > 5 else "")
            raise VaultNotEmpty(reason=f"{len(live)} item(s) are still protected or stopped ({shown}); "
                                       "stop them with 'items stop --delete-data' first")
        points = self.repo.list_names("points/")
        if points:
            raise VaultNotEmpty(reason=f"{len(points)} recovery point(s) are left (soft-deleted points stay until "
                                       "their purge time; run 'strongroom prune' after it)")

    def run(self, ticket: str | None = None, *, dry_run: bool = False) -> DeleteReport:
        self.check()
        self.security.authorize("vault.delete", {}, ticket, dry_run=dry_run)
        if dry_run:  # the real run journals its start first: that entry goes too
            return DeleteReport(len(self.repo.list_names("")) + 1, (), tuple(sorted(self.repo.foreign)), dry_run=True)
        self.journal.record("vault.delete", {"url": self.repo.store.url}, "started")
        names = self.repo.list_names("")  # the vault's objects; foreign ones are left alone
        foreign = set(self.repo.foreign)

        def rank(name: str) -> int:
            for i, prefix in enumerate(LAST):
                if name == prefix or name.startswith(prefix):
                    return i + 1
            return 0

        deleted, kept = 0, []
        for name in sorted(names, key=lambda n: (rank(n), n)):
            try:
                self.repo.store.delete(name)
                deleted += 1
            except ObjectNotFound:
                pass
            except ObjectLocked:  # object lock, or a server that keeps the record
                kept.append(name)
        if "strongroom.json" in kept:
            raise VaultNotEmpty(reason=f"the storage keeps {len(kept)} object(s), the vault's identity among them "
                                       "(object lock: delete it once the locks lapse)")
        return DeleteReport(deleted, tuple(kept), tuple(sorted(foreign)))
