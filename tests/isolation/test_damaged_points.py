"""One damaged point header or status document stays with its point (issue 12, case 2).

A damaged header is listed as damaged by ``points`` (text and JSON), refused by name by
restore and browse (exit 50), and never chosen as the latest point or as a backup's
parent; every other point and item keeps working.  A damaged status document falls back
to an older one or to the header's own retention, with a notice.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from damagekit import DAMAGE, read_tree, rel, write_tree
from strongroom.services.pointstatus import PointStatus, write_status
from strongroom.vault import Vault


@pytest.fixture
def vault_with_points(cli, source, tmp_path):
    """Item 'data' with three points (each with a different top.txt) and item 'other'."""
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", "data", "--path", source)
    for version in range(3):
        write_tree(source, {"top.txt": f"version {version}\n".encode()})
        cli("backup", "data")
    other = tmp_path / "other"
    write_tree(other, {"o.txt": b"other item\n"})
    cli("protect", "files", "other", "--path", str(other))
    cli("backup", "other")
    points = json.loads(cli("points", "data", "--json").stdout)
    return [p["point_id"] for p in points]


def _header(cli, point_id: str) -> str:
    item_id = json.loads(cli("points", "data", "--json").stdout)[0]["item_id"]
    return os.path.join(cli.vault_url, "points", item_id, point_id)


@pytest.mark.parametrize("how", DAMAGE)
class TestDamagedHeader:
    def test_points_lists_it_as_damaged_and_everything_else(self, cli, vault_with_points, how):
        """`points` (all items, one item, --json) lists the damaged point with its error
        beside every intact point, and exits 0."""
        oldest, *newer = vault_with_points
        DAMAGE[how](_header(cli, oldest))
        every = cli("points")
        lines = every.stdout.splitlines()
        assert [line.split()[0] for line in lines[1:]] == [p[:8] for p in newer] + [lines[-2].split()[0], oldest[:8]]
        assert lines[-1].split()[:3] == [oldest[:8], "data", "damaged"]
        assert "other" in every.stdout
        assert every.stderr.count("\n") == 1 and oldest[:8] in every.stderr and "damaged" in every.stderr
        listed = json.loads(cli("points", "data", "--json").stdout)
        assert [p["point_id"] for p in listed] == newer + [oldest]
        assert listed[-1]["state"] == "damaged" and listed[-1]["item_name"] == "data" and listed[-1]["error"]
        assert all(p["state"] == "active" for p in listed[:-1])

    def test_restore_and_browse_of_it_say_it_is_damaged(self, cli, vault_with_points, tmp_path, how):
        """Restore and browse of the damaged point exit 50 with one line naming it."""
        oldest = vault_with_points[0]
        DAMAGE[how](_header(cli, oldest))
        for args in (("restore", f"data@{oldest[:8]}", "--target", str(tmp_path / "out")),
                     ("browse", f"data@{oldest[:8]}")):
            res = cli(*args, expect=50)
            assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
            assert oldest in res.stderr and "damaged" in res.stderr
        assert not (tmp_path / "out").exists()

    def test_other_points_restore_and_backup_goes_on(self, cli, vault_with_points, source, tmp_path, how):
        """With an old header damaged, the latest point restores and a backup works."""
        oldest, _, latest = vault_with_points
        DAMAGE[how](_header(cli, oldest))
        cli("restore", "data", "--target", str(tmp_path / "out"))
        assert read_tree(tmp_path / "out" / rel(source)) == read_tree(source)
        cli("backup", "data")
        newest = json.loads(cli("points", "data", "--json").stdout)[-2]
        assert newest["parent"] == latest

    def test_a_damaged_latest_header_is_never_latest_nor_parent(self, cli, vault_with_points, source, tmp_path, how):
        """When the newest header is damaged, "latest" is the newest intact point, for a
        restore and as the next backup's parent."""
        _, middle, latest = vault_with_points
        DAMAGE[how](_header(cli, latest))
        cli("restore", "data", "--target", str(tmp_path / "out"))
        assert (tmp_path / "out" / rel(source) / "top.txt").read_bytes() == b"version 1\n"
        cli("backup", "data")
        made = [p for p in json.loads(cli("points", "data", "--json").stdout) if p["state"] != "damaged"][-1]
        assert made["parent"] == middle

    def test_an_item_whose_only_point_is_damaged(self, cli, vault_with_points, how):
        """With every header of an item damaged, restore says so, naming one of them; the
        other item is untouched."""
        for point_id in vault_with_points:
            DAMAGE[how](_header(cli, point_id))
        res = cli("restore", "data", "--target", "/nonexistent/never", expect=50)
        assert "every recovery point of item 'data' is damaged" in res.stderr and "and 2 more" in res.stderr
        assert any(point_id in res.stderr for point_id in vault_with_points)
        assert res.stderr.count("\n") == 1
        assert "damaged" not in cli("points", "other").output


