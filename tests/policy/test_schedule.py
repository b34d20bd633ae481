"""Schedules: parsing, run times across daylight-saving changes in two timezones, coalescing."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.errors import InvalidPolicy
from strongroom.policy.due import due_slot
from strongroom.policy.schedule import Schedule, parse_every, parse_times, parse_weekly

UTC = dt.timezone.utc


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(moment: dt.datetime, schedule: Schedule) -> str:
    return moment.astimezone(schedule.tz).strftime("%Y-%m-%d %H:%M %Z")


def runs(schedule: Schedule, start: str, end: str) -> list[str]:
    return [local(m, schedule) for m in schedule.runs_between(utc(start), utc(end))]


class TestParsing:
    def test_times_are_normalised_sorted_and_unique(self):
        """'14:00,2:00,02:00' becomes ('02:00', '14:00')."""
        assert parse_times("14:00,2:00,02:00") == ("02:00", "14:00")

    def test_weekly_days_and_times(self):
        """'sun,wed@03:00,15:00' gives Wednesday and Sunday at both times; full names work."""
        assert parse_weekly("sun,wed@03:00,15:00") == ((2, 6), ("03:00", "15:00"))
        assert parse_weekly("Sunday@03:00") == ((6,), ("03:00",))

    def test_every_accepts_only_divisors_of_a_day(self):
        """--every takes 1h, 2h, 4h, 6h, 8h or 12h."""
        assert [parse_every(f"{h}h") for h in (1, 2, 4, 6, 8, 12)] == [1, 2, 4, 6, 8, 12]
        with pytest.raises(InvalidPolicy, match="invalid interval '5h'"):
            parse_every("5h")

    @pytest.mark.parametrize("text, message", [
        ("25:00", "invalid time '25:00'"), ("12:60", "invalid time '12:60'"), ("noon", "invalid time 'noon'"),
    ])
    def test_bad_times(self, text, message):
        """A time outside 00:00-23:59 is refused with the time in the message."""
        with pytest.raises(InvalidPolicy, match=message):
            parse_times(text)

    def test_unknown_weekday(self):
        """A weekday that is not mon..sun is refused and the choices are listed."""
        with pytest.raises(InvalidPolicy, match="unknown weekday 'sum'.*mon, tue"):
            parse_weekly("sum@03:00")

    def test_unknown_timezone(self):
        """An unknown IANA timezone is refused."""
        with pytest.raises(InvalidPolicy, match="unknown timezone 'Mars/Olympus'"):
            Schedule.daily("02:00", "Mars/Olympus")

    def test_round_trip(self):
        """A schedule survives to_dict/from_dict."""
        schedule = Schedule.weekly("mon,fri@01:15,13:45", "America/New_York")
        assert Schedule.from_dict(schedule.to_dict()) == schedule


class TestDaylightSaving:
    def test_berlin_daily_0230_runs_once_on_the_day_the_clock_skips(self):
        """On 2025-03-30 02:30 does not exist in Berlin: the run happens once, at 03:30 CEST."""
        schedule = Schedule.daily("02:30", "Europe/Berlin")
        assert runs(schedule, "2025-03-28T12:00", "2025-04-01T12:00") == [
            "2025-03-29 02:30 CET", "2025-03-30 03:30 CEST", "2025-03-31 02:30 CEST", "2025-04-01 02:30 CEST",
        ]

    def test_berlin_daily_0230_runs_once_on_the_day_the_clock_repeats(self):
        """On 2025-10-26 02:30 happens twice in Berlin: the run happens once, at the first."""
        schedule = Schedule.daily("02:30", "Europe/Berlin")
        moments = schedule.runs_between(utc("2025-10-25T12:00"), utc("2025-10-27T12:00"))
        assert [local(m, schedule) for m in moments] == ["2025-10-26 02:30 CEST", "2025-10-27 02:30 CET"]
        assert moments[0] == utc("2025-10-26T00:30")

    def test_new_york_spring_forward_and_fall_back(self):
        """New York skips 02:00-03:00 on 2025-03-09 and repeats 01:00-02:00 on 2025-11-02:
        01:30 and 02:30 each still run once a day."""
        schedule = Schedule.daily("01:30,02:30", "America/New_York")
        assert runs(schedule, "2025-03-09T00:00", "2025-03-10T12:00") == [
            "2025-03-09 01:30 EST", "2025-03-09 03:30 EDT", "2025-03-10 01:30 EDT", "2025-03-10 02:30 EDT",
        ]
        assert runs(schedule, "2025-11-02T00:00", "2025-11-03T12:00") == [
            "2025-11-02 01:30 EDT", "2025-11-02 02:30 EST", "2025-11-03 01:30 EST", "2025-11-03 02:30 EST",
        ]

    def test_hourly_has_one_run_per_wall_clock_hour(self):
        """Every 1h: 23 runs on the 23-hour day, 24 (not 25) on the 25-hour day, in both zones."""
        for zone, spring, autumn in (("Europe/Berlin", "2025-03-30", "2025-10-26"),
                                     ("America/New_York", "2025-03-09", "2025-11-02")):
            schedule = Schedule.every("1h", zone)
            assert len(schedule.runs_on(dt.date.fromisoformat(spring))) == 23
            assert len(schedule.runs_on(dt.date.fromisoformat(autumn))) == 24

    def test_every_4h_keeps_to_the_wall_clock(self):
        """Every 4h runs at local 00:00, 04:00, ... before and after the change."""
        schedule = Schedule.every("4h", "Europe/Berlin")
        got = runs(schedule, "2025-03-29T20:00", "2025-03-30T12:00")
        assert got == ["2025-03-30 00:00 CET", "2025-03-30 04:00 CEST", "2025-03-30 08:00 CEST",
                       "2025-03-30 12:00 CEST"]

    def test_weekly_across_the_change(self):
        """Weekly sun@02:30 in Berlin: the Sunday of the change runs at 03:30, then 02:30 again."""
        schedule = Schedule.weekly("sun@02:30", "Europe/Berlin")
        assert runs(schedule, "2025-03-22T00:00", "2025-04-07T00:00") == [
            "2025-03-23 02:30 CET", "2025-03-30 03:30 CEST", "2025-04-06 02:30 CEST",
        ]

    def test_next_and_previous_run_are_inverse(self):
        """previous_run(next_run(t)) == next_run(t), over a year in 5-hour steps in New York."""
        schedule = Schedule.daily("01:30,02:30,23:59", "America/New_York")
        moment = utc("2025-01-01T00:00")
        for _ in range(24 * 365 // 5):
            upcoming = schedule.next_run(moment)
            assert upcoming > moment
            assert schedule.previous_run(upcoming) == upcoming
            assert schedule.previous_run(upcoming - dt.timedelta(microseconds=1)) <= moment
            moment += dt.timedelta(hours=5)


class TestCoalescing:
    def test_missed_runs_coalesce_into_one(self):
        """After three missed days, the work is due once, for the latest slot only."""
        schedule = Schedule.daily("02:00", "UTC")
        last = utc("2025-06-01T02:00")
        now = utc("2025-06-04T09:00")
        due = due_slot(schedule, now, last_slot=last)
        assert due.due and due.slot == utc("2025-06-04T02:00")
        # once that slot has run, nothing is due until the next one
        after = due_slot(schedule, now, last_slot=due.slot)
        assert not after.due and after.next_run == utc("2025-06-05T02:00")

    def test_not_due_before_the_next_slot(self):
        """A run at 02:00 makes nothing due until 02:00 the next day."""
        schedule = Schedule.daily("02:00", "UTC")
        due = due_slot(schedule, utc("2025-06-01T23:59"), last_slot=utc("2025-06-01T02:00"))
        assert not due.due and due.next_run == utc("2025-06-02T02:00")

    def test_never_ran_and_nothing_to_show_is_due_at_once(self):
        """With at_once, a schedule that never ran is due now, for the latest slot."""
        schedule = Schedule.weekly("sun@03:00", "UTC")
        due = due_slot(schedule, utc("2025-06-04T10:00"), last_slot=None, since=utc("2025-06-04T09:00"), at_once=True)
        assert due.due and due.slot == utc("2025-06-01T03:00")

    def test_since_holds_back_slots_before_it(self):
        """Without at_once, slots before 'since' (protected or resumed) are not owed."""
        schedule = Schedule.daily("02:00", "UTC")
        due = due_slot(schedule, utc("2025-06-04T10:00"), last_slot=None, since=utc("2025-06-04T09:00"))
        assert not due.due and due.next_run == utc("2025-06-05T02:00")
