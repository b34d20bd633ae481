"""LUKS volumes inside a disk point: named as encrypted, unlocked with a passphrase or key
file at browse and restore time, and the file system inside read like any other.

Volumes are real cryptsetup headers (LUKS1 and LUKS2, PBKDF2 and Argon2id key slots)
around an ext4 or XFS image encrypted with the volume key (lukskit: no device-mapper).
"""

from __future__ import annotations

import os
import random
import stat

import pytest

from strongroom import child_environment
from strongroom.errors import UsageError
from strongroom_vm.errors import LuksKeyUnavailable, LuksNeedsKey, LuksWrongKey
from strongroom_vm.luks import secret_from
from lukskit import luks_volume
from vmkit import MIB, CountingStore, partition, run, write_at
from xfskit import need_xfsprogs, xfs_image

NOTES = "home/alice/notes.txt"


def ext4_bytes(tmp_path, tree_root, size_mib: int = 24, block: int = 4096) -> bytes:
    image = tmp_path / "inner.ext4"
    run("mke2fs", "-q", "-F", "-t", "ext4", "-b", str(block), "-d", tree_root, image, f"{size_mib}M")
    data = image.read_bytes()
    image.unlink()
    return data


def check_tree(out, files, prefix: str = "", *, times: bool = True) -> None:
    """Every file of the test tree came out under ``out`` with its bytes; notes.txt keeps 0600 and
    its mtime (``times``: XFS made by mkfs.xfs -p has the time mkfs ran)."""
    for rel, data in files.items():
        if rel.startswith(prefix):
            assert (out / rel).read_bytes() == data, rel
    if NOTES.startswith(prefix):
        notes = os.lstat(out / NOTES)
        assert stat.S_IMODE(notes.st_mode) == 0o600
        assert notes.st_mtime_ns == 1_600_000_000 * 10**9 or not times


@pytest.fixture
def crypt_point(vault, tree, tmp_path):
    """A point of a whole-disk LUKS2 volume (PBKDF2) holding ext4 with the test tree; passphrase 'pw'."""
    image = tmp_path / "crypt.img"
    luks_volume(image, ext4_bytes(tmp_path, tree[0]), "luks2")
    vault.protect("vm", "safe", {"disks": [f"crypt={image}"]})
    vault.backup("safe")
    return "safe"


class TestWholeDiskLuks2:
    def test_browse_without_a_key_names_luks2_and_the_options(self, vault, cli, crypt_point, monkeypatch):
        """Without a key, browsing inside says the disk is encrypted (LUKS2) and how to give a key (exit 124)."""
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        [top] = [r for r in vault.browse(crypt_point, None, "") if r.name == "crypt"]
        assert top.detail.startswith("encrypted (LUKS2): browse crypt:/ with STRONGROOM_LUKS_PASSPHRASE")
        with pytest.raises(LuksNeedsKey, match=r"disk crypt is encrypted \(LUKS2\): give restore --luks-passphrase-env"):
            vault.browse(crypt_point, None, "crypt:/etc")
        out = cli("browse", crypt_point, "crypt:/", expect=124)
        assert out.stderr.count("\n") == 1 and "encrypted (LUKS2)" in out.stderr

    def test_browse_with_the_passphrase_lists_files(self, vault, crypt_point, monkeypatch):
        """With STRONGROOM_LUKS_PASSPHRASE set, browse lists the ext4 inside with modes and owners."""
        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw")
        assert {"etc", "home"} <= {r.name for r in vault.browse(crypt_point, None, "crypt:/")}
        rows = {r.name: r for r in vault.browse(crypt_point, None, "crypt:/home/alice")}
        assert rows["notes.txt"].mode == 0o600 and rows["notes.txt"].mtime_ns == 1_600_000_000 * 10**9

    def test_restore_with_passphrase_env_is_byte_identical(self, vault, cli, crypt_point, tree, tmp_path, monkeypatch):
        """restore --files --luks-passphrase-env VAR writes the files of the encrypted ext4 with their metadata."""
        monkeypatch.setenv("MY_LUKS_PW", "pw")
        cli("restore", crypt_point, "--target", tmp_path / "out", "--files", "crypt:/home", "--files", "crypt:/etc",
            "--luks-passphrase-env", "MY_LUKS_PW")
        check_tree(tmp_path / "out" / "crypt", tree[1])

    def test_wrong_passphrase_is_one_line_exit_125(self, vault, cli, crypt_point, tmp_path, monkeypatch):
        """A passphrase that opens no key slot is refused in one line (exit 125); nothing is written."""
        monkeypatch.setenv("MY_LUKS_PW", "not-the-passphrase")
        out = cli("restore", crypt_point, "--target", tmp_path / "out", "--files", "crypt:/etc",
                  "--luks-passphrase-env", "MY_LUKS_PW", expect=125)
        assert out.stderr.count("\n") == 1 and "the passphrase in MY_LUKS_PW opens none" in out.stderr
        assert "not-the-passphrase" not in out.stderr + out.stdout
        assert not (tmp_path / "out" / "crypt").exists()
        with pytest.raises(LuksWrongKey):
            vault.restore(crypt_point, None, str(tmp_path / "o2"),
                          options={"files": ["crypt:/etc"], "luks_passphrase_env": "MY_LUKS_PW"})

    def test_missing_passphrase_refusals(self, vault, cli, crypt_point, tmp_path, monkeypatch):
        """No key (exit 124), a variable that is not set (36) and an unreadable key file (36) are one line each."""
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        monkeypatch.delenv("UNSET_LUKS_PW", raising=False)
        out = cli("restore", crypt_point, "--target", tmp_path / "out", "--files", "crypt:/etc", expect=124)
        assert out.stderr.count("\n") == 1 and "--luks-key-file" in out.stderr
        out = cli("restore", crypt_point, "--target", tmp_path / "out", "--files", "crypt:/etc",
                  "--luks-passphrase-env", "UNSET_LUKS_PW", expect=36)
        assert "UNSET_LUKS_PW is not set" in out.stderr and out.stderr.count("\n") == 1
        with pytest.raises(LuksKeyUnavailable, match="key file"):
            vault.restore(crypt_point, None, str(tmp_path / "o2"),
                          options={"files": ["crypt:/etc"], "luks_key_file": str(tmp_path / "no-such-key")})
        with pytest.raises(UsageError, match="--files"):
            vault.restore(crypt_point, None, str(tmp_path / "o3"), options={"luks_passphrase_env": "X"})


