"""Restore never destroys what it did not write (issue 12, case 6), and the target's own
errors get their own exit codes and one line naming the path (case 4).

The target-side errors are made on real file systems: a tmpfs too small for the point
(ENOSPC), a tmpfs remounted read-only (EROFS), a regular file as the target's parent
(ENOTDIR) and an immutable file (``chattr +i``, EPERM).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from damagekit import mounted_tmpfs, read_tree, rel, remount_read_only, write_tree
from vaultkit import first_backup

OLD = 1_500_000_000  # a modification time long before any backup of the tests
NEW = 4_000_000_000  # one long after


@pytest.fixture
def backed_up(cli, source):
    first_backup(cli, source)
    return source


def _one_line(res, *words: str) -> str:
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), res.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class TestWhatIsInTheWay:
    def test_a_folder_with_files_where_a_file_goes_is_kept(self, cli, backed_up, tmp_path):
        """A non-empty folder where the point has a file is kept with what it holds, the
        path is named (exit 64), and everything else is restored."""
        out = tmp_path / "out" / rel(backed_up)
        write_tree(out, {"a/f1.txt/mine.txt": b"the user's own file\n"})
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=64)
        _one_line(res, f"{out}/a/f1.txt", "not empty")
        assert (out / "a" / "f1.txt" / "mine.txt").read_bytes() == b"the user's own file\n"
        expected = {k: v for k, v in read_tree(backed_up).items() if k != "a/f1.txt"}
        assert read_tree(out) == expected | {"a/f1.txt/mine.txt": b"the user's own file\n"}

    def test_an_empty_folder_and_a_symlink_in_the_way_are_replaced(self, cli, backed_up, tmp_path):
        """By default (always) an empty folder or a symlink where a file goes is replaced."""
        out = tmp_path / "out" / rel(backed_up)
        (out / "a" / "f1.txt").mkdir(parents=True)
        os.symlink("/etc/passwd", out / "a" / "f2.txt")
        cli("restore", "data", "--target", str(tmp_path / "out"))
        assert read_tree(out) == read_tree(backed_up)

    def test_a_file_where_a_folder_goes_is_kept_with_never(self, cli, backed_up, tmp_path):
        """With --overwrite never, a file where the point has a folder is kept and named
        (exit 64); nothing of that folder is written, the rest is."""
        out = tmp_path / "out" / rel(backed_up)
        write_tree(out, {"b": b"a file named like the folder\n"})
        res = cli("restore", "data", "--target", str(tmp_path / "out"), "--overwrite", "never", expect=64)
        _one_line(res, f"{out}/b", "a file is where the point has a folder")
        assert (out / "b").read_bytes() == b"a file named like the folder\n"
        assert read_tree(out) == {k: v for k, v in read_tree(backed_up).items() if not k.startswith("b/")} \
            | {"b": b"a file named like the folder\n"}


class TestOverwrite:
    @pytest.fixture
    def changed(self, backed_up, tmp_path):
        """A restore target with the point's files, two of them changed since: one older
        than the point's, one newer."""
        out = tmp_path / "out" / rel(backed_up)
        write_tree(out, {"a/f0.txt": b"edited, older\n", "a/f1.txt": b"edited, newer\n"})
        os.utime(out / "a" / "f0.txt", (OLD, OLD))
        os.utime(out / "a" / "f1.txt", (NEW, NEW))
        return out

    def test_always_replaces_existing_files(self, cli, backed_up, changed, tmp_path):
        """The default, always: every file comes back as the point has it."""
        cli("restore", "data", "--target", str(tmp_path / "out"))
        assert read_tree(changed) == read_tree(backed_up)

    def test_never_keeps_existing_files(self, cli, backed_up, changed, tmp_path):
        """never: existing files are kept and counted; missing ones are written."""
        res = cli("restore", "data", "--target", str(tmp_path / "out"), "--overwrite", "never")
        assert "2 kept as they were" in res.stdout
        got = read_tree(changed)
        assert got["a/f0.txt"] == b"edited, older\n" and got["a/f1.txt"] == b"edited, newer\n"
        assert {k: v for k, v in got.items() if k not in ("a/f0.txt", "a/f1.txt")} == \
            {k: v for k, v in read_tree(backed_up).items() if k not in ("a/f0.txt", "a/f1.txt")}

    def test_if_newer_replaces_only_older_files(self, cli, backed_up, changed, tmp_path):
        """if-newer: a file older than the point's is replaced, a newer one kept."""
        res = cli("restore", "data", "--target", str(tmp_path / "out"), "--overwrite", "if-newer", "--json")
        assert '"skipped": 1' in res.stdout
        got = read_tree(changed)
        assert got["a/f0.txt"] == read_tree(backed_up)["a/f0.txt"]
        assert got["a/f1.txt"] == b"edited, newer\n"


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting file systems needs root")


class TestTargetErrors:
    def test_a_full_disk_stops_the_restore_and_leaves_no_partial_file(self, cli, source, tmp_path):
        """On a full disk: exit 63, one line naming the file; no file is left partly
        written (every file in the target is whole)."""
        _root_only()
        write_tree(source, {"big/huge.bin": os.urandom(3 * 1024 * 1024)})
        first_backup(cli, source)
        with mounted_tmpfs(tmp_path / "small", "1m") as small:
            res = cli("restore", "data", "--target", small, expect=63)
            line = _one_line(res, "The restore target is full", "No space left on device", "huge.bin",
                             "the restore stopped")
            assert "(the file was removed" in line
            expected = read_tree(source)
            for relpath, data in read_tree(os.path.join(small, rel(source))).items():
                assert data == expected[relpath], f"{relpath} is not whole"
            assert not os.path.exists(os.path.join(small, rel(source), "big", "huge.bin"))

    def test_a_read_only_target_is_one_line(self, cli, backed_up, tmp_path):
        """A read-only file system: exit 62, one line naming the path, not 99."""
        _root_only()
        with mounted_tmpfs(tmp_path / "ro", "4m") as ro:
            os.mkdir(os.path.join(ro, "out"))
            remount_read_only(ro)
            res = cli("restore", "data", "--target", os.path.join(ro, "out"), expect=62)
            _one_line(res, os.path.join(ro, "out"), "Read-only file system")

    def test_a_target_under_a_regular_file(self, cli, backed_up, tmp_path):
        """A target whose parent is a regular file: exit 62, one line naming it."""
        (tmp_path / "afile").write_bytes(b"not a folder")
        res = cli("restore", "data", "--target", str(tmp_path / "afile" / "out"), expect=62)
        _one_line(res, str(tmp_path / "afile" / "out"), "a part of it is a file, not a folder")

    def test_an_immutable_file_is_named_and_the_rest_restored(self, cli, backed_up, tmp_path):
        """An immutable file in the target (EPERM) is named, exit 62; everything else is
        restored and the immutable file is left as it was."""
        out = tmp_path / "out" / rel(backed_up)
        write_tree(out, {"c/f2.txt": b"locked\n"})
        locked = out / "c" / "f2.txt"
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            pytest.skip("chattr +i is not supported here")
        try:
            res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=62)
            _one_line(res, str(locked), "Operation not permitted")
            assert locked.read_bytes() == b"locked\n"
            got = read_tree(out)
            assert {k: v for k, v in got.items() if k != "c/f2.txt"} == \
                {k: v for k, v in read_tree(backed_up).items() if k != "c/f2.txt"}
        finally:
            subprocess.run(["chattr", "-i", str(locked)], check=False)
