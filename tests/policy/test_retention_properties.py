"""Properties of retention, for any points, rules, timezone and moment (hypothesis).

The oracle below decides "this point satisfies that rule" from the definitions in
docs/policies.md, written independently of the implementation: walk back day by day to
the start of the period, and count periods forward one at a time.
"""

from __future__ import annotations

import calendar
import datetime as dt

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.policy.retention import TAGS, PointFacts, RetentionRules, evaluate
from strongroom.policy.schedule import load_timezone

UTC = dt.timezone.utc
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata")
START = dt.datetime(2024, 1, 1, tzinfo=UTC)


def _is_start(tag: str, day: dt.date, rules: RetentionRules) -> bool:
    last = rules.monthly_on == "last"
    if tag == "daily":
        return True
    if tag == "weekly":
        return day.weekday() == rules.weekly_on
    month_end = day.day == calendar.monthrange(day.year, day.month)[1]
    if tag == "monthly":
        return month_end if last else day.day == 1
    return (day.month, day.day) == ((12, 31) if last else (1, 1))


def _period_start(tag: str, day: dt.date, rules: RetentionRules) -> dt.date:
    while not _is_start(tag, day, rules):
        day -= dt.timedelta(days=1)
    return day


def _expiry(tag: str, day: dt.date, rules: RetentionRules, tz) -> dt.datetime:
    start = _period_start(tag, day, rules)
    for _ in range(rules.count(tag)):  # the start of the next period, N times
        start += dt.timedelta(days=1)
        start = _next_start(tag, start, rules)
    return dt.datetime.combine(start, dt.time(0), tzinfo=tz)


def _next_start(tag: str, day: dt.date, rules: RetentionRules) -> dt.date:
    while not _is_start(tag, day, rules):
        day += dt.timedelta(days=1)
    return day


def satisfied_rules(points: list[PointFacts], rules: RetentionRules, tz, now) -> dict[str, set[str]]:
    """point id -> the rules it satisfies at ``now`` (first of its period, period kept)."""
    out: dict[str, set[str]] = {p.point_id: set() for p in points}
    for tag in TAGS:
        if not rules.count(tag):
            continue
        for p in points:
            day = p.created.astimezone(tz).date()
            start = _period_start(tag, day, rules)
            earlier = [q for q in points if (q.created, q.point_id) < (p.created, p.point_id)
                       and _period_start(tag, q.created.astimezone(tz).date(), rules) == start]
            if not earlier and _expiry(tag, day, rules, tz) > now:
                out[p.point_id].add(tag)
    return out


@st.composite
def cases(draw):
    zone = draw(st.sampled_from(ZONES))
    rules = RetentionRules(
        daily=draw(st.integers(0, 40)), weekly=draw(st.integers(0, 10)), monthly=draw(st.integers(0, 14)),
        yearly=draw(st.integers(0, 3)), weekly_on=draw(st.integers(0, 6)),
        monthly_on=draw(st.sampled_from(["first", "last"])),
    )
    offsets = draw(st.lists(st.integers(0, 2 * 365 * 24 * 60), min_size=1, max_size=40, unique=True))
    points = []
    for i, minutes in enumerate(sorted(offsets)):
        created = START + dt.timedelta(minutes=minutes)
        until = draw(st.one_of(st.none(), st.integers(1, 90 * 24 * 60)))
        points.append(PointFacts(f"p{i:03}", created, created + dt.timedelta(minutes=until) if until else None))
    now = points[-1].created + dt.timedelta(minutes=draw(st.integers(0, 400 * 24 * 60)))
    return points, rules, load_timezone(zone), now


def kept(points, rules, tz, now, mode="policy") -> set[str]:
    return {v.point_id for v in evaluate(points, rules, tz, now, mode=mode) if v.keep}


class TestRetentionProperties:
    @settings(max_examples=100, deadline=None)
    @given(cases())
    def test_a_point_that_satisfies_any_rule_is_never_expired(self, case):
        """Every point that is the first of a period still kept by its rule is kept."""
        points, rules, tz, now = case
        keep = kept(points, rules, tz, now)
        for point_id, tags in satisfied_rules(points, rules, tz, now).items():
            if tags:
                assert point_id in keep, (point_id, tags)

    @settings(max_examples=100, deadline=None)
    @given(cases())
    def test_nothing_else_is_kept(self, case):
        """A kept point satisfies a rule, has its own retain-until ahead, or is the newest."""
        points, rules, tz, now = case
        satisfied = satisfied_rules(points, rules, tz, now)
        newest = max(points, key=lambda p: (p.created, p.point_id)).point_id
        for p in points:
            if p.point_id in kept(points, rules, tz, now):
                assert satisfied[p.point_id] or (p.retain_until and p.retain_until > now) or p.point_id == newest

    @settings(max_examples=150, deadline=None)
    @given(cases(), st.sampled_from(TAGS), st.integers(1, 10))
    def test_shortening_a_rule_never_keeps_more(self, case, tag, cut):
        """Lowering any keep count keeps a subset of the points."""
        points, rules, tz, now = case
        shorter = attrs.evolve(rules, **{tag: max(0, rules.count(tag) - cut)})
        assert kept(points, shorter, tz, now) <= kept(points, rules, tz, now)

    @settings(max_examples=150, deadline=None)
    @given(cases(), st.sampled_from(["policy", "none", "forever"]))
    def test_the_newest_point_is_always_kept(self, case, mode):
        """Whatever the rules and the moment, the newest point stays (except for deleted items)."""
        points, rules, tz, now = case
        newest = max(points, key=lambda p: (p.created, p.point_id)).point_id
        assert newest in kept(points, rules if mode == "policy" else None, tz, now, mode)

    @settings(max_examples=100, deadline=None)
    @given(cases())
    def test_later_moments_never_keep_more(self, case):
        """With the same points, waiting longer never brings a point back."""
        points, rules, tz, now = case
        assert kept(points, rules, tz, now + dt.timedelta(days=3)) <= kept(points, rules, tz, now)

    @settings(max_examples=60, deadline=None)
    @given(cases())
    def test_deleted_items_keep_nothing_and_stopped_forever_keeps_all(self, case):
        """Mode 'deleted' expires every point; mode 'forever' keeps every point."""
        points, rules, tz, now = case
        assert kept(points, rules, tz, now, "deleted") == set()
        assert kept(points, rules, tz, now, "forever") == {p.point_id for p in points}
