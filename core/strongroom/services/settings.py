"""The vault settings: encrypted documents ``settings/<time-id>``, the newest valid one wins.

Settings fixed at creation (the chunker's parameters) and changed later (the name,
retention floors, prune settings) live in one :class:`~strongroom.models.VaultSettings`
record.  A change appends a new document; a document that fails to decrypt or parse is
skipped and the next newest used, so one damaged settings document never locks a vault.
A document parses only if every part of it does: the record's fields
(:meth:`VaultSettings.from_dict`), the chunker's parameters, the prune settings (finite
durations of at most :data:`LONGEST` seconds) and the retention floors (whole numbers).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound, StrongroomError
from ..models import VaultSettings
from ..policy.prunesettings import PruneSettings
from ..policy.retention import RetentionFloors
from .versions import version_name

if TYPE_CHECKING:
    from ..repository.chunker import ChunkerParams
    from ..repository.repository import Repository

__all__ = ["SETTINGS_PREFIX", "SettingsBook", "newest_settings", "parse_settings"]

SETTINGS_PREFIX = "settings/"
#: The longest grace or lease a settings document may hold: 100 years, in seconds.
LONGEST = 100 * 366 * 86400.0


def parse_settings(doc: object) -> VaultSettings:
    """The settings stored as ``doc``; IntegrityError if any part is malformed."""
    from ..repository.chunker import ChunkerParams

    settings = VaultSettings.from_dict(doc)  # type: ignore[arg-type]
    try:
        ChunkerParams.from_dict(settings.chunker)
        prune = PruneSettings.from_dict(settings.prune)
        floors = settings.retention_floors
        if floors is not None:
            if any(isinstance(v, bool) or not isinstance(v, int) for v in floors.values()):
                raise ValueError("retention floors must be whole numbers")
            RetentionFloors.from_dict(floors)
    # the records' own checks: a wrong type or value surfaces as any of these
    except (StrongroomError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise IntegrityError(what="settings", reason=f"malformed ({type(exc).__name__}: {exc})") from None
    for value in (prune.grace, prune.lease_ttl):
        if not (math.isfinite(value) and value <= LONGEST):
            raise IntegrityError(what="settings", reason=f"a prune duration of {value} seconds")
    return settings


def newest_settings(repo: Repository) -> VaultSettings:
    """The newest settings document that decrypts and parses; damaged ones are skipped."""
    problems = []
    for name in sorted(repo.list_names(SETTINGS_PREFIX), reverse=True):
        try:
            return parse_settings(repo.get_document(name))
        except (IntegrityError, ObjectNotFound) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise IntegrityError(what="settings", reason="every settings document is damaged: " + "; ".join(problems[:3]))
    raise IntegrityError(what="settings", reason="the vault has no settings document")


class SettingsBook:
    """The settings in force (``current``) and the way to change them."""

    def __init__(self, repo: Repository, current: VaultSettings, clock: Callable[[], dt.datetime],
                 after_change: Callable[[], None] = lambda: None) -> None:
        self.repo = repo
        self.current = current
        self.clock = clock
        self.after_change = after_change

    def update(self, **changes: object) -> VaultSettings:
        """Write a new settings document with ``changes``; it is in force from now on.
        ``after_change`` (the vault head) is told once it is written."""
        settings = attrs.evolve(self.current, **changes)
        self.repo.put_document(version_name(self.repo.store, SETTINGS_PREFIX, self.clock()), settings.to_dict())
        self.current = settings
        self.after_change()
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
