"""The vault settings: encrypted documents ``settings/<time-id>``, the newest valid one wins.

Settings fixed at creation (the chunker's parameters) and changed later (the name,
retention floors, prune settings) live in one :class:`~strongroom.models.VaultSettings`
record.  A change appends a new document; a document that fails to decrypt or parse is
skipped and the next newest used, so one damaged settings document never locks a vault.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound
from ..models import VaultSettings
from ..policy.prunesettings import PruneSettings
from ..policy.retention import RetentionFloors
from .versions import version_name

if TYPE_CHECKING:
    from ..repository.chunker import ChunkerParams
    from ..repository.repository import Repository

__all__ = ["SETTINGS_PREFIX", "SettingsBook", "newest_settings"]

SETTINGS_PREFIX = "settings/"


def newest_settings(repo: Repository) -> VaultSettings:
    """The newest settings document that decrypts and parses; damaged ones are skipped."""
    problems = []
    for name in sorted(repo.store.list(SETTINGS_PREFIX), reverse=True):
        try:
            return VaultSettings.from_dict(repo.get_document(name))
        except (IntegrityError, ObjectNotFound, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise IntegrityError(what="settings", reason="every settings document is damaged: " + "; ".join(problems[:3]))
    raise IntegrityError(what="settings", reason="the vault has no settings document")


class SettingsBook:
    """The settings in force (``current``) and the way to change them."""

    def __init__(self, repo: Repository, current: VaultSettings, clock: Callable[[], dt.datetime]) -> None:
        self.repo = repo
        self.current = current
        self.clock = clock

    def update(self, **changes: object) -> VaultSettings:
        """Write a new settings document with ``changes``; it is in force from now on."""
        settings = attrs.evolve(self.current, **changes)
        self.repo.put_document(version_name(self.repo.store, SETTINGS_PREFIX, self.clock()), settings.to_dict())
        self.current = settings
        return settings

    @property
    def chunker(self) -> ChunkerParams:
        from ..repository.chunker import ChunkerParams

        return ChunkerParams.from_dict(self.current.chunker)

    @property
    def prune(self) -> PruneSettings:
        return PruneSettings.from_dict(self.current.prune)

    @property
    def floors(self) -> RetentionFloors | None:
        """The least retention any policy may have, or None when floors are off."""
        doc = self.current.retention_floors
        return RetentionFloors.from_dict(doc) if doc is not None else None