class TestSecret:
    def test_passphrase_variables_are_kept_from_child_processes(self, monkeypatch):
        """Once read, the passphrase variable (named or the default one) is not in a child's environment."""
        monkeypatch.setenv("CHILD_LUKS_PW", "pw")
        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw2")
        secret = secret_from("CHILD_LUKS_PW")
        assert secret.value == b"pw" and "pw" not in repr(secret)
        env = child_environment()
        assert "CHILD_LUKS_PW" not in env and "STRONGROOM_LUKS_PASSPHRASE" not in env


class TestKeyFileAndKinds:
    def test_key_file_opens_a_luks1_volume(self, vault, cli, tree, tmp_path):
        """A LUKS1 volume whose slot was made from a key file restores with --luks-key-file."""
        key = tmp_path / "disk.key"
        key.write_bytes(os.urandom(256))
        image = tmp_path / "old.img"
        luks_volume(image, ext4_bytes(tmp_path, tree[0]), "luks1", key_file=key)
        vault.protect("vm", "old", {"disks": [f"vdb={image}"]})
        vault.backup("old")
        cli("restore", "old", "--target", tmp_path / "out", "--files", "vdb:/home", "--luks-key-file", key)
        check_tree(tmp_path / "out" / "vdb", tree[1], "home/")

    @pytest.mark.parametrize("kind,cipher,pbkdf,sector", [
        ("luks1", "aes-cbc-essiv:sha256", "pbkdf2", 512),
        ("luks2", "aes-xts-plain64", "argon2id", 512),
        ("luks2", "aes-xts-plain64", "pbkdf2", 4096),
    ])
    def test_ciphers_key_derivations_and_sector_sizes(self, vault, tree, tmp_path, monkeypatch, kind, cipher, pbkdf,
                                                      sector):
        """LUKS1 with CBC-ESSIV, LUKS2 with an Argon2id slot, LUKS2 with 4096-byte sectors: files come out whole."""
        image = tmp_path / "v.img"
        luks_volume(image, ext4_bytes(tmp_path, tree[0]), kind, cipher=cipher, pbkdf=pbkdf, sector=sector)
        vault.protect("vm", "v", {"disks": [f"vda={image}"]})
        vault.backup("v")
        monkeypatch.setenv("V3_TEST_PW", "pw")
        vault.restore("v", None, str(tmp_path / "out"),
                      options={"files": ["vda:/home", "vda:/etc"], "luks_passphrase_env": "V3_TEST_PW"})
        check_tree(tmp_path / "out" / "vda", tree[1])


