"""The part of the :class:`~strongroom.vault.Vault` facade about policies and time.

:class:`PolicyFacade` is mixed into ``Vault``: settings changes, policies, the item
lifecycle (stop, resume), prune and scheduled runs.  Like the rest of the facade it only
delegates: to :mod:`strongroom.policy`, :mod:`strongroom.lifecycle` and
:mod:`strongroom.engine.prune`.  It relies on the vault's ``store``, ``repo``,
``settings`` and ``clock``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from . import lifecycle
from .engine.prune import PruneReport, PruneSettings
from .models import ProtectedItem, VaultSettings, time_id, time_of
from .policy.book import PolicyBook
from .policy.retention import RetentionFloors
from .policy.runner import DueReport, ScheduleRow, run_due, schedule_rows

if TYPE_CHECKING:
    from .repository.repository import Repository
    from .storage import Store

__all__ = ["PolicyFacade"]


class PolicyFacade:
    """Vault methods for settings, policies, item lifecycle, prune and scheduled runs."""

    store: Store
    repo: Repository
    settings: VaultSettings
    clock: Callable[[], dt.datetime]

    # --- settings and versions ---------------------------------------------------------

    def update_settings(self, **changes) -> VaultSettings:
        """Write a new settings document with ``changes``; the newest one is in force."""
        self.settings = attrs.evolve(self.settings, **changes)
        self.repo.put_document(self.version_name("settings/"), self.settings.to_dict())
        return self.settings

    def version_name(self, prefix: str) -> str:
        """``prefix`` + a time id for a new version that sorts after every existing one,
        even when ``clock`` is behind the time they were written."""
        now = self.clock()
        newest = max(self.store.list(prefix), default=None)
        if newest is not None:
            try:
                now = max(now, time_of(newest) + dt.timedelta(microseconds=1))
            except ValueError:
                pass
        return f"{prefix}{time_id(now)}"

    # --- policies ----------------------------------------------------------------------

    @property
    def policies(self) -> PolicyBook:
        return PolicyBook(self)  # type: ignore[arg-type]

    def set_retention_floors(self, floors: RetentionFloors | None) -> None:
        """Turn the minimum retention of every policy on (these floors) or off (None)."""
        self.policies.set_floors(floors)

    # --- item lifecycle ----------------------------------------------------------------

    def stop(self, item: str, *, retain: str | None = None, delete_data: bool = False) -> ProtectedItem:
        """Stop protecting ``item``: ``retain="forever"|"policy"``, or ``delete_data``."""
        return lifecycle.stop(self, item, retain=retain, delete_data=delete_data)  # type: ignore[arg-type]

    def resume(self, item: str, *, policy: str | None = None) -> ProtectedItem:
        """Protect a stopped ``item`` again (with ``policy``, or the one it had)."""
        return lifecycle.resume(self, item, policy=policy)  # type: ignore[arg-type]

    # --- prune -------------------------------------------------------------------------

    @property
    def prune_settings(self) -> PruneSettings:
        return PruneSettings.from_dict(self.settings.prune)

    def set_prune_settings(self, settings: PruneSettings) -> PruneSettings:
        self.update_settings(prune=settings.to_dict())
        return settings

    def prune(self, *, dry_run: bool = False, grace: float | None = None,
              progress: Callable[[str], None] | None = None) -> PruneReport:
        """Expire points whose retention ended and free the data nothing needs
        (:mod:`strongroom.engine.prune`); ``grace`` overrides the vault's setting."""
        from . import vaultops  # with the backup engine: loaded when used

        return vaultops.prune(self, dry_run=dry_run, grace=grace, progress=progress)  # type: ignore[arg-type]

    # --- scheduled runs ----------------------------------------------------------------

    def schedule(self, now: dt.datetime | None = None) -> list[ScheduleRow]:
        """When every item (and the prune) last ran and runs next."""
        return schedule_rows(self, now or self.clock())  # type: ignore[arg-type]

    def run_due(self, **kwargs) -> DueReport:
        """Run every due scheduled backup, then the prune if due (:func:`strongroom.policy.runner.run_due`)."""
        return run_due(self, **kwargs)  # type: ignore[arg-type]
