"""``strongroom diff ITEM@A ITEM@B [PATH]``: exactly the entries a known change set changed."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from strongroom.catalog.diff import diff_trees
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


@pytest.fixture
def changed(tmp_path, vault_url, cli):
    """Two points of 'tree' around a known change set; returns (top path, first id, second id)."""
    src = tmp_path / "src"
    for folder in ("keep/deep/deeper", "gone/inner", "same"):
        (src / folder).mkdir(parents=True)
    for name in ("content.txt", "mode.txt", "mtime.txt", "owner.txt", "removed.txt", "becomes_dir"):
        (src / name).write_text(name)
    (src / "keep/deep/deeper/x.bin").write_bytes(os.urandom(5000))
    (src / "gone/inner/y").write_text("y")
    (src / "same/z").write_text("z")
    os.symlink("content.txt", src / "link")
    cli("vault", "create", vault_url)
    cli("protect", "files", "tree", "--path", str(src))
    cli("backup", "tree")
    # the change set
    (src / "content.txt").write_text("content changed, same mtime?")
    os.chmod(src / "mode.txt", 0o600)
    os.utime(src / "mtime.txt", (1_000_000_000, 1_000_000_000))
    if os.geteuid() == 0:
        os.chown(src / "owner.txt", 4321, 4321)
    (src / "removed.txt").unlink()
    (src / "added.txt").write_text("new")
    shutil.rmtree(src / "gone")
    (src / "newdir/sub").mkdir(parents=True)
    (src / "newdir/sub/n").write_text("n")
    (src / "becomes_dir").unlink()
    (src / "becomes_dir").mkdir()
    (src / "becomes_dir/inside").write_text("i")
    os.unlink(src / "link")
    os.symlink("mode.txt", src / "link")
    cli("backup", "tree")
    first, second = (p["id"] for p in json.loads(cli("points", "tree", "--json").stdout))
    return str(src).lstrip("/"), first, second


class TestDiff:
    def test_lists_exactly_the_change_set(self, changed, cli):
        """Added, removed and changed entries, with what changed, and nothing else."""
        top, a, b = changed
        doc = json.loads(cli("diff", f"tree@{a}", f"tree@{b}", "--json").stdout)
        got = {(c["path"][len(top) + 1:], c["change"], tuple(c["what"])) for c in doc["changes"]}
        expected = {
            ("content.txt", "modified", ("content", "mtime")),
            ("mode.txt", "modified", ("mode",)),
            ("mtime.txt", "modified", ("mtime",)),
            ("removed.txt", "removed", ()),
            ("added.txt", "added", ()),
            ("gone", "removed", ()), ("gone/inner", "removed", ()), ("gone/inner/y", "removed", ()),
            ("newdir", "added", ()), ("newdir/sub", "added", ()), ("newdir/sub/n", "added", ()),
            ("becomes_dir", "modified", ("type",)), ("becomes_dir/inside", "added", ()),
            ("link", "modified", ("target", "mtime")),
        }
        if os.geteuid() == 0:
            expected.add(("owner.txt", "modified", ("owner",)))
        assert got == expected
        assert doc["summary"]["added"] == 5 and doc["summary"]["removed"] == 4
        assert doc["from"] == a and doc["to"] == b

    def test_text_output_marks_each_change(self, changed, cli):
        """+, -, M, U and T lines as restic prints them, then the counts."""
        top, a, b = changed
        lines = cli("diff", f"tree@{a}", f"tree@{b}").stdout.splitlines()
        assert f"+    {top}/added.txt" in lines
        assert f"-    {top}/gone/" in lines
        assert f"M    {top}/content.txt (content, mtime)" in lines
        assert f"U    {top}/mode.txt (mode)" in lines
        assert f"T    {top}/becomes_dir/ (type)" in lines
        assert lines[-1].startswith("5 added")

    def test_path_limits_the_diff(self, changed, cli):
        """PATH: only what is at and below it."""
        top, a, b = changed
        doc = json.loads(cli("diff", f"tree@{a}", f"tree@{b}", f"{top}/newdir", "--json").stdout)
        assert [c["path"][len(top) + 1:] for c in doc["changes"]] == ["newdir", "newdir/sub", "newdir/sub/n"]

    def test_same_point_has_no_changes(self, changed, cli):
        """A point against itself: no change, and no tree node read past the root comparison."""
        _, a, _ = changed
        assert json.loads(cli("diff", f"tree@{a}", f"tree@{a}", "--json").stdout)["changes"] == []

    def test_unchanged_subtrees_are_not_read(self, changed, vault_url):
        """Folders whose tree id is the same in both points (keep/, same/) are skipped unread."""
        top, a, b = changed
        vault = Vault.open(vault_url)
        old, new = vault.tree(vault.point("tree", a)), vault.tree(vault.point("tree", b))
        read: list[str] = []
        for tree in (old, new):
            original = tree.folder
            tree.folder = lambda tree_id, path, original=original: (read.append(path), original(tree_id, path))[1]
        list(diff_trees(old, new))
        assert read and not [p for p in read if p.startswith((f"{top}/keep", f"{top}/same"))]

    def test_a_point_id_is_needed_on_both_sides(self, changed, cli):
        """ITEM without @POINT: exit 3."""
        _, a, _ = changed
        assert_one_line_error(cli("diff", f"tree@{a}", "tree", expect=None), 3, "two points")
