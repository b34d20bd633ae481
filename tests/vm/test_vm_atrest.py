"""Disks of an offline VM are read consistently, or the point says it is not.

- A raw image that a process holds with QEMU's write lock (``qemu-io`` here, which takes
  the same lock as a running VM) is refused with one line and exit 97; an item protected
  with ``--force`` is backed up anyway, its point ``inconsistent``, with a warning and exit 1.
- While strongroom reads a raw image, no QEMU can take its write lock.
- A writer rewriting counters at two places of a raw image during the backup gives an
  ``inconsistent`` point, a warning naming the disk and what changed, and exit 1.  The
  read waits, half-way, until the writer has written twice more: the overlap is certain.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from functools import partial

import pytest

import strongroom_vm.images as images
from strongroom_vm.atrest import Mark, changes
from strongroom_vm.errors import DiskInUse
from strongroom_vm.images import open_image
from strongroom_vm.locks import writer_present
from vmkit import MIB, write_at
from vaultkit import wait_until as poll_until

FIRST, SECOND = 8 * MIB + 17, 56 * MIB + 5  # where the writer keeps its counters

WRITER = f"""
import os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
n = 0
while True:
    n += 1
    os.pwrite(fd, struct.pack("<Q", n), {FIRST})
    os.pwrite(fd, struct.pack("<Q", n), {SECOND})
    time.sleep(0.002)
