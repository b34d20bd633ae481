"""The files workload against the workload contract of strongroom.testing.

The source is the sample tree (small sizes, everything else: hardlinks, a sparse file,
xattrs, a fifo, odd names, modes, owners, fixed mtimes); restores are compared with
``assert_trees_equal``, metadata included.
"""

from __future__ import annotations

import os

import pytest

from strongroom.testing import WorkloadCase, WorkloadContract, assert_trees_equal, build_sample_tree, snapshot_tree

ONE_FILE = "nested/l1/l2/mid.txt"  # a file with user xattrs, a fixed mtime and a unique name


def _in_point(path: str) -> str:
    """Where an absolute source path lives inside a point (and inside a restore target)."""
    return os.path.abspath(path).lstrip("/")


def _written(target: str) -> set[str]:
    """Every path below ``target`` that is not a folder, relative to it."""
    found = set()
    for folder, dirs, files in os.walk(target):
        names = files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        found.update(os.path.relpath(os.path.join(folder, name), target) for name in names)
    return found


class TestFilesContract(WorkloadContract):
    workload = "files"

    @pytest.fixture
    def workload_case(self, tmp_path) -> WorkloadCase:
        source = build_sample_tree(str(tmp_path / "source"), big_file_mib=2, small_files=60)
        item_path = _in_point(os.path.join(source, ONE_FILE))

        def check_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, scratch)
            assert_trees_equal(source, os.path.join(scratch, _in_point(source)))

        def check_item_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, scratch, [item_path])
            assert _written(scratch) == {item_path}
            restored = os.path.join(scratch, item_path)
            want = snapshot_tree(os.path.dirname(os.path.join(source, ONE_FILE)))["mid.txt"]
            got = snapshot_tree(os.path.dirname(restored))["mid.txt"]
            assert_trees_equal({ONE_FILE: want}, {ONE_FILE: got})

        def change_source() -> None:
            with open(os.path.join(source, "big.bin"), "ab") as f:
                f.write(os.urandom(100_000))
            with open(os.path.join(source, "nested", "added.txt"), "wb") as f:
                f.write(b"written after the first backup\n")
            os.unlink(os.path.join(source, "empty_file"))

        return WorkloadCase(
            source={"paths": [source]},
            check_restore=check_restore,
            item_path=item_path,
            check_item_restore=check_item_restore,
            bad_sources=(
                ({"paths": [str(tmp_path / "missing")]}, f"path {tmp_path / 'missing'} does not exist"),
                ({"paths": []}, "at least one --path is needed"),
                ({"paths": [source], "excludes": [""]}, "empty pattern"),
            ),
            consistency="crash",
            change_source=change_source,
        )
