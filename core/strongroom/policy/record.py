"""The policy record: a schedule and retention rules, by name, and optionally drills.

Stored as versioned documents ``policies/<name>/<time-id>`` (see
:mod:`strongroom.services.policies`).  The ``drill`` part is written only when the
policy schedules drills: a document without it (every one written before drills were
scheduled) reads as a policy that drills nothing.
"""

from __future__ import annotations

import attrs

from ..models import ITEM_NAME_RE
from .drills import DrillSchedule
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
    """A backup policy: when items back up (``schedule``), what is kept (``retention``)
    and how often their points are drilled (``drill``, None: never).

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
    drill: DrillSchedule | None = None

    @property
    def timezone(self) -> str:
        return self.schedule.timezone

    def to_dict(self) -> dict:
        doc = {
            "name": self.name,
            "schedule": self.schedule.to_dict(),
            "retention": self.retention.to_dict(),
            "description": self.description,
            "created": self.created,
        }
        if self.drill is not None:
            doc["drill"] = self.drill.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict, version: str = "") -> Policy:
        return cls(
            name=doc["name"], schedule=Schedule.from_dict(doc["schedule"]),
            retention=RetentionRules.from_dict(doc.get("retention", {})),
            description=doc.get("description", ""), created=doc.get("created", ""), version=version,
            drill=DrillSchedule.from_dict(doc.get("drill")),
        )
