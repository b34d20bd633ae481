"""``strongroom find`` across points, ``backup --tag`` and the ``points`` filters."""

from __future__ import annotations

import json
import socket

import pytest

from strongroom.catalog.find import Finder
from strongroom.models import RecoveryPoint
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


@pytest.fixture
def history(tmp_path, vault_url, cli):
    """'etc' with a.conf, then a point with b.conf added too; 'web' with one point; the top paths."""
    etc, web = tmp_path / "etc", tmp_path / "web"
    (etc / "nginx").mkdir(parents=True)
    web.mkdir()
    (etc / "nginx" / "a.conf").write_text("a")
    (web / "index.html").write_text("i")
    cli("vault", "create", vault_url)
    cli("protect", "files", "etc", "--path", str(etc))
    cli("protect", "files", "web", "--path", str(web))
    cli("backup", "etc", "--tag", "nightly")
    (etc / "nginx" / "b.conf").write_text("b")
    cli("backup", "etc", "--tag", "nightly", "--tag", "manual")
    cli("backup", "web", "--tag", "manual")
    return str(etc).lstrip("/"), str(web).lstrip("/")


def found(cli, *args) -> list[tuple[str, str]]:
    doc = json.loads(cli("find", *args, "--json").stdout)
    return [(m["item"], m["path"].rsplit("/", 1)[-1]) for m in doc["matches"]]


class TestFind:
    def test_name_pattern_across_points(self, history, cli):
        """*.conf finds a.conf in both points of etc and b.conf in the second only."""
        assert found(cli, "*.conf") == [("etc", "a.conf"), ("etc", "a.conf"), ("etc", "b.conf")]

    def test_path_pattern_and_item(self, history, cli):
        """A pattern with / matches the end of the path; --item keeps one item's points."""
        assert found(cli, "nginx/b.*") == [("etc", "b.conf")]
        assert found(cli, "*.html", "--item", "etc") == []
        assert found(cli, "*.html", "--item", "web") == [("web", "index.html")]
        etc, _ = history
        assert found(cli, f"/{etc}/nginx/a.conf") == [("etc", "a.conf"), ("etc", "a.conf")]
        assert found(cli, "/nginx/a.conf") == []

    def test_newer_and_older(self, history, cli):
        """--newer 1d keeps every point here; --older 2000-01-01 none; a bad time is exit 3."""
        assert len(found(cli, "*.conf", "--newer", "1d")) == 3
        assert found(cli, "*.conf", "--older", "2000-01-01") == []
        assert_one_line_error(cli("find", "x", "--newer", "soon", expect=None), 3, "soon")

    def test_unchanged_folders_are_read_once(self, history, vault_url):
        """Searching two points, a folder node both share is read once (the second from memory)."""
        vault = Vault.open(vault_url)
        web = vault.points("web")[0]
        finder = Finder("*.html")
        reads: list[bytes] = []
        for _ in range(2):
            tree = vault.tree(web)
            original = tree.folder
            tree.folder = lambda tree_id, path, original=original: (reads.append(tree_id), original(tree_id, path))[1]
            assert [p.rsplit("/", 1)[-1] for p, _ in finder.find(tree)] == ["index.html"]
        assert len(reads) == len(set(reads))


class TestTags:
    def test_tags_host_and_paths_are_in_the_header(self, history, cli, tmp_path):
        """backup --tag puts user_tags in the point; the host and source paths are recorded."""
        points = json.loads(cli("points", "etc", "--json").stdout)
        assert [p["user_tags"] for p in points] == [["nightly"], ["nightly", "manual"]]
        assert {p["host"] for p in points} == {socket.gethostname()}
        assert points[0]["paths"] == [str(tmp_path / "etc")]

    def test_points_filters(self, history, cli, tmp_path):
        """--tag (any of; a,b both), --host and --path keep the matching points only."""
        def ids(*args):
            return [(p["item_name"], p["user_tags"]) for p in json.loads(cli("points", *args, "--json").stdout)]
        assert ids("--tag", "manual") == [("etc", ["nightly", "manual"]), ("web", ["manual"])]
        assert ids("--tag", "nightly,manual") == [("etc", ["nightly", "manual"])]
        assert len(ids("--tag", "nightly", "--tag", "manual")) == 3
        assert len(ids("--host", socket.gethostname())) == 3
        assert ids("--host", "elsewhere") == []
        assert ids("--path", str(tmp_path / "web")) == [("web", ["manual"])]
        assert ids("etc", "--tag", "manual", "--path", str(tmp_path / "web")) == []

    def test_bad_tag_is_refused(self, history, cli):
        """A tag with a space or a comma: exit 2 before anything runs."""
        result = cli("backup", "web", "--tag", "a,b", expect=2)
        assert "--tag" in result.stderr
        assert len(json.loads(cli("points", "web", "--json").stdout)) == 1

    def test_old_headers_read_as_without_tags(self):
        """A header written before the fields existed reads with no tags, host or paths."""
        point = RecoveryPoint.from_dict({"point_id": "p1", "item_id": "i1", "item_name": "x", "workload": "files",
                                         "created": "2026-01-01T00:00:00+00:00", "root": "ab" * 32})
        assert (point.user_tags, point.host, point.paths) == ((), "", ())
