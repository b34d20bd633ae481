"""Live QEMU VMs through QMP: snapshot points, incremental backups from dirty bitmaps,
recovery from failed backups, and guest freezing that never leaves a guest frozen."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from strongroom.errors import StorageError
from vaultkit import fail_pack_uploads
from vmkit import CHUNK, MIB, kill, run, sparse_image, to_qcow2

from strongroom_vm.live import LiveBackup

SIZE = 64 * MIB


@pytest.fixture
def disks(tmp_path):
    """A qcow2 disk (persistent bitmaps) and a raw disk (bitmaps live in QEMU only), both
    with data; ``expected`` keeps a raw copy of each, patched as the test writes."""
    expected = {}
    raw0 = sparse_image(tmp_path / "vda-content.img", SIZE, (4 * MIB, os.urandom(6 * MIB)))
    vda = to_qcow2(raw0, tmp_path / "vda.qcow2")
    expected["vda"] = bytearray(raw0.read_bytes())
    vdb = sparse_image(tmp_path / "vdb.img", SIZE, (40 * MIB, os.urandom(3 * MIB)))
    expected["vdb"] = bytearray(vdb.read_bytes())
    return [("vda", vda, "qcow2"), ("vdb", vdb, "raw")], expected


def _write(vm, expected, disk: str, offset: int, length: int, pattern: int) -> None:
    vm.write(disk, offset, length, pattern)
    expected[disk][offset : offset + length] = bytes([pattern]) * length


def _backup_in_a_child(cli, vault_url, vm, agent) -> subprocess.Popen:
    """A vault with item 'live' on ``vm`` (guest agent ``agent``), and ``strongroom backup live``
    started in a child process (for a test to kill)."""
    cli("vault", "create", vault_url)
    cli("protect", "vm", "live", "--qmp", vm.qmp, "--guest-agent", agent.path)
    env = {**os.environ, "STRONGROOM_VAULT": vault_url}
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.Popen([exe, "backup", "live"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _restored(vault, item, point, target) -> dict[str, bytes]:
    vault.restore(item, point.point_id, str(target))
    return {name: (target / "disks" / f"{name}.img").read_bytes() for name in ("vda", "vdb")}


class TestIncremental:
    def test_second_backup_reads_only_changed_chunks(self, vault, make_vm, disks, tmp_path):
        """Writes at known offsets between two backups: the second reads and stores only the
        chunks they touched, and both points restore to the disks as they were."""
        specs, expected = disks
        vm = make_vm(specs)
        vault.protect("vm", "live", {"qmp": vm.qmp})
        first = vault.backup("live")
        # "read" is what came from the disks: their 9 MiB of data, not the holes of their 2 * SIZE
        assert first.stats["bytes_read"] - first.stats["bytes_read"] % MIB == 9 * MIB
        at_first = {k: bytes(v) for k, v in expected.items()}
        _write(vm, expected, "vda", 20 * MIB + 4096, 64 * 1024, 0xAB)  # chunk 5
        _write(vm, expected, "vda", 31 * MIB, 2 * MIB, 0x5C)  # chunks 7 and 8
        _write(vm, expected, "vdb", 50 * MIB, MIB, 0x77)  # chunk 12
        second = vault.backup("live")
        changed_bytes = 4 * CHUNK
        # the changed chunks' data: 2 qcow2 clusters, 2 MiB and 1 MiB (the rest of those chunks are holes)
        assert 3 * MIB + 64 * 1024 <= second.stats["bytes_read"] < 3 * MIB + 512 * 1024
        assert second.stats["chunks_reused"] == 2 * (SIZE // CHUNK) - 4
        assert second.stats["new_bytes"] < changed_bytes + 64 * 1024
        print(f"incremental: read {second.stats['bytes_read']} bytes, reused {second.stats['chunks_reused']} "
              f"chunks, {second.stats['new_blobs']} new blobs, {second.stats['stored_bytes']} bytes stored")
        assert _restored(vault, "live", first, tmp_path / "p1") == at_first
        assert _restored(vault, "live", second, tmp_path / "p2") == {k: bytes(v) for k, v in expected.items()}

    def test_persistent_bitmap_survives_restart_raw_disk_falls_back(self, vault, make_vm, disks, tmp_path):
        """After QEMU restarts, the qcow2 disk stays incremental; the raw disk's bitmap is gone,
        so it is read whole and the job says why."""
        specs, expected = disks
        vm = make_vm(specs)
        vault.protect("vm", "live", {"qmp": vm.qmp})
        vault.backup("live")
        _write(vm, expected, "vda", 8 * MIB, 4096, 0x11)
        vm.stop()
        vm.start()
        _write(vm, expected, "vda", 60 * MIB, 4096, 0x22)
        point = vault.backup("live")
        assert any("vdb" in w and "bitmap of the last point is missing" in w for w in point.warnings)
        assert not any("vda" in w for w in point.warnings)
        # vda: chunk 2 (2 MiB of data, the rest holes) and one 64 KiB cluster; vdb whole: its 3 MiB of data
        assert 5 * MIB + 64 * 1024 <= point.stats["bytes_read"] < 5 * MIB + 512 * 1024
        assert _restored(vault, "live", point, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}

    def test_failed_backup_loses_no_change(self, vault, make_vm, disks, tmp_path, monkeypatch):
        """A backup that fails after its snapshot point leaves bitmaps whose union still covers
        every write since the last good point, and QEMU is left clean."""
        specs, expected = disks
        vm = make_vm(specs)
        vault.protect("vm", "live", {"qmp": vm.qmp})
        vault.backup("live")
        _write(vm, expected, "vda", 12 * MIB, 4096, 0x31)  # before the failed attempt
        fail_pack_uploads(monkeypatch, vault)
        with pytest.raises(StorageError):
            vault.backup("live")
        monkeypatch.undo()
        assert sorted(vm.nodes()) == ["file0", "file1", "node0", "node1"]
        _write(vm, expected, "vdb", 20 * MIB, 4096, 0x32)  # after it
        point = vault.backup("live")
        assert point.warnings == ()
        # two changed chunks, holes but for one qcow2 cluster and one file-system block
        assert 64 * 1024 + 4096 <= point.stats["bytes_read"] < 512 * 1024
        assert _restored(vault, "live", point, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}
        bitmaps = vm.bitmaps("node0")  # the parent's, the failed attempt's, the new point's
        assert [b["recording"] for b in sorted(bitmaps, key=lambda b: b["name"])] == [False, False, True]
        vault.backup("live")  # the checkpoints older than its parent go
        assert len(vm.bitmaps("node0")) == 2

    def test_leftovers_of_a_killed_backup_are_cleaned_up(self, vault, make_vm, disks, tmp_path):
        """A backup that died after its snapshot point (fleecing nodes, jobs, exports, NBD
        server left in QEMU) is cleaned up by the next backup, which still sees every change."""
        specs, expected = disks
        vm = make_vm(specs)
        item = vault.protect("vm", "live", {"qmp": vm.qmp})
        vault.backup("live")
        from strongroom_vm.layout import read_manifest

        parent = read_manifest(vault.point_view("live"))
        killed = LiveBackup(item.source, item.item_id, parent, [])
        entries = killed.entries()
        next(entries)  # the snapshot point is taken: then the process "dies"
        killed.qmp.close()
        killed.readers.finish()  # ended without its teardown, as a killed process leaves it
        assert len(vm.nodes()) > 4
        _write(vm, expected, "vda", 44 * MIB, 4096, 0x41)
        point = vault.backup("live")
        assert sorted(vm.nodes()) == sorted(["node0", "file0", "node1", "file1"])
        assert 64 * 1024 <= point.stats["bytes_read"] < 512 * 1024  # one changed chunk: one cluster of data
        assert _restored(vault, "live", point, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}

    def test_qcow2_config_and_command_line_are_kept(self, vault, make_vm, disks, tmp_path):
        """The config file and QEMU's command line are stored with the point; qcow2 restore works."""
        specs, expected = disks
        vm = make_vm(specs)
        config = tmp_path / "vm.sh"
        config.write_text("qemu-system-x86_64 ...\n")
        vault.protect("vm", "live", {"qmp": vm.qmp, "config": str(config)})
        vault.backup("live")
        vault.restore("live", None, str(tmp_path / "out"), options={"disk_format": "qcow2", "disks": ["vda"]})
        assert (tmp_path / "out" / "config" / "vm.sh").read_text() == config.read_text()
        assert "qemu-system-x86_64" in (tmp_path / "out" / "config" / "qemu.cmdline").read_text()
        raw = tmp_path / "vda.raw"
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", tmp_path / "out" / "disks" / "vda.qcow2", raw)
        assert raw.read_bytes() == bytes(expected["vda"])


