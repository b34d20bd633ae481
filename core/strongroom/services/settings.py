"""The vault settings: encrypted documents ``settings/<time-id>``, the newest valid one wins.

Settings fixed at creation (the chunker's parameters) and changed later (the name,
retention floors, prune settings) live in one :class:`~strongroom.models.VaultSettings`
record.  A change appends a new document; a document that fails to decrypt or parse is
skipped and the next newest used, so one damaged settings document never locks a vault.
A document parses only if every part of it does: the record's fields
(:meth:`VaultSettings.from_dict`), the chunker's parameters, the prune settings (finite
durations of at most :data:`LONGEST` seconds), the retention floors (whole numbers) and
the security settings (:class:`~strongroom.policy.security.SecuritySettings`) and
the redundancy (:class:`~strongroom.policy.redundancy.Redundancy`).

The security rules hold across the history, not only when a change is made: settings
documents are read oldest first, and one that undoes an irreversible state (soft delete
always-on, immutability locked) or weakens security while a guard is linked without
carrying the guard's tickets for it (``authorized_by``, checked against the guard linked
by the document before) is not taken: the one before it stays in force, and the rejected
document is named in :attr:`SettingsHistory.rejected`.  So is one that drops or reorders
the data keys (``data_keys``, :mod:`.datakeys`): the current data key only moves forward.  So a client that skips the rules,
or someone who writes a settings document with the key, cannot turn protection off.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound, StrongroomError
from ..models import VaultSettings
from ..policy.prunesettings import PruneSettings
from ..policy.redundancy import Redundancy
from ..policy.retention import RetentionFloors
from ..policy.security import SecuritySettings, irreversible_change, weakenings
from .versions import version_name

if TYPE_CHECKING:
    from ..repository.chunker import ChunkerParams
    from ..repository.repository import Repository

__all__ = ["SETTINGS_PREFIX", "SettingsBook", "SettingsHistory", "newest_settings", "parse_settings", "read_history"]

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
        SecuritySettings.from_dict(settings.security)
        Redundancy.from_dict(settings.redundancy)
        if len(settings.authorized_by) > 16 or any(len(ticket) > 65536 for ticket in settings.authorized_by):
            raise ValueError("authorized_by holds more than guard tickets")
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


@attrs.frozen
class SettingsHistory:
    """The settings in force, and what reading the history of settings documents found."""

    current: VaultSettings
    damaged: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()


def read_history(repo: Repository, vault_id: str | None = None) -> SettingsHistory:
    """The settings in force: the newest document that decrypts, parses and keeps the
    security rules against the one in force before it (see the module docstring).
    ``vault_id`` is what guard tickets must be bound to (None: the vault's own id is not
    known, so no weakening under a guard is accepted)."""
    names = sorted(repo.list_names(SETTINGS_PREFIX))
    damaged: list[str] = []
    rejected: list[str] = []
    current: VaultSettings | None = None
    for name, doc in _read_all(repo, names):
        try:
            settings = parse_settings(doc) if not isinstance(doc, Exception) else None
        except IntegrityError as exc:
            doc, settings = exc, None
        if settings is None:
            damaged.append(f"{name}: {doc}")
            continue
        if current is not None:
            reason = _breaks_rules(current, settings, vault_id)
            if reason is not None:
                rejected.append(f"{name}: {reason}")
                continue
        current = settings
    if current is None:
        if damaged:
            raise IntegrityError(what="settings", reason="every settings document is damaged: " + "; ".join(damaged[:3]))
        raise IntegrityError(what="settings", reason="the vault has no settings document")
    return SettingsHistory(current, tuple(damaged), tuple(rejected))


def newest_settings(repo: Repository, vault_id: str | None = None) -> VaultSettings:
    """The settings in force (:func:`read_history`); damaged and rejected documents are skipped."""
    return read_history(repo, vault_id).current


def _read_all(repo: Repository, names: list[str]) -> list[tuple[str, object]]:
    def one(name: str) -> object:
        try:
            return repo.get_document(name)
        except (IntegrityError, ObjectNotFound) as exc:
            return exc

    if len(names) < 4:
        return [(name, one(name)) for name in names]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(repo.io_threads) as pool:
        return list(zip(names, pool.map(one, names)))


def _breaks_rules(before: VaultSettings, after: VaultSettings, vault_id: str | None) -> str | None:
    """Why ``after`` may not follow ``before`` under the security rules, or None."""
    from ..errors import TicketInvalid
    from .tickets import verify_ticket

    if after.data_keys[:len(before.data_keys)] != before.data_keys:  # rotation only adds, newest last
        return "it drops or reorders the vault's data keys (the current one can only move forward)"
    old, new = SecuritySettings.from_dict(before.security), SecuritySettings.from_dict(after.security)
    reason = irreversible_change(old, new)
    if reason is not None:
        return f"it undoes an irreversible setting ({reason})"
    if not old.guard.linked:
        return None
    for operation, params in weakenings(old, new):
        for ticket in after.authorized_by:
            try:
                verify_ticket(ticket, old.guard.raw_key, vault_id=vault_id or "", operation=operation,
                              params=params, now=None)
                break
            except TicketInvalid:
                continue
        else:
            return f"it weakens security ({operation}) without the guard's ticket"
    return None


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
        changes.setdefault("authorized_by", ())  # tickets authorize one change, not the next ones
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