class TestUnsupported:
    def test_an_argon2i_key_slot_is_refused_in_one_line(self, vault, cli, tree, tmp_path, monkeypatch):
        """A LUKS2 slot derived with Argon2i (which the cryptography package lacks) is refused with exit 95."""
        image = tmp_path / "a2i.img"
        luks_volume(image, ext4_bytes(tmp_path, tree[0]), "luks2", pbkdf="argon2i")
        vault.protect("vm", "a2i", {"disks": [f"vda={image}"]})
        vault.backup("a2i")
        monkeypatch.setenv("A2I_PW", "pw")
        out = cli("restore", "a2i", "--target", tmp_path / "out", "--files", "vda:/etc",
                  "--luks-passphrase-env", "A2I_PW", expect=95)
        assert out.stderr.count("\n") == 1 and "argon2i" in out.stderr


class TestLuksPartition:
    def test_luks2_partition_holding_xfs(self, vault, tree, tmp_path, monkeypatch):
        """A GPT disk: p1 ext4, p2 LUKS2 holding XFS. p2 reads 'encrypted (LUKS2)', with the key
        'encrypted (LUKS2, unlocked: xfs)', and its files restore whole."""
        need_xfsprogs()
        image = tmp_path / "disk.img"
        parts = partition(image, 120, "label: gpt\nstart=2048, size=24MiB, type=L\nsize=88MiB, type=L\n")
        run("mke2fs", "-q", "-F", "-t", "ext4", "-E", f"offset={parts[0]['start'] * 512}", "-d", tree[0],
            image, "24M")
        inner = tmp_path / "inner.xfs"
        xfs_image(inner, tree[0], 64)
        volume = tmp_path / "p2.luks"
        luks_volume(volume, inner.read_bytes(), "luks2")
        assert volume.stat().st_size <= 88 * MIB
        write_at(image, parts[1]["start"] * 512, volume.read_bytes())
        vault.protect("vm", "web", {"disks": [f"vda={image}"]})
        vault.backup("web")
        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        rows = {r.name: r.detail for r in vault.browse("web", None, "vda:/")}
        assert rows["p1"].startswith("ext4") and rows["p2"].startswith("encrypted (LUKS2)")
        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw")
        rows = {r.name: r.detail for r in vault.browse("web", None, "vda:/")}
        assert rows["p2"].startswith("encrypted (LUKS2, unlocked: xfs)")
        monkeypatch.setenv("P2_PW", "pw")
        vault.restore("web", None, str(tmp_path / "out"),
                      options={"files": ["vda:/p2/home", "vda:/p1/etc/motd"], "luks_passphrase_env": "P2_PW"})
        check_tree(tmp_path / "out" / "vda" / "p2", tree[1], "home/", times=False)
        assert (tmp_path / "out" / "vda" / "p1" / "etc" / "motd").read_bytes() == tree[1]["etc/motd"]


class TestFetchedBytes:
    def test_one_file_fetches_a_small_part_of_the_point(self, vault, tmp_path, monkeypatch):
        """Extracting a 1 MiB file from a LUKS2 disk around ext4 holding 64 MiB of files fetches
        only the chunks read (the header, ext4's metadata, the file): at most six 4 MiB chunks,
        which ciphertext keeps from compressing, of the ~100 MB stored."""
        rng = random.Random(6)
        root = tmp_path / "big"
        (root / "var").mkdir(parents=True)
        for i in range(4):
            (root / "var" / f"blob{i}.bin").write_bytes(rng.randbytes(16 * MIB))
        (root / "home").mkdir()
        wanted = rng.randbytes(MIB)
        (root / "home" / "wanted.bin").write_bytes(wanted)
        image = tmp_path / "big.img"
        luks_volume(image, ext4_bytes(tmp_path, root, 80), "luks2")
        vault.protect("vm", "big", {"disks": [f"vda={image}"]})
        stored = vault.backup("big").stats["stored_bytes"]
        counting = CountingStore(vault.repo.store)
        vault.repo.store = counting
        monkeypatch.setenv("BIG_PW", "pw")
        vault.restore("big", None, str(tmp_path / "out"),
                      options={"files": ["vda:/home/wanted.bin"], "luks_passphrase_env": "BIG_PW"})
        assert (tmp_path / "out" / "vda" / "home" / "wanted.bin").read_bytes() == wanted
        print(f"luks2: fetched {counting.bytes} bytes in {counting.reads} reads of {stored} stored "
              f"({100 * counting.bytes / stored:.2f}%)")
        assert counting.bytes <= 6 * 4 * MIB + 64 * 1024 and counting.bytes < 0.3 * stored
