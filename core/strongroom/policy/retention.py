"""Retention: which recovery points a policy keeps, and until when (GFS rules).

Rules (:class:`RetentionRules`) keep *tagged* points for a number of periods:

========  ==========================================================  =================
tag       period (local calendar, in the policy's timezone)            kept for
========  ==========================================================  =================
daily     a day, from 00:00                                            ``daily`` days
weekly    a week, from 00:00 on ``weekly_on`` (Sunday by default)      ``weekly`` weeks
monthly   a month, from the 1st (``monthly_on="first"``) or from the   ``monthly`` months
          last day of the previous month (``"last"``)
yearly    a year, from Jan 1 (``"first"``) or from Dec 31 of the       ``yearly`` years
          previous year (``"last"``)
========  ==========================================================  =================

**Tags.**  The first point (the earliest ``created``) of each period takes that period's
tag.  Only points that exist carry tags, and a failed backup makes no point, so when the
backup at the start of a period fails, the next successful one of the period takes the
tag, an on-demand one included.  One point may carry several tags.

**Expiry.**  A tag taken in the period starting on local date ``D`` expires at local
00:00 on the start of the period ``N`` periods later (``D + N days`` for daily): a point
tagged ``daily`` on March 3 with ``daily=7`` is kept until March 10, 00:00.  A point
expires at the latest of its tags' expiries and its own ``retain_until`` (on-demand
backups); a point with neither expired when it was made.

**Always kept.**  The newest point of an item is never expired (so the latest recovery
point of a stopped item stays forever), and neither is a point a plugin gave an extra
tag (:func:`strongroom.hookspecs.strongroom_retention_tags`).

**Item states** change the outcome (:func:`evaluate`, ``mode``): ``"policy"`` applies the
rules; ``"forever"`` (stopped, retain forever) keeps every point; ``"none"`` (no policy)
keeps every point except those past their own ``retain_until``; ``"deleted"`` expires
every point, the newest included.

Everything here is pure: ``now`` is a parameter, so tests replay years in a moment.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Iterable, Mapping

import attrs

from ..errors import InvalidPolicy

__all__ = [
    "MODES", "TAGS", "PointFacts", "RetentionFloors", "RetentionRules", "Verdict",
    "assign_tags", "evaluate", "period_anchor",
]

UTC = dt.timezone.utc
TAGS = ("daily", "weekly", "monthly", "yearly")
MODES = ("policy", "forever", "none", "deleted")
MONTH_ANCHORS = ("first", "last")
MAX_COUNT = 10_000


def _check_count(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_COUNT:
        raise InvalidPolicy(reason=f"--keep-{attribute.name} must be a whole number from 0 to {MAX_COUNT}, not {value!r}")


def _check_weekday(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value not in range(7):
        raise InvalidPolicy(reason=f"weekly_on must be a weekday number 0 (mon) to 6 (sun), not {value!r}")


def _check_anchor(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in MONTH_ANCHORS:
        raise InvalidPolicy(reason=f"--monthly-on must be 'first' or 'last', not {value!r}")


@attrs.frozen
class RetentionRules:
    """GFS rules: how many days, weeks, months and years tagged points are kept."""

    daily: int = attrs.field(default=0, validator=_check_count)
    weekly: int = attrs.field(default=0, validator=_check_count)
    monthly: int = attrs.field(default=0, validator=_check_count)
    yearly: int = attrs.field(default=0, validator=_check_count)
    weekly_on: int = attrs.field(default=6, validator=_check_weekday)
    monthly_on: str = attrs.field(default="first", validator=_check_anchor)

    def count(self, tag: str) -> int:
        return getattr(self, tag)

    def describe(self) -> str:
        from .schedule import WEEKDAYS

        parts = [f"{self.daily}d" if self.daily else "", f"{self.weekly}w ({WEEKDAYS[self.weekly_on]})" if self.weekly else "",
                 f"{self.monthly}m ({self.monthly_on})" if self.monthly else "",
                 f"{self.yearly}y ({self.monthly_on})" if self.yearly else ""]
        return " ".join(p for p in parts if p) or "newest point only"

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> RetentionRules:
        return cls(**{f.name: doc[f.name] for f in attrs.fields(cls) if f.name in doc})


@attrs.frozen
class RetentionFloors:
    """Least retention a policy may have when the vault's floors are on (Azure's values by default)."""

    daily: int = attrs.field(default=7, validator=_check_count)
    weekly: int = attrs.field(default=4, validator=_check_count)
    monthly: int = attrs.field(default=3, validator=_check_count)
    yearly: int = attrs.field(default=1, validator=_check_count)

    def check(self, rules: RetentionRules, policy: str) -> None:
        """InvalidPolicy unless ``rules`` keep daily points at least ``daily`` days and
        every other rule in use at least its floor."""
        for tag in TAGS:
            have, least = rules.count(tag), getattr(self, tag)
            if (have or tag == "daily") and have < least:
                raise InvalidPolicy(reason=f"policy {policy!r} keeps {tag} points {have}, below the vault's floor of {least}")

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> RetentionFloors:
        return cls(**{tag: int(doc[tag]) for tag in TAGS if tag in doc})


# --- periods ---------------------------------------------------------------------------


def _last_day(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def period_anchor(tag: str, day: dt.date, rules: RetentionRules) -> dt.date:
    """The local date on which the ``tag`` period that contains ``day`` starts."""
    if tag == "daily":
        return day
    if tag == "weekly":
        return day - dt.timedelta(days=(day.weekday() - rules.weekly_on) % 7)
    last = rules.monthly_on == "last"
    if tag == "monthly":
        if not last:
            return day.replace(day=1)
        if day == _last_day(day.year, day.month):
            return day
        year, month = _add_months(day.year, day.month, -1)
        return _last_day(year, month)
    if tag == "yearly":
        if not last:
            return dt.date(day.year, 1, 1)
        return dt.date(day.year if (day.month, day.day) == (12, 31) else day.year - 1, 12, 31)
    raise ValueError(f"unknown tag {tag!r}")


def period_after(tag: str, anchor: dt.date, n: int, rules: RetentionRules) -> dt.date:
    """The start date of the ``tag`` period ``n`` periods after the one starting at ``anchor``."""
    if tag == "daily":
        return anchor + dt.timedelta(days=n)
    if tag == "weekly":
        return anchor + dt.timedelta(weeks=n)
    if tag == "monthly":
        year, month = _add_months(anchor.year, anchor.month, n)
        return _last_day(year, month) if rules.monthly_on == "last" else dt.date(year, month, 1)
    return anchor.replace(year=anchor.year + n)  # yearly: Jan 1 or Dec 31, both exist every year


def _midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)


# --- evaluation ------------------------------------------------------------------------


@attrs.frozen
class PointFacts:
    """What retention needs to know about one point."""

    point_id: str
    created: dt.datetime  # aware
    retain_until: dt.datetime | None = None


@attrs.frozen
class Verdict:
    """The outcome for one point: its tags, when its retention ends, and whether it stays.

    ``expires_at`` None means never.  ``reason`` says why the point stays or goes:
    ``newest``, ``forever``, ``hold`` (an extra tag), ``retained`` or ``expired``.
    """

    point_id: str
    tags: tuple[str, ...]
    expires_at: dt.datetime | None
    keep: bool
    reason: str


def assign_tags(points: Iterable[PointFacts], rules: RetentionRules, tz: dt.tzinfo) -> dict[str, dict[str, dt.datetime]]:
    """point id -> {tag: expiry} for every tag a point takes (first point of each period)."""
    ordered = sorted(points, key=lambda p: (p.created, p.point_id))
    active = [tag for tag in TAGS if rules.count(tag) > 0]
    taken: dict[str, set[dt.date]] = {tag: set() for tag in active}
    out: dict[str, dict[str, dt.datetime]] = {}
    for point in ordered:
        day = point.created.astimezone(tz).date()
        for tag in active:
            anchor = period_anchor(tag, day, rules)
            if anchor in taken[tag]:
                continue
            taken[tag].add(anchor)
            out.setdefault(point.point_id, {})[tag] = _midnight(period_after(tag, anchor, rules.count(tag), rules), tz)
    return out


def evaluate(
    points: Iterable[PointFacts], rules: RetentionRules | None, tz: dt.tzinfo, now: dt.datetime, *,
    mode: str = "policy", holds: Mapping[str, Iterable[str]] | None = None,
) -> list[Verdict]:
    """The verdict for every point of one item at ``now``, oldest point first."""
    if mode not in MODES:
        raise ValueError(f"unknown retention mode {mode!r}")
    ordered = sorted(points, key=lambda p: (p.created, p.point_id))
    tags = assign_tags(ordered, rules, tz) if rules is not None and mode != "none" else {}
    holds = holds or {}
    newest = ordered[-1].point_id if ordered else None
    verdicts = []
    for point in ordered:
        own = tags.get(point.point_id, {})
        extra = tuple(sorted(set(holds.get(point.point_id, ()))))
        candidates = list(own.values()) + ([point.retain_until] if point.retain_until else [])
        if mode == "policy":
            expires: dt.datetime | None = max(candidates) if candidates else point.created
        elif mode == "none":
            expires = point.retain_until
        elif mode == "forever":
            expires = None
        else:  # deleted
            expires = min(point.created, now)
        if mode == "deleted":
            keep, reason = False, "deleted"
        elif expires is None:
            keep, reason = True, "forever"
        elif expires > now:
            keep, reason = True, "retained"
        elif point.point_id == newest:
            keep, reason = True, "newest"
        elif extra:
            keep, reason = True, "hold"
        else:
            keep, reason = False, "expired"
        ordered_tags = tuple(t for t in TAGS if t in own) + extra
        verdicts.append(Verdict(point.point_id, ordered_tags, expires, keep, reason))
    return verdicts
