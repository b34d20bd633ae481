"""The vault's prune settings: when ``run-due`` prunes, and how carefully.

A record of the vault settings document (``VaultSettings.prune``); prune itself is
:mod:`strongroom.services.prune`.
"""

from __future__ import annotations

import attrs

from ..converters import to_float
from .schedule import Schedule

__all__ = ["PruneSettings"]


def _check_fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be above 0 and at most 1, not {value}")


def _check_non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value}")


@attrs.frozen
class PruneSettings:
    """Vault settings of prune: when ``run-due`` runs it, and how it is careful."""

    schedule: Schedule | None = attrs.field(factory=lambda: Schedule("daily", times=("03:00",)))
    grace: float = attrs.field(default=6 * 3600.0, converter=to_float, validator=_check_non_negative)
    repack_threshold: float = attrs.field(default=0.2, converter=to_float, validator=_check_fraction)
    lease_ttl: float = attrs.field(default=300.0, converter=to_float, validator=_check_non_negative)

    def to_dict(self) -> dict:
        return {"schedule": self.schedule.to_dict() if self.schedule else None, "grace": self.grace,
                "repack_threshold": self.repack_threshold, "lease_ttl": self.lease_ttl}

    @classmethod
    def from_dict(cls, doc: dict) -> PruneSettings:
        defaults = cls()
        schedule = doc.get("schedule", defaults.schedule.to_dict() if defaults.schedule else None)
        return cls(schedule=Schedule.from_dict(schedule) if schedule else None,
                   grace=doc.get("grace", defaults.grace),
                   repack_threshold=doc.get("repack_threshold", defaults.repack_threshold),
                   lease_ttl=doc.get("lease_ttl", defaults.lease_ttl))
