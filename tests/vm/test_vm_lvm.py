"""LVM inside a disk point: a whole disk that is a physical volume (no partition table),
and a LUKS2 partition holding one (the layout of an encrypted Debian or Ubuntu install).

The volumes are made by LVM's own tools on a loop device with activation off
(``global/activation=0``: metadata only, no device-mapper), then each logical volume's
ext4 is written at the offset LVM gave it.  Without loop devices the tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from lukskit import luks_volume
from strongroom.testing import unavailable
from vmkit import MIB, partition, run, write_at

LVM_CONFIG = ("global{activation=0} devices{obtain_device_list_from_udev=0} "
              "backup{backup=0 archive=0}")


def lvm(*argv) -> str:
    return run(argv[0], "--config", LVM_CONFIG, *argv[1:], env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
               ).stdout.decode()


def physical_volume(path, size_mib: int, volumes: dict[str, int]) -> tuple[str, dict[str, int]]:
    """An LVM physical volume in the file ``path`` with linear logical volumes {name: MiB};
    returns the volume group's name and each volume's byte offset in the file."""
    if shutil.which("pvcreate") is None:
        unavailable("lvm2 is not installed (pvcreate...; scripts/setup.sh installs it)")
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MIB)
    attach = subprocess.run(["losetup", "-f", "--show", str(path)], capture_output=True, text=True)
    if attach.returncode != 0:
        pytest.skip(f"no loop device to run LVM's tools on ({attach.stderr.strip()})")
    device, vg = attach.stdout.strip(), f"srt{uuid.uuid4().hex[:8]}"
    try:
        lvm("pvcreate", "-q", device)
        lvm("vgcreate", "-q", "-s", "1M", vg, device)
        for name, mib in volumes.items():
            lvm("lvcreate", "-q", "-an", "-Zn", "-L", f"{mib}M", "-n", name, vg)
        pe_start = int(lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", device))
        extent = int(lvm("vgs", "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_extent_size", vg))
        offsets = {}
        for line in lvm("lvs", "--noheadings", "-o", "lv_name,seg_pe_ranges", vg).splitlines():
            name, ranges = line.split()
            offsets[name] = pe_start + int(ranges.rpartition(":")[2].split("-")[0]) * extent
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)
    return vg, offsets


def ext4_into(path, offset: int, tree_root, size_mib: int) -> None:
    run("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={offset}", "-d", tree_root, path, f"{size_mib}M")


def check(out, files, prefix: str) -> None:
    for rel, data in files.items():
        if rel.startswith(prefix):
            assert (out / rel).read_bytes() == data, rel
    notes = out / "home/alice/notes.txt"
    if notes.exists():
        assert os.lstat(notes).st_mtime_ns == 1_600_000_000 * 10**9


class TestWholeDiskLvm:
    def test_logical_volumes_of_a_whole_disk_physical_volume(self, vault, tree, tmp_path):
        """A disk that is an LVM physical volume lists its logical volumes VG-LV with their file
        systems; files come out of one whole."""
        image = tmp_path / "pv.img"
        vg, offsets = physical_volume(image, 64, {"root": 24, "data": 16})
        ext4_into(image, offsets["root"], tree[0], 24)
        ext4_into(image, offsets["data"], tree[0], 16)
        vault.protect("vm", "db", {"disks": [f"vdb={image}"]})
        vault.backup("db")
        rows = {r.name: r for r in vault.browse("db", None, "vdb:/")}
        assert set(rows) == {f"{vg}-root", f"{vg}-data"}
        assert rows[f"{vg}-root"].type == "volume" and rows[f"{vg}-root"].detail.startswith("ext4")
        assert rows[f"{vg}-data"].size == 16 * MIB
        vault.restore("db", None, str(tmp_path / "out"), options={"files": [f"vdb:/{vg}-data/home"]})
        check(tmp_path / "out" / "vdb" / f"{vg}-data", tree[1], "home/")


class TestLvmInsideLuks:
    def test_encrypted_install_layout(self, vault, tree, tmp_path, monkeypatch):
        """GPT: p1 ext4 /boot, p2 LUKS2 holding an LVM physical volume with a root volume. With
        the passphrase, p2 reads 'unlocked: lvm2', its volume p2/VG-root is listed, and files
        restore from it."""
        pv = tmp_path / "pv.img"
        vg, offsets = physical_volume(pv, 40, {"root": 24})
        ext4_into(pv, offsets["root"], tree[0], 24)
        volume = tmp_path / "p2.luks"
        luks_volume(volume, pv.read_bytes(), "luks2")
        image = tmp_path / "debian.img"
        parts = partition(image, 96, "label: gpt\nstart=2048, size=16MiB, type=L\nsize=60MiB, type=L\n")
        run("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={parts[0]['start'] * 512}", "-d", tree[0],
            image, "16M")
        assert volume.stat().st_size <= 60 * MIB
        write_at(image, parts[1]["start"] * 512, volume.read_bytes())
        vault.protect("vm", "deb", {"disks": [f"vda={image}"]})
        vault.backup("deb")
        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw")
        rows = {r.name: r for r in vault.browse("deb", None, "vda:/")}
        assert rows["p2"].detail.startswith("encrypted (LUKS2, unlocked: lvm2)")
        assert rows[f"p2/{vg}-root"].detail.startswith("ext4")
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE")
        monkeypatch.setenv("DEB_PW", "pw")
        vault.restore("deb", None, str(tmp_path / "out"),
                      options={"files": [f"vda:/p2/{vg}-root/home"], "luks_passphrase_env": "DEB_PW"})
        check(tmp_path / "out" / "vda" / "p2" / f"{vg}-root", tree[1], "home/")

    def test_whole_disk_luks_holding_a_physical_volume(self, vault, tree, tmp_path, monkeypatch):
        """A whole disk that is a LUKS2 volume around an LVM physical volume lists VG-LV once unlocked."""
        pv = tmp_path / "pv.img"
        vg, offsets = physical_volume(pv, 32, {"srv": 20})
        ext4_into(pv, offsets["srv"], tree[0], 20)
        image = tmp_path / "vdc.img"
        luks_volume(image, pv.read_bytes(), "luks2")
        vault.protect("vm", "srv", {"disks": [f"vdc={image}"]})
        vault.backup("srv")
        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw")
        rows = {r.name: r for r in vault.browse("srv", None, "vdc:/")}
        assert rows[f"{vg}-srv"].detail.startswith("ext4")
        vault.restore("srv", None, str(tmp_path / "out"), options={"files": [f"vdc:/{vg}-srv/etc"]})
        check(tmp_path / "out" / "vdc" / f"{vg}-srv", tree[1], "etc/")