class TestGuestFreeze:
    def test_freeze_around_the_snapshot_point(self, vault, make_vm, disks, agent):
        """With a guest agent, the guest is frozen then thawed, and the point is file-system-consistent."""
        specs, _ = disks
        vm = make_vm(specs)
        vault.protect("vm", "live", {"qmp": vm.qmp, "guest_agent": agent.path})
        point = vault.backup("live")
        assert point.consistency == "file-system"
        assert agent.log.count("guest-fsfreeze-freeze") == 1 and agent.log.count("guest-fsfreeze-thaw") == 1
        assert agent.state == "thawed"

    def test_unreachable_agent_gives_crash_consistent_point(self, vault, make_vm, disks, workdir):
        """An agent that cannot be reached does not stop the backup: the point is crash-consistent, with a warning."""
        specs, _ = disks
        vm = make_vm(specs)
        vault.protect("vm", "live", {"qmp": vm.qmp, "guest_agent": os.path.join(workdir, "none.sock")})
        point = vault.backup("live")
        assert point.consistency == "crash"
        assert any("Guest agent" in w and "crash-consistent" in w for w in point.warnings)

    def test_backup_killed_while_frozen_thaws_the_guest(self, vault_url, make_vm, disks, agent, cli):
        """SIGKILL of the backup while the guest is frozen: the guard thaws it within seconds,
        and the next backup cleans up and succeeds."""
        specs, _ = disks
        vm = make_vm(specs)
        proc = _backup_in_a_child(cli, vault_url, vm, agent)
        agent.on_freeze = lambda a: kill(proc.pid)
        proc.wait(60)
        assert proc.returncode == -9
        assert agent.wait_for("thawed"), "the guest was left frozen"
        agent.on_freeze = None
        out = cli("backup", "live", "--json")
        assert agent.state == "thawed"
        assert sorted(vm.nodes()) == sorted(["node0", "file0", "node1", "file1"]), out.stdout

    def test_guard_killed_too_next_backup_thaws(self, vault_url, make_vm, disks, agent, cli):
        """If the backup and its guard are both killed, the next backup finds the guest frozen,
        thaws it first and says so."""
        specs, _ = disks
        vm = make_vm(specs)
        proc = _backup_in_a_child(cli, vault_url, vm, agent)

        def kill_both(a):
            kill(a.clients[-1])  # the guard holds the agent connection
            kill(proc.pid)

        agent.on_freeze = kill_both
        proc.wait(60)
        time.sleep(0.5)
        assert agent.state == "frozen"
        agent.on_freeze = None
        out = cli("backup", "live", expect=1)  # completed with a warning
        assert "left frozen by an interrupted backup" in out.stderr
        assert agent.state == "thawed"
