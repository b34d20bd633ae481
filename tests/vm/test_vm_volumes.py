"""Volumes and file systems inside disks: what FAT and NTFS files restore as, LUKS volumes
named as encrypted (unlocking them: test_vm_luks.py), and a GPT disk read from its backup header when the primary is damaged.

Images are real: ``sfdisk``, ``mke2fs -d``, ``mkfs.fat`` + ``mcopy``, ``mkntfs`` +
``ntfscp``, ``cryptsetup luksFormat`` on image files.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from strongroom_vm.errors import LuksNeedsKey
from vmkit import MIB, backed_up_ntfs_disk, partition, run, write_at


def mode_of(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def luks_volume(path, size_mib: int, kind: str) -> None:
    """A LUKS1 or LUKS2 container made by cryptsetup (a fast key derivation)."""
    if shutil.which("cryptsetup") is None:
        pytest.skip("cryptsetup is not installed (it makes the LUKS test images)")
    with open(path, "wb") as fh:
        fh.truncate(size_mib * MIB)
    run("cryptsetup", "luksFormat", "-q", "--type", kind, "--pbkdf-force-iterations", "1000",
        *(["--pbkdf", "pbkdf2"] if kind == "luks2" else []), path, "-", input=b"pw")


def copy_into(image, offset: int, volume) -> None:
    with open(volume, "rb") as src:
        write_at(image, offset, src.read())


class TestModesFromFatAndNtfs:
    def test_fat_files_restore_0644_and_folders_0755_owned_by_the_restoring_user(self, vault, gpt_image, tmp_path):
        """Files from FAT get 0644, folders 0755, and this process's user and group (not 0777)."""
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        rows = {r.name: r for r in vault.browse("web", None, "system:/p2/home/alice")}
        assert rows["notes.txt"].mode == 0o644 and rows["docs"].mode == 0o755
        assert rows["notes.txt"].owner == f"{os.getuid()}:{os.getgid()}"
        vault.restore("web", None, str(tmp_path / "out"), options={"files": ["system:/p2/home/alice"]})
        out = tmp_path / "out" / "system" / "p2" / "home" / "alice"
        assert (out / "docs" / "deep" / "er" / "file.txt").read_bytes() == b"deep\n"
        for path in [out, *out.rglob("*")]:
            assert mode_of(path) == (0o755 if path.is_dir() else 0o644), path
            assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())

    def test_ext4_keeps_its_own_modes(self, vault, gpt_image, tmp_path):
        """The same file from ext4 keeps the mode the file system has (0600)."""
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        vault.restore("web", None, str(tmp_path / "out"), options={"files": ["system:/p1/home/alice/notes.txt"]})
        assert mode_of(tmp_path / "out" / "system" / "p1" / "home" / "alice" / "notes.txt") == 0o600

    def test_ntfs_files_restore_0644_owned_by_the_restoring_user(self, vault, tmp_path):
        """A file from NTFS gets 0644 and this process's user (not uid 48), its folder 0755."""
        payload = backed_up_ntfs_disk(vault, tmp_path, 50_000)
        vault.restore("win", None, str(tmp_path / "out"), options={"files": ["win:/p1"]})
        out = tmp_path / "out" / "win" / "p1"
        assert (out / "report.txt").read_bytes() == payload.read_bytes()
        assert mode_of(out / "report.txt") == 0o644 and mode_of(out) == 0o755
        assert (out / "report.txt").stat().st_uid == os.getuid() != 48


