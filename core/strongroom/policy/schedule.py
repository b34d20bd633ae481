"""Schedules: when backups (and prunes) run, as wall-clock times in an IANA timezone.

A :class:`Schedule` is one of

- ``every``: every N hours (N in 1, 2, 4, 6, 8, 12), at local 00:00, N:00, 2N:00, ...;
- ``daily``: every day at one or more local times;
- ``weekly``: on given weekdays, at one or more local times.

Every run time is a *local wall-clock time* on a local date.  It becomes an instant with
``fold=0`` (:pep:`495`), which is what makes daylight-saving changes harmless:

- a time that does not exist on the day the clock skips forward (02:30 in Berlin on the
  last Sunday of March) is read with the offset from before the change, so it runs once,
  at the instant the wall clock would have shown it (03:30 summer time);
- a time that occurs twice on the day the clock goes back runs once, at its first
  occurrence;
- two run times of one day that land on the same instant (an hourly schedule's 02:00
  and 03:00 on the day 02:00 does not exist) run once.

The functions here are pure: they take the moment to work from (``after``, ``at``) and
never read the clock, so tests can walk through years of schedule in a moment.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from functools import lru_cache

import attrs

from ..converters import to_tuple
from ..errors import InvalidPolicy

__all__ = [
    "EVERY_HOURS", "KINDS", "WEEKDAYS", "Schedule", "load_timezone", "parse_every",
    "parse_times", "parse_weekday", "parse_weekly",
]

UTC = dt.timezone.utc
KINDS = ("every", "daily", "weekly")
EVERY_HOURS = (1, 2, 4, 6, 8, 12)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_EVERY = re.compile(r"(\d+)\s*h(ours?)?", re.IGNORECASE)
#: How far apart two runs of a valid schedule can be, at most (a weekly one, plus DST).
_MAX_GAP_DAYS = 8


@lru_cache(maxsize=64)
def load_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA timezone ``name``; InvalidPolicy if the system does not know it."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, IsADirectoryError):
        raise InvalidPolicy(reason=f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin or UTC)") from None


def parse_time(text: str) -> str:
    """``"2:05"`` -> ``"02:05"``; InvalidPolicy unless it is a time from 00:00 to 23:59."""
    match = _TIME.fullmatch(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidPolicy(reason=f"invalid time {text.strip()!r}: use HH:MM from 00:00 to 23:59")
    return f"{int(match[1]):02}:{match[2]}"


def parse_times(text: str) -> tuple[str, ...]:
    """``"14:00,02:00"`` -> ``("02:00", "14:00")``: sorted, without repeats."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise InvalidPolicy(reason=f"no time given in {text!r}: use HH:MM[,HH:MM...]")
    return tuple(sorted({parse_time(p) for p in parts}))


def parse_weekday(text: str) -> int:
    """``"sun"``/``"Sunday"`` -> 6 (Monday is 0)."""
    word = text.strip().lower()
    if word in WEEKDAYS:
        return WEEKDAYS.index(word)
    if word in _FULL_DAYS:
        return _FULL_DAYS.index(word)
    raise InvalidPolicy(reason=f"unknown weekday {text.strip()!r}: use {', '.join(WEEKDAYS)}")


def parse_every(text: str) -> int:
    """``"4h"`` -> 4."""
    match = _EVERY.fullmatch(text.strip())
    if not match or int(match[1]) not in EVERY_HOURS:
        hours = ", ".join(f"{h}h" for h in EVERY_HOURS)
        raise InvalidPolicy(reason=f"invalid interval {text.strip()!r}: use one of {hours}")
    return int(match[1])