"""


wait_until = partial(poll_until, limit=30.0, step=0.01)


def holds_write_lock(image) -> bool:
    with open(image, "rb") as fh:
        return writer_present(fh.fileno())


@pytest.fixture
def raw_image(tmp_path):
    image = tmp_path / "web.img"
    image.write_bytes(os.urandom(64 * MIB))
    return image


@pytest.fixture
def qemu_io_holding(raw_image):
    """A ``qemu-io`` with the image open read-write (QEMU's write lock held) until the test ends."""
    proc = subprocess.Popen(["qemu-io", "-f", "raw", str(raw_image)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: holds_write_lock(raw_image), "qemu-io holds the image's write lock")
    yield proc
    proc.kill()
    proc.wait()


def counter(image, offset: int) -> int:
    with open(image, "rb") as fh:
        fh.seek(offset)
        return struct.unpack("<Q", fh.read(8))[0]


class TestImagesInUse:
    def test_a_raw_image_held_by_qemu_is_refused(self, cli, vault_url, raw_image, qemu_io_holding):
        """Backing up a raw image that QEMU holds for writing fails with one line and exit 97; nothing is stored."""
        cli("vault", "create", vault_url)
        cli("protect", "vm", "web", "--disk", raw_image)
        out = cli("backup", "web", expect=97)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert str(raw_image) in out.stderr and "in use by a running VM" in out.stderr and "--force" in out.stderr
        assert json.loads(cli("points", "list", "web", "--json").stdout) == []

    def test_force_backs_it_up_as_inconsistent(self, cli, vault_url, raw_image, qemu_io_holding):
        """With --force the image is read, the point is inconsistent, the backup warns and exits 1."""
        cli("vault", "create", vault_url)
        cli("protect", "vm", "web", "--disk", raw_image, "--force")
        out = cli("backup", "web", expect=1)
        assert "disk web" in out.stderr and "in use by a running VM" in out.stderr
        [point] = json.loads(cli("points", "list", "web", "--json").stdout)
        assert point["consistency"] == "inconsistent" and len(point["warnings"]) == 1

    def test_a_qcow2_image_in_use_is_refused_or_forced(self, vault, tmp_path):
        """A qcow2 image that qemu-io holds: refused with DiskInUse; with --force read (through
        qemu-nbd --force-share) into an inconsistent point whose disk equals the image."""
        image = tmp_path / "data.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", str(image)], check=True,
                       capture_output=True)
        vault.protect("vm", "plain", {"disks": [str(image)]})
        vault.protect("vm", "forced", {"disks": [str(image)], "force": True})
        holder = subprocess.Popen(["qemu-io", "-f", "qcow2", str(image)], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # asked without taking a lock: a probe by qemu-img, which takes a shared one, made
            # qemu-io fail to open the image when the two met
            wait_until(lambda: holds_write_lock(image), "qemu-io holds the image's write lock")
            with pytest.raises(DiskInUse) as info:
                vault.backup("plain")
            assert info.value.exit_code == 97
            point = vault.backup("forced")
        finally:
            holder.kill()
            holder.wait()
        assert point.consistency == "inconsistent"
        [warning] = point.warnings
        assert "disk data" in warning and "in use by a running VM" in warning
        vault.restore("forced", None, str(tmp_path / "out"))
        data = (tmp_path / "out" / "disks" / "data.img").read_bytes()
        assert data[MIB:3 * MIB] == b"\x5a" * (2 * MIB) and data[:MIB] == bytes(MIB)

    def test_force_is_for_offline_disks(self, cli, vault_url, raw_image, tmp_path):
        """--force with --qmp is refused at protect time; with --disk it is kept and shown."""
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "live", "--qmp", tmp_path / "qmp.sock", "--force", expect=47)
        assert "--force is for the disks of an offline VM" in out.stderr
        out = cli("protect", "vm", "web", "--disk", raw_image, "--force")
        assert "--force" in out.stdout

    def test_a_free_raw_image_is_crash_consistent(self, vault, raw_image):
        """Without a writer the point is crash-consistent, without warnings, and the lock is released after."""
        vault.protect("vm", "web", {"disks": [str(raw_image)]})
        point = vault.backup("web")
        assert point.consistency == "crash" and point.warnings == ()
        assert subprocess.run(["qemu-io", "-f", "raw", "-c", "write 0 4k", str(raw_image)],
                              capture_output=True).returncode == 0

    def test_no_vm_can_take_the_image_while_it_is_read(self, raw_image):
        """While strongroom reads a raw image, QEMU cannot get its write lock; once closed it can."""
        write = ["qemu-io", "-f", "raw", "-c", "write 0 4k", str(raw_image)]
        with open_image(str(raw_image), "raw", 64 * MIB) as reader:
            reader.read(4096)
            refused = subprocess.run(write, capture_output=True, text=True)
            assert refused.returncode != 0 and "lock" in refused.stderr
        assert subprocess.run(write, capture_output=True).returncode == 0

    def test_a_raw_disk_of_a_running_vm_is_refused(self, vault, make_vm, raw_image):
        """A raw image attached to a running QEMU VM is refused; once the VM stops it is backed up."""
        vault.protect("vm", "web", {"disks": [str(raw_image)]})
        vm = make_vm([("vda", raw_image, "raw")])
        with pytest.raises(DiskInUse, match="in use by a running VM"):
            vault.backup("web")
        vm.stop()
        assert vault.backup("web").consistency == "crash"

    def test_a_block_device_held_by_qemu_is_refused(self, vault, raw_image):
        """A block device (a loop device over the image) that qemu-io holds is refused, and read once it is free."""
        made = subprocess.run(["losetup", "-f", "--show", str(raw_image)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"no loop device here ({made.stderr.strip()})")
        device = made.stdout.strip()
        try:
            vault.protect("vm", "blk", {"disks": [f"blk={device}"]})
            assert vault.item("blk").source["disks"][0]["kind"] == "block"
            holder = subprocess.Popen(["qemu-io", "-f", "raw", device], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(lambda: holds_write_lock(device), "qemu-io holds the device's write lock")
                with pytest.raises(DiskInUse):
                    vault.backup("blk")
            finally:
                holder.kill()
                holder.wait()
            point = vault.backup("blk")
            assert point.consistency == "crash" and point.warnings == ()
        finally:
            subprocess.run(["losetup", "-d", device], capture_output=True)

    def test_opening_an_image_in_use_raises(self, raw_image, qemu_io_holding):
        """The reader refuses an image that a writer holds, unless forced."""
        with pytest.raises(DiskInUse) as info:
            with open_image(str(raw_image), "raw", 64 * MIB):
                pass
        assert info.value.exit_code == 97
        with open_image(str(raw_image), "raw", 64 * MIB, force=True) as reader:
            assert len(reader.read(MIB)) == MIB


class TestTornReads:
    @pytest.fixture
    def writer(self, raw_image):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(raw_image)])
        wait_until(lambda: counter(raw_image, SECOND) > 0, "the writer runs")
        yield proc
        proc.kill()
        proc.wait()

    @pytest.fixture
    def slow_read(self, monkeypatch, raw_image):
        """Half-way through the read, wait until the writer has written twice more."""
        original = images.RawReader.readinto
        state = {"waited": False}

        def readinto(self, buffer):
            if not state["waited"] and self._pos >= 32 * MIB:
                state["waited"] = True
                seen = counter(raw_image, FIRST)
                wait_until(lambda: counter(raw_image, SECOND) >= seen + 2, "the writer wrote during the read")
            return original(self, buffer)

        monkeypatch.setattr(images.RawReader, "readinto", readinto)
        return state

    def test_a_disk_written_during_the_read_gives_an_inconsistent_point(self, cli, vault_url, raw_image, writer,
                                                                          slow_read):
        """A writer changing the image during the backup: point inconsistent, one warning naming the disk, exit 1."""
        cli("vault", "create", vault_url)
        cli("protect", "vm", "web", "--disk", raw_image)
        out = cli("backup", "web", expect=1)
        assert slow_read["waited"]
        [line] = [l for l in out.stderr.splitlines() if "changed while it was read" in l]
        assert f"disk web ({raw_image})" in line and "modification time" in line
        assert "snapshot" in line and "--qmp" in line
        [point] = json.loads(cli("points", "list", "web", "--json").stdout)
        assert point["consistency"] == "inconsistent"
        cli("restore", "web", "--target", vault_url + "-out")
        manifest = json.loads(open(os.path.join(vault_url + "-out", "vm.json")).read())
        assert manifest["consistency"] == "inconsistent"
        assert "modification time" in manifest["disks"][0]["changed_during_read"]

    def test_a_disk_left_alone_is_not_flagged(self, vault, raw_image, slow_read):
        """The same slowed read with no writer gives a crash-consistent point without warnings."""
        slow_read["waited"] = True  # nothing writes: no waiting for a writer
        vault.protect("vm", "web", {"disks": [str(raw_image)]})
        point = vault.backup("web")
        assert point.consistency == "crash" and point.warnings == ()


