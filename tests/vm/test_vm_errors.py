"""Bad input gives one clear line and a stable exit code."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from strongroom.errors import InvalidSource
from strongroom_vm.errors import DiskUnreadable, QemuError
from vmkit import MIB, run, write_at

import strongroom_vm.qmp as qmp_module
from strongroom_vm.qmp import QmpClient


class TestProtectErrors:
    def test_missing_disk(self, cli, vault_url, tmp_path):
        """A disk that does not exist is refused at protect time."""
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "web", "--disk", tmp_path / "nope.img", expect=47)
        assert "disk" in out.stderr and "nope.img does not exist" in out.stderr
        assert out.stderr.count("\n") == 1

    def test_format_it_cannot_read(self, cli, vault_url, tmp_path):
        """A damaged qcow2 image and an encrypted qcow2 image are refused with the reason."""
        cli("vault", "create", vault_url)
        broken = tmp_path / "broken.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", broken, "16M")
        write_at(broken, 4, b"\x00\x00\x00\x09")  # an unknown qcow2 version
        out = cli("protect", "vm", "web", "--disk", broken, expect=47)
        assert "broken.qcow2" in out.stderr and "version" in out.stderr.lower()
        secret = tmp_path / "secret.qcow2"
        for _ in range(5):  # qemu-img's PBKDF benchmark sometimes fails on a busy machine
            made = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=pw",
                                   "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=200",
                                   secret, "16M"], capture_output=True)
            if made.returncode == 0:
                break
        assert made.returncode == 0, made.stderr
        out = cli("protect", "vm", "web2", "--disk", secret, expect=47)
        assert "encrypted qcow2 images are not supported" in out.stderr

    def test_either_disks_or_qmp(self, cli, vault_url, tmp_path):
        """A vm item is either an offline VM or a live one."""
        cli("vault", "create", vault_url)
        assert "either --disk" in cli("protect", "vm", "web", expect=47).stderr

    def test_qmp_socket_that_does_not_exist(self, cli, vault_url, tmp_path):
        """A QMP socket that is not there is refused."""
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "web", "--qmp", tmp_path / "qmp.sock", expect=47)
        assert "no such socket" in out.stderr

    def test_qmp_socket_that_does_not_answer(self, workdir, monkeypatch):
        """A socket that accepts but never greets times out with a clear message."""
        path = os.path.join(workdir, "silent.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        monkeypatch.setattr(qmp_module, "TIMEOUT", 0.3)
        try:
            with pytest.raises(QemuError, match="no answer within 0.3 s"):
                QmpClient(path)
        finally:
            server.close()


class TestBackupErrors:
    def test_disk_removed_after_protect(self, vault, tmp_path):
        """A disk that disappeared fails the backup naming the disk (exit code 91)."""
        image = tmp_path / "d.img"
        with open(image, "wb") as fh:
            fh.truncate(8 * MIB)
        vault.protect("vm", "web", {"disks": [str(image)]})
        os.unlink(image)
        with pytest.raises(DiskUnreadable, match="d.img: no such file") as info:
            vault.backup("web")
        assert info.value.exit_code == 91

    def test_vm_that_stopped(self, vault, make_vm, tmp_path):
        """A live VM whose QEMU is gone fails the backup with exit code 92."""
        image = tmp_path / "d.img"
        with open(image, "wb") as fh:
            fh.truncate(8 * MIB)
        vm = make_vm([("vda", image, "raw")])
        vault.protect("vm", "live", {"qmp": vm.qmp})
        vm.stop()
        with pytest.raises(QemuError) as info:
            vault.backup("live")
        assert info.value.exit_code == 92

    def test_image_in_use_by_a_running_vm(self, vault, make_vm, tmp_path):
        """An offline qcow2 disk that a running VM holds is refused with a hint to use --qmp."""
        image = tmp_path / "d.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", image, "8M")
        vault.protect("vm", "web", {"disks": [str(image)]})
        make_vm([("vda", image, "qcow2")])
        with pytest.raises(DiskUnreadable, match="in use by a running VM"):
            vault.backup("web")

    def test_invalid_disk_names(self, vault, tmp_path):
        """Disk names with ':' or duplicates are refused."""
        image = tmp_path / "d.img"
        image.write_bytes(bytes(4096))
        with pytest.raises(InvalidSource, match="disk name"):
            vault.protect("vm", "a", {"disks": [f"a:b={image}"]})
        with pytest.raises(InvalidSource, match="two disks are named"):
            vault.protect("vm", "b", {"disks": [str(image), str(image)]})
