"""Soft delete: deleted points stay recoverable until their purge time, and only then go.

Times come from the vault's clock, which the tests move: a point deleted at T is purged by
the first prune at or after T + the soft delete days in force at T, never before.
"""

from __future__ import annotations

import datetime as dt

import pytest

from softkit import soft_delete
from strongroom.errors import ItemStateError, PointNotFound, PointSoftDeleted
from strongroom.models import PROTECTED, STOPPED_RETAIN_FOREVER, parse_iso


def live_ids(vault, item="docs") -> list[str]:
    return [p.point_id for p in vault.points(item)]


def deleted_ids(vault, item=None) -> list[str]:
    return [d.point_id for d in vault.deleted_points(item)]


def header_exists(vault, point_id: str) -> bool:
    return any(name.endswith("/" + point_id) for name in vault.repo.list_names("points/"))


class TestPointsDelete:
    def test_a_deleted_point_is_soft_deleted_until_its_purge_time(self, world):
        """points delete writes a soft-deleted status (purge at now + 14 days); the header stays."""
        vault, first = world.vault, world.ids[0]
        done = vault.delete_point("docs", first[:6])
        assert done.soft and done.points == (first,)
        assert parse_iso(done.purge_at) == world.clock() + dt.timedelta(days=14)
        assert first not in live_ids(vault) and deleted_ids(vault) == [first]
        (found,) = vault.deleted_points("docs")
        assert found.deleted_by == "points delete" and parse_iso(found.deleted_at) == world.clock()
        assert header_exists(vault, first)

    def test_restore_browse_and_open_are_refused_while_soft_deleted(self, world):
        """Restore, browse, open_file and point views of a soft-deleted point: PointSoftDeleted
        (exit 69), naming the undelete command."""
        vault, first = world.vault, world.ids[0]
        vault.delete_point("docs", first)
        calls = [lambda: vault.restore("docs", first, str(world.tmp / "x")),
                 lambda: vault.browse("docs", first[:8]),
                 lambda: vault.open_file("docs", first, str(world.src / "base.bin")),
                 lambda: vault.point_view("docs", first),
                 lambda: vault.point("docs", first)]
        for call in calls:
            with pytest.raises(PointSoftDeleted) as caught:
                call()
            assert caught.value.exit_code == 69
            assert f"strongroom points undelete docs@{first[:8]}" in str(caught.value)
        assert not (world.tmp / "x").exists()

    def test_latest_point_and_parent_skip_soft_deleted_points(self, world):
        """With the newest point soft-deleted, 'latest' is the one before, and a new backup's
        parent is that one too."""
        vault = world.vault
        *_, before, newest = world.ids
        vault.delete_point("docs", newest)
        assert vault.point("docs").point_id == before
        assert world.restored(vault.point("docs").point_id) == world.snapshots[before]
        assert vault.backup("docs").parent == before

    def test_undelete_brings_the_data_back_byte_for_byte_after_prunes(self, world):
        """Prunes with grace 0 during the soft delete retention free nothing of it: once
        undeleted, the point restores byte for byte."""
        vault, first = world.vault, world.ids[0]
        vault.delete_point("docs", first)
        for _ in range(3):
            world.clock.advance(days=4)
            report = vault.prune(grace=0)
            assert first not in [p["point"] for p in report.points_purged]
        assert header_exists(vault, first)
        back = vault.undelete_point("docs", first[:8])
        assert back.point_id == first and back.state == "active"
        assert first in live_ids(vault) and first not in deleted_ids(vault)
        assert world.restored(first) == world.snapshots[first]
        assert vault.verify(read_data=True).ok

    def test_purged_only_once_the_retention_has_passed(self, world):
        """A prune a minute before the purge time keeps the point; the first one after purges
        it (header gone), and its data is freed."""
        vault, first = world.vault, world.ids[0]
        soft_delete(vault, days=20)
        vault.delete_point("docs", first)
        soft_delete(vault, days=14)  # the days in force at the deletion govern
        world.clock.advance(days=20, minutes=-1)
        report = vault.prune(grace=0)
        assert report.points_purged == [] and first in deleted_ids(vault)  # others were just soft-deleted by it
        world.clock.advance(minutes=2)
        report = vault.prune(grace=0)
        assert [p["point"] for p in report.points_purged] == [first]
        assert not header_exists(vault, first) and first not in deleted_ids(vault)
        assert report.blobs_deleted > 0  # day0.bin was only in the purged point
        assert not world.reopened().heads.check().warning()  # a purge is announced: no rollback taken
        with pytest.raises(PointNotFound):
            vault.undelete_point("docs", first)
        assert vault.verify(read_data=True).ok

    def test_soft_delete_off_deletes_at_once(self, world):
        """With soft delete off, points delete removes the header now; nothing to undelete."""
        vault, first = world.vault, world.ids[0]
        soft_delete(vault, state="disabled")
        done = vault.delete_point("docs", first)
        assert not done.soft and not header_exists(vault, first)
        with pytest.raises(PointNotFound):
            vault.undelete_point("docs", first)
        assert vault.prune(grace=0).blobs_deleted > 0

    def test_deleting_a_soft_deleted_point_again_is_refused(self, world):
        """A soft-deleted point is not deleted twice (nor its purge time moved)."""
        vault, first = world.vault, world.ids[0]
        done = vault.delete_point("docs", first)
        world.clock.advance(days=1)
        with pytest.raises(PointSoftDeleted):
            vault.delete_point("docs", first)
        assert vault.deleted_points("docs")[0].purge_at == done.purge_at

    def test_every_deletion_is_journaled_and_alerted(self, world):
        """points delete and undelete leave journal entries; the delete raises a security alert."""
        vault, first = world.vault, world.ids[0]
        vault.delete_point("docs", first)
        vault.undelete_point("docs", first)
        entries = [(e.operation, e.outcome) for e in world.reopened().journal.entries()]
        assert ("points.delete", "succeeded") in entries and ("points.undelete", "succeeded") in entries
        alerts = [a for a in world.reopened().alerts.list() if a.kind == "points.deleted"]
        assert len(alerts) == 1 and alerts[0].category == "security" and "1 point(s)" in alerts[0].summary