class TestDamagedStatus:
    def _statuses(self, vault_url: str, point) -> list[str]:
        folder = os.path.join(vault_url, "point-status", point.item_id, point.point_id)
        return sorted(os.path.join(folder, name) for name in os.listdir(folder))

    def _status(self, vault: Vault, point, expires: str, now: dt.datetime) -> None:
        write_status(vault.repo, PointStatus(point_id=point.point_id, item_id=point.item_id,
                                             expires_at=expires, reason="test"), now)

    @pytest.mark.parametrize("how", DAMAGE)
    def test_every_status_damaged_means_the_header_retention_with_a_notice(self, cli, vault_with_points, how):
        """A point whose only status document is damaged shows its header's retention,
        and `points` says so in a notice (JSON: "notice")."""
        vault = Vault.open(cli.vault_url)
        point = vault.points("data")[0]
        now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        self._status(vault, point, "2031-01-01T00:00:00+00:00", now)
        assert vault.points("data")[0].expires_at == "2031-01-01T00:00:00+00:00"
        DAMAGE[how](self._statuses(cli.vault_url, point)[0])
        listed = json.loads(cli("points", "data", "--json").stdout)[0]
        assert listed["expires_at"] == point.expires_at
        assert "status document" in listed["notice"] and "header's retention" in listed["notice"]
        text = cli("points", "data")
        assert point.point_id[:8] in text.stderr and "header's retention" in text.stderr

    def test_a_damaged_newest_status_falls_back_to_the_older_one_with_a_notice(self, cli, vault_with_points):
        """With two statuses and the newest damaged, the older one is used, with a notice;
        the other points have none."""
        vault = Vault.open(cli.vault_url)
        point = vault.points("data")[0]
        now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        self._status(vault, point, "2031-01-01T00:00:00+00:00", now)
        self._status(vault, point, "2032-01-01T00:00:00+00:00", now + dt.timedelta(days=1))
        DAMAGE["bit flip"](self._statuses(cli.vault_url, point)[-1])
        listed = json.loads(cli("points", "data", "--json").stdout)
        assert listed[0]["expires_at"] == "2031-01-01T00:00:00+00:00"
        assert "an older one is used" in listed[0]["notice"]
        assert all("notice" not in p for p in listed[1:])

    def test_statuses_written_by_a_clock_behind_are_no_notice(self, cli, vault_with_points):
        """A newest status whose name was moved ahead of its writer's clock is not taken
        for a damaged one."""
        vault = Vault.open(cli.vault_url)
        point = vault.points("data")[0]
        now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        self._status(vault, point, "2031-01-01T00:00:00+00:00", now)
        self._status(vault, point, "2032-01-01T00:00:00+00:00", now - dt.timedelta(days=1))
        listed = json.loads(cli("points", "data", "--json").stdout)
        assert listed[0]["expires_at"] == "2032-01-01T00:00:00+00:00" and "notice" not in listed[0]