class TestChanges:
    def test_what_changed_is_named(self):
        """Size, times and the first chunk's content are each named."""
        before = Mark(100, 1, 2, b"a")
        assert changes(before, before) == []
        assert changes(before, Mark(200, 3, 4, b"b")) == [
            "size 100 -> 200 bytes", "modification time", "change time", "content of the first 4 MiB"]
        assert changes(before, Mark(100, 1, 2, b"")) == []  # a digest not taken is no change

    def test_a_first_chunk_rewritten_with_its_times_put_back_is_seen(self, vault, raw_image, monkeypatch):
        """A write to the first chunk whose modification time is reset is still seen (by the digest)."""
        original = images.RawReader.readinto
        st = os.stat(raw_image)
        done = {"written": False}

        def readinto(self, buffer):
            if not done["written"] and self._pos >= 32 * MIB:
                done["written"] = True
                write_at(raw_image, 4096, os.urandom(512))
                os.utime(raw_image, ns=(st.st_atime_ns, st.st_mtime_ns))
            return original(self, buffer)

        monkeypatch.setattr(images.RawReader, "readinto", readinto)
        vault.protect("vm", "web", {"disks": [str(raw_image)]})
        point = vault.backup("web")
        assert point.consistency == "inconsistent"
        [warning] = point.warnings
        assert "content of the first 4 MiB" in warning and "modification time" not in warning
