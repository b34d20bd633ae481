"""What a restore fetches ahead for recovery: the timelines it follows and where it stops
(no server needed; the end-to-end restores are in test_pg_physical_pitr.py)."""

from __future__ import annotations

import datetime as dt

from strongroom_postgres.recoverywal import AHEAD, Until, chain, parse_history, plan

T0 = dt.datetime(2026, 12, 5, 6, 0, tzinfo=dt.timezone.utc)
DOC = {"start_wal_file": "000000010000000000000003", "timeline": 1, "stop_lsn": "0/4000100"}


def have(*names: str, late: tuple[str, ...] = ()) -> dict[str, tuple[str, str, str]]:
    """An archive listing: ``late`` names archived an hour after T0, the others at T0."""
    out = {n: ("sha", "p1", T0.isoformat()) for n in names}
    out.update({n: ("sha", "p2", (T0 + dt.timedelta(hours=1)).isoformat()) for n in late})
    return out


def seg(tli: int, number: int) -> str:
    return f"{tli:08X}{0:08X}{number:08X}"


class TestTimelines:
    def test_a_history_file_gives_the_switch_points_oldest_first(self):
        text = "1\t0/50000A0\tno recovery target specified\n\n# comment\n2\t0/7000000\tat restore point\n"
        assert parse_history(text) == [(1, 0x50000A0), (2, 0x7000000)]

    def test_recovery_follows_the_newest_timeline_whose_history_files_follow_one_another(self):
        histories = {2: "1\t0/50000A0\tx\n", 3: "1\t0/50000A0\tx\n2\t0/7000000\ty\n", 5: "junk"}
        assert chain(histories, 1) == [(3, 7), (2, 5), (1, 0)]
        assert chain({}, 1) == [(1, 0)]


class TestPlan:
    def test_to_latest_everything_from_the_base_backup_to_the_end_of_the_archive(self):
        listing = have(*(seg(1, n) for n in range(1, 8)))
        assert plan(listing, {}, DOC, Until()) == [seg(1, n) for n in range(3, 8)]

    def test_after_a_promotion_the_new_timeline_from_its_switch_segment_and_every_history_file(self):
        listing = have(*(seg(1, n) for n in range(3, 9)), *(seg(2, n) for n in range(5, 8)), "00000002.history")
        names = plan(listing, {2: "1\t0/50000A0\tx\n"}, DOC, Until())
        assert names == ["00000002.history", seg(1, 3), seg(1, 4), seg(2, 5), seg(2, 6), seg(2, 7)]

    def test_to_a_time_up_to_two_segments_archived_after_it(self):
        listing = have(seg(1, 3), seg(1, 4), late=(seg(1, 5), seg(1, 6), seg(1, 7)))
        assert plan(listing, {}, DOC, Until(time=T0 + dt.timedelta(minutes=1)))[-1] == seg(1, 6)

    def test_to_a_segment_and_a_gap_after_the_base_backup_ends_the_plan(self):
        listing = have(*(seg(1, n) for n in (4, 5, 6, 7, 9, 10)))
        assert plan(listing, {}, DOC, Until(segment=6)) == [seg(1, 4), seg(1, 5), seg(1, 6)]
        assert plan(listing, {}, DOC, Until()) == [seg(1, n) for n in (4, 5, 6, 7)]

    def test_at_most_AHEAD_segments(self):
        listing = have(*(seg(1, n) for n in range(3, 3 + AHEAD + 10)), "00000002.history")
        names = plan(listing, {}, DOC, Until())
        assert names[0] == "00000002.history" and names[1:] == [seg(1, n) for n in range(3, 3 + AHEAD)]
