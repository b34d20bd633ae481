"""VMs by their libvirt domain name, on a real libvirtd with TCG domains.

Disk content changes come from ``qemu-io`` on the device's block backend, inside the
running QEMU (the domain has no guest OS): the same write path a guest's writes take, so
libvirt's dirty bitmaps see them.  Each test tracks what the disks hold in ``expected``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from libvirtkit import Domain, ensure_libvirtd, virsh
from strongroom.testing import unavailable
from vaultkit import wait_until
from vmkit import CHUNK, MIB, kill, run, sparse_image, to_qcow2

SIZE = 64 * MIB
STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


@pytest.fixture(scope="module")
def libvirtd():
    why = ensure_libvirtd()
    if why:
        unavailable(why)


@pytest.fixture
def domains(libvirtd, workdir):
    made: list[Domain] = []

    def make(suffix: str = "") -> Domain:
        domain = Domain(f"srtest-{os.getpid()}-{len(made)}{suffix}", workdir)
        made.append(domain)
        return domain

    yield make
    for domain in made:
        domain.remove()


@pytest.fixture
def images(workdir):
    """vda: a qcow2 image with 6 MiB of data (checkpoints, incremental); vdb: a raw image
    with 3 MiB (read whole every time).  ``expected``: their content, patched as tests write."""
    raw0 = sparse_image(os.path.join(workdir, "vda-content.img"), SIZE, (4 * MIB, os.urandom(6 * MIB)))
    vda = to_qcow2(raw0, os.path.join(workdir, "vda.qcow2"))
    vdb = sparse_image(os.path.join(workdir, "vdb.img"), SIZE, (40 * MIB, os.urandom(3 * MIB)))
    expected = {"vda": bytearray(open(raw0, "rb").read()), "vdb": bytearray(open(vdb, "rb").read())}
    os.unlink(raw0)
    return [("vda", vda, "qcow2"), ("vdb", vdb, "raw")], expected


@pytest.fixture
def big_domain(domains, workdir):
    """A running domain with one qcow2 disk holding 96 MiB of random data: enough that a
    backup's job runs long enough to be seen and interrupted."""
    raw = sparse_image(os.path.join(workdir, "big.raw"), SIZE * 2, (0, os.urandom(96 * MIB)))
    vda = to_qcow2(raw, os.path.join(workdir, "big.qcow2"))
    expected = {"vda": bytearray(open(raw, "rb").read())}
    os.unlink(raw)
    return domains().define([("vda", vda, "qcow2")]).start(), expected