class TestPrune:
    def test_expired_points_are_soft_deleted_then_purged(self, world):
        """Prune soft-deletes the points its retention expires ('prune: expired'), keeps their
        data through further prunes, and purges them 14 days later."""
        vault = world.vault
        first, second = world.ids[:2]
        world.clock.advance(days=3)
        report = vault.prune(grace=0)
        gone = [p["point"] for p in report.points_soft_deleted]
        assert {first, second} <= set(gone) and set(gone) == {p["point"] for p in report.points_expired}
        assert all(d.deleted_by == "prune: expired" for d in vault.deleted_points("docs"))
        world.clock.advance(days=13)
        assert vault.prune(grace=0).points_purged == []
        vault.undelete_point("docs", first)
        assert world.restored(first) == world.snapshots[first]
        world.clock.advance(days=1, minutes=1)
        purged = {p["point"] for p in vault.prune(grace=0).points_purged}
        assert second in purged and first not in purged  # undeleted: its status is active again
        assert not header_exists(vault, second)

    def test_dry_run_reports_soft_deletions_and_changes_nothing(self, world):
        """prune --dry-run lists what it would soft-delete; nothing is."""
        vault = world.vault
        world.clock.advance(days=3)
        report = vault.prune(dry_run=True)
        assert report.points_soft_deleted and vault.deleted_points() == []


class TestItems:
    def test_delete_data_soft_deletes_every_point_and_undelete_brings_them_back(self, world):
        """items stop --delete-data: the item is deleted and every point soft-deleted; items
        undelete brings it back stopped with retain forever, with its points, restorable."""
        vault = world.vault
        item = vault.stop("docs", delete_data=True)
        assert item.state == "deleted" and vault.points("docs") == []
        assert sorted(deleted_ids(vault, "docs")) == sorted(world.ids)
        assert {d.deleted_by for d in vault.deleted_points("docs")} == {"items stop --delete-data"}
        with pytest.raises(PointSoftDeleted, match="strongroom items undelete docs"):
            vault.restore("docs", world.ids[0], str(world.tmp / "x"))
        with pytest.raises(ItemStateError, match="items undelete docs"):
            vault.undelete_point("docs", world.ids[0])
        world.clock.advance(days=10)
        vault.prune(grace=0)
        back = vault.undelete_item("docs")
        assert back.state == STOPPED_RETAIN_FOREVER
        assert live_ids(vault) == world.ids
        assert all(p.expires_at is None for p in vault.points("docs"))
        for point_id in world.ids:
            assert world.restored(point_id) == world.snapshots[point_id]
        assert vault.resume("docs").state == PROTECTED

    def test_undelete_item_leaves_points_deleted_another_way(self, world):
        """A point deleted by 'points delete' before the item was deleted stays soft-deleted."""
        vault, first = world.vault, world.ids[0]
        vault.delete_point("docs", first)
        vault.stop("docs", delete_data=True)
        vault.undelete_item("docs")
        assert live_ids(vault) == world.ids[1:] and deleted_ids(vault, "docs") == [first]

    def test_undelete_after_the_purge_is_refused(self, world):
        """Once its points are purged, a deleted item has nothing to undelete."""
        vault = world.vault
        vault.stop("docs", delete_data=True)
        world.clock.advance(days=15)
        vault.prune(grace=0)
        with pytest.raises(ItemStateError, match="nothing to undelete"):
            vault.undelete_item("docs")

    def test_undelete_of_an_item_that_is_not_deleted_is_refused(self, world):
        with pytest.raises(ItemStateError, match="not deleted"):
            world.vault.undelete_item("docs")

    def test_delete_data_with_soft_delete_off_expires_the_points_now(self, world):
        """With soft delete off, --delete-data expires every point; the next prune deletes them."""
        vault = world.vault
        soft_delete(vault, state="disabled")
        vault.stop("docs", delete_data=True)
        assert vault.deleted_points() == []
        assert len(vault.prune(grace=0).points_expired) == 4
        assert vault.repo.pack_ids_on_storage() == set()
