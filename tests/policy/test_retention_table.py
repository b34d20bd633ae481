"""Retention over two years of simulated backups equals the GFS rules, point by point.

Each scenario replays backups on a simulated clock and prunes (evaluate, then drop what
is not kept) as a daily prune would, then compares the points left with a table
computed by hand from the rules in docs/policies.md.  Expected times are local
wall-clock times in the policy's timezone.
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from strongroom.policy.retention import PointFacts, RetentionRules, evaluate
from strongroom.policy.schedule import Schedule

UTC = dt.timezone.utc


@attrs.frozen
class Scenario:
    name: str
    schedule: Schedule
    rules: RetentionRules
    start: str  # first backup at or after (UTC)
    end: str  # the final prune (UTC)
    expected: tuple[str, ...]  # local "YYYY-MM-DD HH:MM" of the points left
    failed: tuple[str, ...] = ()  # local dates whose scheduled backup fails
    on_demand: tuple[tuple[str, str | None], ...] = ()  # (local time, local retain-until)
    prune_at: str = "12:17"  # the daily prune, UTC


def _local(text: str, tz) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


def replay(sc: Scenario) -> list[str]:
    tz = sc.schedule.tz
    start = dt.datetime.fromisoformat(sc.start).replace(tzinfo=UTC)
    end = dt.datetime.fromisoformat(sc.end).replace(tzinfo=UTC)
    events: list[tuple[dt.datetime, str, PointFacts | None]] = []
    for moment in sc.schedule.runs_between(start - dt.timedelta(microseconds=1), end - dt.timedelta(microseconds=1)):
        if moment.astimezone(tz).strftime("%Y-%m-%d") not in sc.failed:
            events.append((moment, "backup", PointFacts(f"s{moment:%Y%m%d%H%M}", moment)))
    for when, until in sc.on_demand:
        at = _local(when, tz)
        events.append((at, "backup", PointFacts(f"d{at:%Y%m%d%H%M}", at, _local(until, tz) if until else None)))
    day = start.date()
    while (prune := dt.datetime.combine(day, dt.time.fromisoformat(sc.prune_at), tzinfo=UTC)) < end:
        events.append((prune, "prune", None))
        day += dt.timedelta(days=1)
    events.append((end, "prune", None))
    points: list[PointFacts] = []
    for when, kind, facts in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "backup":
            points.append(facts)
        else:
            verdicts = {v.point_id: v for v in evaluate(points, sc.rules, tz, when)}
            points = [p for p in points if verdicts[p.point_id].keep]
    return sorted(p.created.astimezone(tz).strftime("%Y-%m-%d %H:%M") for p in points)


BERLIN_HOURLY = Scenario(
    name="hourly backups, Berlin, 7 daily / 4 weekly (Sunday) / 12 monthly (first) / 2 yearly",
    schedule=Schedule.every("1h", "Europe/Berlin"),
    rules=RetentionRules(daily=7, weekly=4, weekly_on=6, monthly=12, monthly_on="first", yearly=2),
    start="2025-01-01T00:00", end="2027-01-01T00:00",  # the end is 01:00 in Berlin, 2027-01-01
    expected=(
        # yearly: 2025's tag expired at 2027-01-01 00:00, an hour before the end
        "2026-01-01 00:00",
        # monthly: February 2026 to December 2026 (January 2026's expired at 2027-01-01 00:00)
        "2026-02-01 00:00", "2026-03-01 00:00", "2026-04-01 00:00", "2026-05-01 00:00",
        "2026-06-01 00:00", "2026-07-01 00:00", "2026-08-01 00:00", "2026-09-01 00:00",
        "2026-10-01 00:00", "2026-11-01 00:00", "2026-12-01 00:00",
        # weekly: Sundays from 2026-12-05 on (a tag lasts until its Sunday + 28 days)
        "2026-12-06 00:00", "2026-12-13 00:00", "2026-12-20 00:00",
        # daily: the 7 local days 2026-12-26 .. 2027-01-01 (12-27 is also weekly)
        "2026-12-26 00:00", "2026-12-27 00:00", "2026-12-28 00:00", "2026-12-29 00:00",
        "2026-12-30 00:00", "2026-12-31 00:00",
        # first point of 2027 and of its day, week, month: also the newest
        "2027-01-01 00:00",
    ),
)

NEW_YORK_DAILY = Scenario(
    name="daily 02:30 backups with failures and on-demand points, New York, 10 daily / 6 weekly (Monday)"
         " / 6 monthly (last) / 3 yearly (last)",
    schedule=Schedule.daily("02:30", "America/New_York"),
    rules=RetentionRules(daily=10, weekly=6, weekly_on=0, monthly=6, monthly_on="last", yearly=3),
    start="2025-01-01T00:00", end="2027-01-15T17:00",  # 2027-01-15 12:00 in New York
    failed=("2026-09-30", "2026-12-14", "2026-12-31", "2027-01-10"),
    on_demand=(
        ("2026-07-31 01:00", "2026-08-05"),  # first point of the monthly period from 07-31: takes its tag
        ("2026-11-20 10:00", "2026-12-20"),  # kept until its own date only
        ("2027-01-12 15:00", "2027-03-01"),  # not first of its day: kept by its own date
    ),
    expected=(
        # yearly (periods from Dec 31): 2025-01-01 is the first point of the period from 2024-12-31
        "2025-01-01 02:30", "2025-12-31 02:30",
        # monthly (periods from the last day): 09-30 failed, so 10-01 takes it; the on-demand
        # 07-31 01:00 came before the scheduled 02:30
        "2026-07-31 01:00", "2026-08-31 02:30", "2026-10-01 02:30", "2026-10-31 02:30", "2026-11-30 02:30",
        # weekly (Mondays from 2026-12-05): 12-14 failed, so Tuesday 12-15 takes it
        "2026-12-07 02:30", "2026-12-15 02:30", "2026-12-21 02:30", "2026-12-28 02:30", "2027-01-04 02:30",
        # 2026-12-31 failed: 2027-01-01 takes that month's and that year's tags
        "2027-01-01 02:30",
        # daily: 2027-01-06 .. 2027-01-15 without the failed 01-10 (01-11 is also weekly)
        "2027-01-06 02:30", "2027-01-07 02:30", "2027-01-08 02:30", "2027-01-09 02:30",
        "2027-01-11 02:30", "2027-01-12 02:30", "2027-01-12 15:00", "2027-01-13 02:30",
        "2027-01-14 02:30", "2027-01-15 02:30",
    ),
)

SYDNEY_WEEKLY = Scenario(
    name="weekly Sunday and Wednesday 03:00 backups, Sydney, only 3 weekly (Wednesday) and 2 monthly (last)",
    schedule=Schedule.weekly("sun,wed@03:00", "Australia/Sydney"),
    rules=RetentionRules(weekly=3, weekly_on=2, monthly=2, monthly_on="last"),
    start="2025-01-01T00:00", end="2026-12-31T01:00",  # 2026-12-31 12:00 in Sydney
    expected=(
        # monthly (last day): periods from 2026-11-30 (a Monday: first point Wed 12-02) and
        # from 2026-12-31 (nothing yet); from 2026-10-31 the tag ended 2026-12-31 00:00
        "2026-12-02 03:00",
        # weekly: the weeks from Wednesdays 12-16, 12-23 and 12-30 (12-30 is also the newest);
        # the Sunday points are never the first of their week
        "2026-12-16 03:00", "2026-12-23 03:00", "2026-12-30 03:00",
    ),
)


@pytest.mark.parametrize("scenario", [BERLIN_HOURLY, NEW_YORK_DAILY, SYDNEY_WEEKLY], ids=lambda s: s.name.split(",")[0])
def test_points_left_after_two_years_are_exactly_the_rules(scenario):
    """Replaying two years of backups and daily prunes leaves exactly the hand-computed points."""
    assert replay(scenario) == sorted(scenario.expected)


def test_one_final_evaluation_agrees_with_daily_prunes():
    """Pruning every day or only once at the end keeps the same points (tags never move to a
    point that outlives them)."""
    once = attrs.evolve(NEW_YORK_DAILY, prune_at="23:59", start="2026-06-01T00:00")
    kept_daily = replay(once)
    tz = once.schedule.tz
    start = dt.datetime.fromisoformat(once.start).replace(tzinfo=UTC)
    end = dt.datetime.fromisoformat(once.end).replace(tzinfo=UTC)
    points = [PointFacts(str(i), m) for i, m in enumerate(once.schedule.runs_between(start, end))
              if m.astimezone(tz).strftime("%Y-%m-%d") not in once.failed]
    points += [PointFacts(w, _local(w, tz), _local(u, tz) if u else None) for w, u in once.on_demand
               if _local(w, tz) >= start]
    kept_once = sorted(p.created.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                       for p, v in zip(sorted(points, key=lambda p: (p.created, p.point_id)), evaluate(points, once.rules, tz, end))
                       if v.keep)
    assert kept_once == kept_daily
