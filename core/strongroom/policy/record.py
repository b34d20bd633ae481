"""The policy record: a schedule and retention rules, by name.

Stored as versioned documents ``policies/<name>/<time-id>`` (see
:mod:`strongroom.services.policies`).
"""

from __future__ import annotations

import attrs

from ..models import ITEM_NAME_RE
from .retention import RetentionRules
from .schedule import Schedule

__all__ = ["Policy"]


def _check_policy_name(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not ITEM_NAME_RE.match(value):
        raise ValueError(
            f"invalid policy name {value!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )


@attrs.frozen
class Policy:
    """A backup policy: when items back up (``schedule``) and what is kept (``retention``).

    Stored as versioned documents ``policies/<name>/<time-id>`` (the newest wins; a
    deleted policy's newest version is a tombstone).  The schedule's timezone is also the
    one the retention periods are counted in.
    """

    name: str = attrs.field(validator=_check_policy_name)
    schedule: Schedule
    retention: RetentionRules
    description: str = ""
    created: str = ""
    version: str = ""  # name of the document this record was read from

    @property
    def timezone(self) -> str:
        return self.schedule.timezone

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "schedule": self.schedule.to_dict(),
            "retention": self.retention.to_dict(),
            "description": self.description,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, doc: dict, version: str = "") -> Policy:
        return cls(
            name=doc["name"], schedule=Schedule.from_dict(doc["schedule"]),
            retention=RetentionRules.from_dict(doc.get("retention", {})),
            description=doc.get("description", ""), created=doc.get("created", ""), version=version,
        )
