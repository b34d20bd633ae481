"""Entries a workload reads itself (vm item-level, sqlite) follow the restore's rules for
the target: nothing in the way destroyed, a partly written file removed, one error."""

from __future__ import annotations

import os

import pytest

from damagekit import mounted_tmpfs, read_tree
from strongroom.catalog.entry import DIR, FILE, Entry
from strongroom.engine.extract import write_entries
from strongroom.errors import PathInTheWay, TargetFull

NS = 1_600_000_000_000_000_000


def _file(name: str, data: bytes) -> tuple[str, Entry, list[bytes]]:
    entry = Entry(name=name.rpartition("/")[2], type=FILE, mode=0o644, size=len(data), mtime_ns=NS)
    return name, entry, [data[i:i + 65536] for i in range(0, len(data), 65536)]


def _dir(name: str) -> tuple[str, Entry, None]:
    return name, Entry(name=name.rpartition("/")[2], type=DIR, mode=0o755, mtime_ns=NS), None


class TestWriteEntries:
    def test_a_full_folder_in_the_way_is_kept_and_the_rest_written(self, tmp_path):
        """A folder with a file in it where an entry is a file: kept, named by
        PathInTheWay after the other entries are written."""
        (tmp_path / "d" / "x").mkdir(parents=True)
        (tmp_path / "d" / "x" / "mine").write_bytes(b"keep me")
        entries = [_dir("d"), _file("d/x", b"theirs"), _file("d/y", b"written")]
        with pytest.raises(PathInTheWay, match="d/x' in the restore target"):
            write_entries(str(tmp_path), entries)
        assert read_tree(tmp_path) == {"d/x/mine": b"keep me", "d/y": b"written"}

    def test_never_keeps_what_exists(self, tmp_path):
        """overwrite='never' keeps an existing file and counts it."""
        (tmp_path / "f").write_bytes(b"old")
        result = write_entries(str(tmp_path), [_file("f", b"new"), _file("g", b"g")], overwrite="never")
        assert read_tree(tmp_path) == {"f": b"old", "g": b"g"} and result.stats.skipped == 1

    def test_a_full_disk_removes_the_partial_file(self, tmp_path):
        """On a full tmpfs, the file being written is removed and named (TargetFull)."""
        if os.geteuid() != 0:
            pytest.skip("mounting file systems needs root")
        with mounted_tmpfs(tmp_path / "small", "256k") as small:
            entries = [_file("small.txt", b"fits"), _file("big.bin", os.urandom(1024 * 1024))]
            with pytest.raises(TargetFull, match="big.bin.*the file was removed"):
                write_entries(small, entries)
            assert read_tree(small) == {"small.txt": b"fits"}