def _backup_until_job(vault_url, domain) -> subprocess.Popen:
    """``strongroom backup lv`` in a process, returned once libvirt's backup job runs."""
    env = {**os.environ, "STRONGROOM_VAULT": vault_url}
    proc = subprocess.Popen([STRONGROOM, "backup", "lv"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: "Backup" in domain.job() or proc.poll() is not None, "the backup job", limit=60, step=0.01)
    assert proc.poll() is None, "the backup ended before its job could be seen"
    return proc


def _write(domain, expected, disk, offset, length, pattern):
    domain.write(disk, offset, length, pattern)
    expected[disk][offset : offset + length] = bytes([pattern]) * length


def _image_content(path: str, fmt: str, tmp) -> bytes:
    raw = os.path.join(tmp, "content.raw")
    run("qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", path, raw)
    with open(raw, "rb") as fh:
        data = fh.read()
    os.unlink(raw)
    return data


def _restored(vault, item, point, target) -> dict[str, bytes]:
    vault.restore(item, point.point_id, str(target))
    return {name: (target / "disks" / f"{name}.img").read_bytes() for name in ("vda", "vdb")}


class TestRunningDomain:
    def test_full_then_incremental_points(self, vault, domains, images, tmp_path):
        """A full point, then an incremental one that reads only the chunks written in
        between (from the checkpoint's dirty bitmap; the raw disk whole); each point
        restores to the disks as they were, and libvirt is left without a job."""
        specs, expected = images
        domain = domains().define(specs).start()
        vault.protect("vm", "lv", {"libvirt": domain.name})
        first = vault.backup("lv")
        # "read" is what came from the disks: their 9 MiB of data, not the holes of their 2 * SIZE
        assert 9 * MIB <= first.stats["bytes_read"] < 9 * MIB + 64 * 1024
        assert "Backup" not in domain.job()
        assert len(domain.checkpoints()) == 1
        for name, path, fmt in specs:  # what the test tracks is what the disks hold
            assert _image_content(path, fmt, tmp_path) == bytes(expected[name])
        at_first = {k: bytes(v) for k, v in expected.items()}
        _write(domain, expected, "vda", 20 * MIB + 4096, 64 * 1024, 0xAB)  # chunk 5
        _write(domain, expected, "vda", 31 * MIB, 2 * MIB, 0x5C)  # chunks 7 and 8
        _write(domain, expected, "vdb", 50 * MIB, MIB, 0x77)  # raw: read whole anyway
        second = vault.backup("lv")
        # vda: only chunks 5, 7 and 8 (its dirty 64 KiB + 2 MiB, the rest holes); vdb whole (4 MiB of data)
        assert 6 * MIB + 64 * 1024 <= second.stats["bytes_read"] < 6 * MIB + 512 * 1024, second.stats
        assert second.stats["chunks_reused"] == SIZE // CHUNK - 3  # vda but its 3 written chunks
        assert "Backup" not in domain.job()
        print(f"libvirt incremental: read {second.stats['bytes_read']} bytes, reused "
              f"{second.stats['chunks_reused']} chunks, stored {second.stats['stored_bytes']} bytes")
        checkpoints = sorted(domain.checkpoints())  # names sort by creation time
        assert len(checkpoints) == 2 and "Backup" not in domain.job()
        third = vault.backup("lv")  # the checkpoint older than its parent's goes
        now = sorted(domain.checkpoints())
        assert len(now) == 2 and now[0] == checkpoints[1]
        assert third.stats["chunks_reused"] == SIZE // CHUNK  # vda unchanged: not read at all
        assert 4 * MIB <= third.stats["bytes_read"] < 4 * MIB + 64 * 1024  # vdb, read whole: its 4 MiB of data
        assert "Backup" not in domain.job()  # vda, never opened, did not keep the job alive
        assert _restored(vault, "lv", first, tmp_path / "p1") == at_first
        assert _restored(vault, "lv", second, tmp_path / "p2") == {k: bytes(v) for k, v in expected.items()}
        (tmp_path / "p2x").mkdir()
        vault.restore("lv", second.point_id, str(tmp_path / "p2x"))
        xml = (tmp_path / "p2x" / "config" / "domain.xml").read_text()
        assert ET.fromstring(xml).findtext("name") == domain.name

    def test_killed_backup_is_cleaned_up(self, vault, vault_url, cli, big_domain, tmp_path):
        """strongroom SIGKILLed while libvirt's backup job runs: the job and its scratch
        folder stay; the next backup aborts the job, removes the folder, says so (exit 1),
        and reads from the parent's checkpoint, missing no change."""
        from strongroom import Vault

        from strongroom_vm.layout import read_manifest

        domain, expected = big_domain
        item = vault.protect("vm", "lv", {"libvirt": domain.name})
        prefix = f"strongroom-sr{item.item_id[:8]}-"
        vault.backup("lv")
        _write(domain, expected, "vda", 100 * MIB, 4096, 0x41)
        proc = _backup_until_job(vault_url, domain)
        kill(proc.pid)
        proc.wait(60)
        assert proc.returncode == -9
        assert "Backup" in domain.job()  # left running by the killed strongroom
        assert [n for n in os.listdir("/tmp") if n.startswith(prefix)]
        _write(domain, expected, "vda", 110 * MIB, 4096, 0x42)
        out = cli("backup", "lv", expect=1)
        assert "aborted the backup job an interrupted backup of this item left" in out.stderr
        assert "removed the scratch folder" in out.stderr
        assert "Backup" not in domain.job()
        assert not [n for n in os.listdir("/tmp") if n.startswith(prefix)]
        manifest = read_manifest(Vault.open(vault_url).point_view("lv"))
        assert [d["changed_chunks"] for d in manifest["disks"]] == [2]  # incremental: the two written chunks
        cli("restore", "lv", "--target", tmp_path / "out")
        assert (tmp_path / "out" / "disks" / "vda.img").read_bytes() == bytes(expected["vda"])

    def test_terminated_backup_ends_its_job(self, vault, vault_url, big_domain):
        """SIGTERM while libvirt's backup job runs: exit 143, the job aborted and the scratch
        folder removed before strongroom exits; the next backup has nothing to clean."""
        domain, _ = big_domain
        item = vault.protect("vm", "lv", {"libvirt": domain.name})
        prefix = f"strongroom-sr{item.item_id[:8]}-"
        proc = _backup_until_job(vault_url, domain)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert "Backup" not in domain.job()
        assert not [n for n in os.listdir("/tmp") if n.startswith(prefix)]
        point = vault.backup("lv")
        assert point.warnings == ()

    def test_foreign_backup_job_is_refused(self, vault, cli, domains, images, workdir):
        """A backup job strongroom did not start is left alone, and the backup refused (exit 97)."""
        specs, _ = images
        domain = domains().define(specs).start()
        vault.protect("vm", "lv", {"libvirt": domain.name})
        backup = os.path.join(workdir, "theirs.xml")
        with open(backup, "w") as fh:
            fh.write(f"<domainbackup mode='pull'><server transport='unix' socket='{workdir}/theirs.sock'/>"
                     f"<disks><disk name='vda' backup='yes' type='file'><scratch file='{workdir}/s.qcow2'/></disk>"
                     "<disk name='vdb' backup='no'/></disks></domainbackup>")
        virsh("backup-begin", domain.name, backup)
        try:
            out = cli("backup", "lv", expect=97)
            assert f"Domain {domain.name} runs a backup job strongroom did not start" in out.stderr
            assert out.stderr.count("\n") == 1
            assert "Backup" in domain.job()
        finally:
            virsh("domjobabort", domain.name, check=False)


    def test_resized_disk_is_read_whole(self, vault, domains, images, tmp_path):
        """A disk grown since the parent point (virsh blockresize) is read whole, with a warning."""
        specs, expected = images
        domain = domains().define(specs).start()
        vault.protect("vm", "lv", {"libvirt": domain.name})
        vault.backup("lv")
        virsh("blockresize", domain.name, "vda", f"{SIZE + 8 * MIB}B")
        expected["vda"] += bytes(8 * MIB)
        _write(domain, expected, "vda", SIZE + 4 * MIB, 4096, 0x66)
        point = vault.backup("lv")
        assert point.warnings == (f"disk vda changed size from {SIZE} to {SIZE + 8 * MIB} bytes; reading it whole",)
        assert _restored(vault, "lv", point, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}

    def test_paused_domain(self, vault, domains, images, tmp_path):
        """A paused domain is backed up through libvirt's backup job too, and stays paused."""
        specs, expected = images
        domain = domains().define(specs).start()
        virsh("suspend", domain.name)
        vault.protect("vm", "lv", {"libvirt": domain.name})
        point = vault.backup("lv")
        assert len(domain.checkpoints()) == 1
        assert virsh("domstate", domain.name).stdout.strip() == "paused"
        assert _restored(vault, "lv", point, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}


class TestShutOffDomain:
    def test_images_read_at_rest(self, vault, domains, images, tmp_path):
        """A shut-off domain's images are read at rest; unchanged, they are not read again."""
        specs, expected = images
        domain = domains().define(specs)
        vault.protect("vm", "lv", {"libvirt": domain.name})
        first = vault.backup("lv")
        assert 9 * MIB <= first.stats["bytes_read"] < 9 * MIB + 64 * 1024
        second = vault.backup("lv")
        assert second.stats["bytes_read"] < 64 * 1024  # the domain XML only
        assert _restored(vault, "lv", second, tmp_path / "out") == {k: bytes(v) for k, v in expected.items()}


class TestDefine:
    def test_define_a_new_domain_from_a_point(self, vault, domains, images, tmp_path):
        """--define: the restored disks, a new name, UUID and MAC; it starts."""
        specs, expected = images
        domain = domains().define(specs).start()
        vault.protect("vm", "lv", {"libvirt": domain.name})
        point = vault.backup("lv")
        new = domains("-copy")
        target = tmp_path / "restored"
        result = vault.restore("lv", point.point_id, str(target), options={"define": new.name, "start": True})
        assert new.name in result.summary
        old = ET.fromstring(virsh("dumpxml", domain.name).stdout)
        made = ET.fromstring(virsh("dumpxml", "--inactive", new.name).stdout)
        assert made.findtext("name") == new.name
        assert made.findtext("uuid") not in ("", old.findtext("uuid"))
        macs = [m.get("address") for m in made.findall("./devices/interface/mac")]
        assert macs and macs[0] != old.find("./devices/interface/mac").get("address")
        sources = {d.find("target").get("dev"): d.find("source").get("file") for d in made.findall("./devices/disk")}
        assert sources == {name: str(target / "disks" / f"{name}.img") for name in ("vda", "vdb")}
        assert virsh("domstate", new.name).stdout.strip() == "running"
        for name in ("vda", "vdb"):
            assert (target / "disks" / f"{name}.img").read_bytes() == bytes(expected[name])
        third = domains("-qcow2")  # qcow2 images: the XML says so; not started without --start
        target = tmp_path / "as-qcow2"
        vault.restore("lv", point.point_id, str(target), options={"define": third.name, "disk_format": "qcow2"})
        made = ET.fromstring(virsh("dumpxml", "--inactive", third.name).stdout)
        disks = {d.find("target").get("dev"): d for d in made.findall("./devices/disk")}
        assert disks["vda"].find("driver").get("type") == "qcow2"
        assert disks["vda"].find("source").get("file") == str(target / "disks" / "vda.qcow2")
        assert virsh("domstate", third.name).stdout.strip() == "shut off"
        assert _image_content(str(target / "disks" / "vda.qcow2"), "qcow2", tmp_path) == bytes(expected["vda"])

    def test_existing_name_is_refused(self, vault_url, cli, domains, images, tmp_path):
        """--define with the name of an existing domain: exit 42, nothing restored."""
        specs, _ = images
        domain = domains().define(specs)
        cli("vault", "create", vault_url)
        cli("protect", "vm", "lv", "--libvirt", domain.name)
        cli("backup", "lv")
        out = cli("restore", "lv", "--target", tmp_path / "out", "--define", domain.name, expect=42)
        assert f"'{domain.name}' already exists" in out.stderr and out.stderr.count("\n") == 1
        assert not (tmp_path / "out" / "disks").exists()


class TestRefusals:
    def test_libvirt_takes_no_other_source(self, vault_url, cli, tmp_path):
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "lv", "--libvirt", "web", "--disk", tmp_path / "x.img", expect=47)
        assert "--libvirt DOMAIN takes no --disk" in out.stderr
        out = cli("protect", "vm", "lv", "--disk", tmp_path / "x.img", "--connect", "qemu:///system", expect=47)
        assert "--connect goes with --libvirt" in out.stderr
        out = cli("protect", "vm", "lv", "--libvirt", "web", "--connect", "qemu+ssh://root@host1/system", expect=47)
        assert "names another machine (host1)" in out.stderr and out.stderr.count("\n") == 1

    def test_define_needs_a_libvirt_point(self, vault, cli, tmp_path):
        disk = tmp_path / "d.img"
        with open(disk, "wb") as fh:
            fh.truncate(MIB)
        vault.protect("vm", "plain", {"disks": [str(disk)]})
        vault.backup("plain")
        out = cli("restore", "plain", "--target", tmp_path / "out", "--define", "x", expect=90)
        assert "is not of a libvirt domain" in out.stderr and out.stderr.count("\n") == 1
        out = cli("restore", "plain", "--target", tmp_path / "out", "--start", expect=3)
        assert "--start goes with --define" in out.stderr

    def test_unknown_domain(self, vault_url, cli, libvirtd):
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "lv", "--libvirt", "no-such-domain-sr", expect=98)
        assert "No libvirt domain named 'no-such-domain-sr'" in out.stderr and out.stderr.count("\n") == 1

    def test_disk_that_is_not_a_file(self, vault_url, cli, domains, images):
        specs, _ = images
        domain = domains().define(specs, extra="<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
                                                 "<source dev='/dev/null'/><target dev='vdc' bus='virtio'/></disk>")
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "lv", "--libvirt", domain.name, expect=47)
        assert "Disk vdc of domain" in out.stderr and "a block disk (/dev/null)" in out.stderr
        assert out.stderr.count("\n") == 1
