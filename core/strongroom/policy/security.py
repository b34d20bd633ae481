"""The vault's security settings: soft delete, immutability and the guard link.

Stored as the ``security`` part of the vault settings (:class:`~strongroom.models.VaultSettings`),
so they are encrypted and authenticated like every settings document, and changed only by
appending a new settings document.

- :class:`SoftDelete`: ``disabled``, ``enabled`` or ``always-on`` (irreversible), and how many
  days (14 to 180) a deleted recovery point is kept before its data may be purged.
- :class:`Immutability`: ``disabled``, ``enabled`` or ``locked`` (irreversible).  While on, no
  point may be deleted before it expires and no retention may be shortened.  On storage with
  S3 Object Lock every object is also locked for ``lock_days`` and the lock is extended while
  points need it; ``client_side_only`` records that the vault was locked knowing that its
  storage cannot enforce it.
- :class:`GuardLink`: the Ed25519 public key of the vault's guard (None: no guard).  With a
  guard, the critical operations of :data:`OPERATIONS` need a ticket signed by its private key.

:func:`weakenings` names the tickets a change of settings needs; :func:`irreversible_change`
says why a change is never allowed.  Both are pure functions of the old and new settings: the
same rules are applied when a change is made and when the history of settings documents is
read (:mod:`strongroom.services.settings`), so a document written by a client that skipped the
rules is not taken.
"""

from __future__ import annotations

import base64
import binascii

import attrs

from ..errors import IntegrityError, UsageError

__all__ = [
    "DEFAULT_LOCK_DAYS", "IMMUTABILITY_STATES", "MAX_DAYS", "MIN_DAYS", "OPERATIONS", "SOFT_DELETE_STATES",
    "GuardLink", "Immutability", "SecuritySettings", "SoftDelete", "irreversible_change", "weakenings",
]

SOFT_DELETE_STATES = ("disabled", "enabled", "always-on")
IMMUTABILITY_STATES = ("disabled", "enabled", "locked")
#: Bounds of soft delete's retention, in days (Azure's).
MIN_DAYS, MAX_DAYS = 14, 180
DEFAULT_DAYS = 14
#: How long each object stays locked on object-lock storage before its lock is extended.
DEFAULT_LOCK_DAYS = 30
MAX_LOCK_DAYS = 36500

#: The critical operations a guard ticket can authorize, with what each one does.
OPERATIONS: dict[str, str] = {
    "soft-delete.disable": "turn soft delete off",
    "soft-delete.shorten": "shorten soft delete's retention (param days=N)",
    "immutability.disable": "turn immutability off",
    "points.delete": "delete a recovery point (param item=NAME, point=ID)",
    "items.delete-data": "stop protecting an item and delete its data (param item=NAME)",
    "retention.shorten": "shorten the retention of existing points (param policy=NAME or item=NAME)",
    "key.remove": "remove a key slot (param slot=ID)",
    "guard.unlink": "unlink (or replace) the vault's guard",
    "vault.delete": "delete the vault",
}


def _check_days(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_DAYS <= value <= MAX_DAYS:
        raise UsageError(message=f"soft delete retention must be {MIN_DAYS} to {MAX_DAYS} days, not {value}")


def _check_lock_days(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOCK_DAYS:
        raise UsageError(message=f"object lock days must be 1 to {MAX_LOCK_DAYS}, not {value}")


def _check_key(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is None:
        return
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise UsageError(message="a guard public key is 32 bytes of Ed25519, base64")


@attrs.frozen
class SoftDelete:
    """Whether deleted points are kept (and how many days) before their data is purged."""

    state: str = attrs.field(default="enabled", validator=attrs.validators.in_(SOFT_DELETE_STATES))
    days: int = attrs.field(default=DEFAULT_DAYS, validator=_check_days)

    @property
    def on(self) -> bool:
        return self.state != "disabled"


@attrs.frozen
class Immutability:
    """Whether points may be deleted early or retention shortened (see the module docstring)."""

    state: str = attrs.field(default="disabled", validator=attrs.validators.in_(IMMUTABILITY_STATES))
    client_side_only: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    lock_days: int = attrs.field(default=DEFAULT_LOCK_DAYS, validator=_check_lock_days)

    @property
    def on(self) -> bool:
        return self.state != "disabled"

    @property
    def lock_mode(self) -> str | None:
        """The S3 object lock mode objects get: GOVERNANCE while enabled, COMPLIANCE once locked."""
        return {"enabled": "GOVERNANCE", "locked": "COMPLIANCE"}.get(self.state)


@attrs.frozen
class GuardLink:
    """The guard a vault is linked to: an Ed25519 public key (base64), or none."""

    public_key: str | None = attrs.field(default=None, validator=_check_key)
    linked_at: str | None = None

    @property
    def linked(self) -> bool:
        return self.public_key is not None

    @property
    def raw_key(self) -> bytes:
        return base64.b64decode(self.public_key or "")


@attrs.frozen
class SecuritySettings:
    """Soft delete, immutability and the guard of one vault."""

    soft_delete: SoftDelete = SoftDelete()
    immutability: Immutability = Immutability()
    guard: GuardLink = GuardLink()

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: object) -> SecuritySettings:
        """The settings stored as ``doc`` (an empty or missing one: the defaults);
        IntegrityError if malformed."""
        if doc is None or doc == {}:
            return cls()
        try:
            if not isinstance(doc, dict) or set(doc) - {"soft_delete", "immutability", "guard"}:
                raise ValueError("unknown or missing parts")
            parts = {"soft_delete": SoftDelete, "immutability": Immutability, "guard": GuardLink}
            values = {}
            for name, record in parts.items():
                part = doc.get(name, {})
                if not isinstance(part, dict) or set(part) - set(attrs.fields_dict(record)):
                    raise ValueError(f"malformed {name}")
                values[name] = record(**part)
            return cls(**values)
        except (UsageError, TypeError, ValueError) as exc:
            raise IntegrityError(what="security settings", reason=f"malformed ({exc})") from None


def irreversible_change(old: SecuritySettings, new: SecuritySettings) -> str | None:
    """Why going from ``old`` to ``new`` is never allowed, or None."""
    if old.soft_delete.state == "always-on" and new.soft_delete.state != "always-on":
        return "soft delete is always-on, which cannot be undone"
    if old.immutability.state == "locked" and new.immutability.state != "locked":
        return "immutability is locked, which cannot be undone"
    if old.immutability.state == "locked" and new.immutability.lock_days < old.immutability.lock_days:
        return "immutability is locked: its lock days can only grow"
    return None


def weakenings(old: SecuritySettings, new: SecuritySettings) -> list[tuple[str, dict[str, str]]]:
    """The (operation, params) a guard must authorize to go from ``old`` to ``new``."""
    needed: list[tuple[str, dict[str, str]]] = []
    if old.soft_delete.on and not new.soft_delete.on:
        needed.append(("soft-delete.disable", {}))
    elif old.soft_delete.on and new.soft_delete.days < old.soft_delete.days:
        needed.append(("soft-delete.shorten", {"days": str(new.soft_delete.days)}))
    if old.immutability.on and (not new.immutability.on or new.immutability.lock_days < old.immutability.lock_days):
        needed.append(("immutability.disable", {}))
    if old.guard.linked and new.guard.public_key != old.guard.public_key:
        needed.append(("guard.unlink", {}))
    return needed