class TestLuks:
    @pytest.mark.parametrize("kind", ["luks1", "luks2"])
    def test_a_whole_disk_luks_volume_is_named_encrypted(self, vault, cli, vault_url, tmp_path, kind, monkeypatch):
        """Browsing or extracting from a whole-disk LUKS volume without a key says it is encrypted
        (LUKS1/LUKS2) and how to give the key (exit 124), not 'no file system'."""
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        monkeypatch.delenv("STRONGROOM_LUKS_KEY_FILE", raising=False)
        image = tmp_path / "secret.img"
        luks_volume(image, 32, kind)
        vault.protect("vm", "vault-vm", {"disks": [f"crypt={image}"]})
        vault.backup("vault-vm")
        [top] = [r for r in vault.browse("vault-vm", None, "") if r.name == "crypt"]
        assert top.detail.startswith(f"encrypted ({kind.upper()})")
        shown = f"encrypted ({kind.upper()})"
        with pytest.raises(LuksNeedsKey, match=rf"disk crypt is encrypted \({kind.upper()}\)") as info:
            vault.browse("vault-vm", None, "crypt:/")
        assert "no file system" not in str(info.value)
        with pytest.raises(LuksNeedsKey, match=r"--luks-passphrase-env VAR or --luks-key-file FILE"):
            vault.restore("vault-vm", None, str(tmp_path / "out"), options={"files": ["crypt:/etc"]})
        out = cli("restore", "vault-vm", "--target", tmp_path / "o2", "--files", "/etc", expect=124)
        assert out.stderr.count("\n") == 1 and shown in out.stderr

    def test_a_luks_partition_is_listed_as_encrypted(self, vault, tree, tmp_path, monkeypatch):
        """A GPT disk with an ext4 and a LUKS2 partition lists the second as encrypted (LUKS2)."""
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        monkeypatch.delenv("STRONGROOM_LUKS_KEY_FILE", raising=False)
        image = tmp_path / "disk.img"
        parts = partition(image, 96, "label: gpt\nstart=2048, size=32MiB, type=L\nsize=40MiB, type=L\n")
        run("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={parts[0]['start'] * 512}", "-d", tree[0],
            image, "32768k")
        volume = tmp_path / "p2.luks"
        luks_volume(volume, 40, "luks2")
        copy_into(image, parts[1]["start"] * 512, volume)
        vault.protect("vm", "web", {"disks": [f"vda={image}"]})
        vault.backup("web")
        rows = {r.name: r.detail for r in vault.browse("web", None, "vda:/")}
        assert rows["p1"].startswith("ext4") and rows["p2"].startswith("encrypted (LUKS2)")
        with pytest.raises(LuksNeedsKey, match=r"vda:/p2 is encrypted \(LUKS2\)"):
            vault.browse("web", None, "vda:/p2")


class TestBackupGptHeader:
    def test_partitions_are_read_from_the_backup_header(self, vault, gpt_image, tree, tmp_path):
        """With LBA 1 zeroed, the partitions come from the backup header (as sfdisk reads them), files and all."""
        write_at(gpt_image, 512, bytes(512))
        check = subprocess.run(["sfdisk", "-J", str(gpt_image)], capture_output=True, text=True)
        assert check.returncode == 0 and "backup" in check.stderr  # sfdisk falls back too
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        parts = vault.browse("web", None, "system:/")
        assert [p.name for p in parts] == ["p1", "p2"]
        assert parts[0].detail.startswith("ext4") and parts[1].detail.startswith("fat32")
        assert all("backup GPT header" in p.detail for p in parts)
        assert parts[0].size == parts[1].size == 64 * MIB
        vault.restore("web", None, str(tmp_path / "out"),
                      options={"files": ["system:/p1/home/alice/docs", "system:/p2/etc/motd"]})
        out = tmp_path / "out" / "system"
        assert (out / "p1/home/alice/docs/report.bin").read_bytes() == tree[1]["home/alice/docs/report.bin"]
        assert (out / "p2/etc/motd").read_bytes() == tree[1]["etc/motd"]

    def test_a_sound_primary_header_is_used_as_before(self, vault, gpt_image):
        """An undamaged GPT disk is read from its primary header."""
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        parts = vault.browse("web", None, "system:/")
        assert [p.name for p in parts] == ["p1", "p2"]
        assert not any("backup GPT header" in p.detail for p in parts)
