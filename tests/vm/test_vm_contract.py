"""The vm workload against the workload contract of strongroom.testing.

The source is an offline VM with one raw disk ``vda``: a GPT table and an ext4
partition built with ``mke2fs -d`` from the test tree.  A whole restore must give an
image whose bytes equal the source's; an item-level restore extracts one file from
inside the disk, equal in bytes, mode and mtime.
"""

from __future__ import annotations

import os
import random
import stat

import pytest

from strongroom.testing import WorkloadCase, WorkloadContract
from vmkit import MIB, ext4_at, partition, sha256_file, write_at

ONE_FILE = "home/alice/notes.txt"  # mode 0o600 and a fixed mtime in the test tree


def _written(target: str) -> set[str]:
    """Every path below ``target`` that is not a folder, relative to it."""
    return {os.path.relpath(os.path.join(folder, name), target)
            for folder, _, files in os.walk(target) for name in files}


class TestVmContract(WorkloadContract):
    workload = "vm"

    @pytest.fixture
    def workload_case(self, tmp_path, tree) -> WorkloadCase:
        root, files = tree
        image = tmp_path / "disk.img"
        parts = partition(image, 96, "label: gpt\nstart=2048, size=64MiB, type=L, name=root\n")
        ext4_at(image, root, parts[0]["start"], 64)
        item_path = f"vda:/p1/{ONE_FILE}"

        def check_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, scratch)
            assert sorted(os.listdir(os.path.join(scratch, "disks"))) == ["vda.img"]
            restored = os.path.join(scratch, "disks", "vda.img")
            assert os.path.getsize(restored) == os.path.getsize(image)
            assert sha256_file(restored) == sha256_file(image)

        def check_item_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, scratch, options={"files": [item_path]})
            assert _written(scratch) == {f"vda/p1/{ONE_FILE}"}
            restored, source = os.path.join(scratch, "vda", "p1", ONE_FILE), root / ONE_FILE
            with open(restored, "rb") as fh:
                assert fh.read() == files[ONE_FILE]
            got, want = os.stat(restored), os.stat(source)
            assert stat.S_IMODE(got.st_mode) == stat.S_IMODE(want.st_mode) == 0o600
            assert int(got.st_mtime) == int(want.st_mtime)

        def change_source() -> None:
            write_at(image, 80 * MIB + 4096, random.Random(3).randbytes(2 * MIB))  # after the partition

        return WorkloadCase(
            source={"disks": [f"vda={image}"]},
            check_restore=check_restore,
            item_path=item_path,
            check_item_restore=check_item_restore,
            bad_sources=(
                ({"disks": [str(tmp_path / "nope.img")]}, f"{tmp_path / 'nope.img'} does not exist"),
                ({}, "give either --disk PATH"),
            ),
            consistency="crash",
            change_source=change_source,
        )