def parse_weekly(text: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``"sun,wed@03:00,15:00"`` -> ((2, 6), ("03:00", "15:00"))."""
    days, sep, times = text.partition("@")
    if not sep:
        raise InvalidPolicy(reason=f"invalid weekly schedule {text!r}: use DAY[,DAY...]@HH:MM[,HH:MM...]")
    weekdays = tuple(sorted({parse_weekday(d) for d in days.split(",") if d.strip()}))
    if not weekdays:
        raise InvalidPolicy(reason=f"no weekday given in {text!r}")
    return weekdays, parse_times(times)


def _check_kind(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in KINDS:
        raise InvalidPolicy(reason=f"unknown schedule kind {value!r}: use {', '.join(KINDS)}")


def _check_times(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for text in value:
        if parse_time(text) != text:
            raise InvalidPolicy(reason=f"invalid time {text!r}: use HH:MM from 00:00 to 23:59")


def _check_timezone(instance: object, attribute: attrs.Attribute, value: str) -> None:
    load_timezone(value)


@attrs.frozen
class Schedule:
    """When something runs; see the module docstring for the rules."""

    kind: str = attrs.field(validator=_check_kind)
    every_hours: int = 0
    times: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, validator=_check_times)
    weekdays: tuple[int, ...] = attrs.field(default=(), converter=to_tuple)
    timezone: str = attrs.field(default="UTC", validator=_check_timezone)

    def __attrs_post_init__(self) -> None:
        if self.kind == "every" and self.every_hours not in EVERY_HOURS:
            parse_every(f"{self.every_hours}h")
        if self.kind in ("daily", "weekly") and not self.times:
            raise InvalidPolicy(reason=f"a {self.kind} schedule needs at least one time")
        if self.kind == "weekly" and (not self.weekdays or not set(self.weekdays) <= set(range(7))):
            raise InvalidPolicy(reason="a weekly schedule needs weekdays from mon to sun")

    # --- building and describing -------------------------------------------------------

    @classmethod
    def every(cls, text: str, timezone: str = "UTC") -> Schedule:
        return cls("every", every_hours=parse_every(text), timezone=timezone)

    @classmethod
    def daily(cls, text: str, timezone: str = "UTC") -> Schedule:
        return cls("daily", times=parse_times(text), timezone=timezone)

    @classmethod
    def weekly(cls, text: str, timezone: str = "UTC") -> Schedule:
        weekdays, times = parse_weekly(text)
        return cls("weekly", times=times, weekdays=weekdays, timezone=timezone)

    def describe(self) -> str:
        if self.kind == "every":
            text = f"every {self.every_hours}h"
        elif self.kind == "daily":
            text = f"daily at {','.join(self.times)}"
        else:
            text = f"weekly on {','.join(WEEKDAYS[d] for d in self.weekdays)} at {','.join(self.times)}"
        return f"{text} ({self.timezone})"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "every_hours": self.every_hours, "times": list(self.times),
                "weekdays": list(self.weekdays), "timezone": self.timezone}

    @classmethod
    def from_dict(cls, doc: dict) -> Schedule:
        return cls(kind=doc["kind"], every_hours=int(doc.get("every_hours", 0)),
                   times=tuple(doc.get("times", ())), weekdays=tuple(doc.get("weekdays", ())),
                   timezone=doc.get("timezone", "UTC"))

    # --- run times ---------------------------------------------------------------------

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return load_timezone(self.timezone)

    def local_times(self, day: dt.date) -> list[dt.time]:
        """The wall-clock run times of local date ``day``."""
        if self.kind == "every":
            return [dt.time(hour) for hour in range(0, 24, self.every_hours)]
        if self.kind == "weekly" and day.weekday() not in self.weekdays:
            return []
        return [dt.time(int(t[:2]), int(t[3:])) for t in self.times]

    def runs_on(self, day: dt.date) -> list[dt.datetime]:
        """The run instants (UTC) of local date ``day``, sorted, each once."""
        tz = self.tz
        return sorted({dt.datetime.combine(day, t, tzinfo=tz).astimezone(UTC) for t in self.local_times(day)})

    def next_run(self, after: dt.datetime) -> dt.datetime:
        """The first run strictly after ``after`` (an aware datetime)."""
        day = after.astimezone(self.tz).date() - dt.timedelta(days=1)
        for offset in range(_MAX_GAP_DAYS + 2):
            for moment in self.runs_on(day + dt.timedelta(days=offset)):
                if moment > after:
                    return moment
        raise AssertionError(f"{self.describe()} has no run within {_MAX_GAP_DAYS} days")  # unreachable

    def previous_run(self, at: dt.datetime) -> dt.datetime:
        """The last run at or before ``at``."""
        day = at.astimezone(self.tz).date() + dt.timedelta(days=1)
        for offset in range(_MAX_GAP_DAYS + 2):
            for moment in reversed(self.runs_on(day - dt.timedelta(days=offset))):
                if moment <= at:
                    return moment
        raise AssertionError(f"{self.describe()} has no run within {_MAX_GAP_DAYS} days")  # unreachable

    def runs_between(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        """Every run in ``(start, end]``, in order."""
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        last = end.astimezone(self.tz).date() + dt.timedelta(days=1)
        out: set[dt.datetime] = set()
        while day <= last:
            out.update(m for m in self.runs_on(day) if start < m <= end)
            day += dt.timedelta(days=1)
        return sorted(out)
