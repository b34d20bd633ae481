"""Scheduled restore drills: a policy's ``drill`` part (``policy create --drill-every 7d``).

A :class:`DrillSchedule` says how often each item of the policy is drilled (``every``,
in seconds, at least :data:`MIN_EVERY`) and from which copy of the vault (the vault
itself, or its geo secondary with ``from_secondary``).  A policy without one (every
policy document written before drills were scheduled) drills nothing.

Drills are not tied to wall-clock times as backups are: an item is due for a drill when
its last drill is ``every`` or more ago, or when it was never drilled
(:func:`drill_due`).  The slot a due drill runs for is the last drill plus the largest
whole number of intervals that is not after ``now`` (missed drills coalesce into one;
the cadence keeps to the first drill's), or, for the first drill, ``now`` to the
minute; so two ``run-due`` started together name the same slot and claim it once
(:mod:`strongroom.services.claims`).

Pure functions of their arguments; ``now`` is always given.
"""

from __future__ import annotations

import datetime as dt

import attrs

from ..converters import to_int
from ..errors import InvalidPolicy
from .durations import format_duration, parse_duration

__all__ = ["MIN_EVERY", "DrillDue", "DrillSchedule", "drill_due", "parse_drill_every"]

#: The shortest interval between two scheduled drills of an item (as for backups: an hour).
MIN_EVERY = 3600
#: What ``--drill-every`` takes to turn scheduled drills off.
OFF = ("off", "none", "0")


def _check_every(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < MIN_EVERY:
        raise InvalidPolicy(reason=f"drills can run every {format_duration(MIN_EVERY)} at most,"
                                   f" not every {format_duration(value)}")


def parse_drill_every(text: str) -> int | None:
    """``"7d"`` -> seconds; ``"off"`` -> None (no scheduled drills)."""
    if str(text).strip().lower() in OFF:
        return None
    return int(parse_duration(text, what="drill interval"))


@attrs.frozen
class DrillSchedule:
    """Drill each item of the policy every ``every`` seconds, from the vault or its geo secondary."""

    every: int = attrs.field(converter=to_int, validator=_check_every)
    from_secondary: bool = False

    def describe(self) -> str:
        return f"every {format_duration(self.every)}" + (" from the geo secondary" if self.from_secondary else "")

    def to_dict(self) -> dict:
        return {"every": self.every, "from_secondary": self.from_secondary}

    @classmethod
    def from_dict(cls, doc: dict | None) -> DrillSchedule | None:
        if not doc:
            return None
        return cls(every=int(doc["every"]), from_secondary=bool(doc.get("from_secondary", False)))


@attrs.frozen
class DrillDue:
    """Whether a drill is due; ``slot`` the one it runs for (None when not due),
    ``next_run`` when the next one is due (after this one, when due now)."""

    due: bool
    slot: dt.datetime | None
    next_run: dt.datetime


def drill_due(every: int, now: dt.datetime, last: dt.datetime | None) -> DrillDue:
    """Whether a drill every ``every`` seconds is due at ``now`` when the last one was at
    ``last`` (None: never); see the module docstring."""
    interval = dt.timedelta(seconds=every)
    if last is None:
        slot = now.replace(second=0, microsecond=0)
        return DrillDue(True, slot, slot + interval)
    if now - last < interval:
        return DrillDue(False, None, last + interval)
    slot = last + interval * ((now - last) // interval)
    return DrillDue(True, slot, slot + interval)
