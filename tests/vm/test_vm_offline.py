"""Offline VMs: disk images backed up and restored whole, holes kept, formats kept apart."""

from __future__ import annotations

import json
import os

import pytest

from vmkit import MIB, is_sparse, run, sha256_file, sparse_image, to_qcow2, write_at


@pytest.fixture
def two_disk_vm(tmp_path, gpt_image):
    """A GPT system disk (ext4 + FAT) and a qcow2 data disk with data far apart."""
    raw = sparse_image(tmp_path / "data-raw.img", 256 * MIB, (3 * MIB, os.urandom(2 * MIB)),
                       (200 * MIB + 12345, b"end of the data disk" * 1000))
    data = to_qcow2(raw, tmp_path / "data.qcow2")
    config = tmp_path / "web.xml"
    config.write_text("<domain type='kvm'><name>web</name></domain>\n")
    return gpt_image, data, config


class TestOfflineRoundTrip:
    def test_two_disk_vm_restores_equal_images(self, vault, two_disk_vm, tmp_path):
        """A GPT disk and a qcow2 disk back up and restore to images whose raw content equals the source."""
        system, data, config = two_disk_vm
        vault.protect("vm", "web", {"disks": [str(system), str(data)], "config": str(config)})
        point = vault.backup("web")
        assert point.warnings == ()
        vault.restore("web", None, str(tmp_path / "out"))
        out = tmp_path / "out"
        assert sha256_file(out / "disks" / "system.img") == sha256_file(system)
        assert sha256_file(out / "disks" / "data.img") == sha256_file(data, fmt="qcow2")
        assert (out / "config" / "web.xml").read_text() == config.read_text()
        manifest = json.loads((out / "vm.json").read_text())
        assert {d["name"]: d["format"] for d in manifest["disks"]} == {"system": "raw", "data": "qcow2"}

    def test_restore_one_disk_as_qcow2(self, vault, two_disk_vm, tmp_path):
        """--disk picks one disk and --format qcow2 writes a qcow2 image with the same content."""
        system, data, config = two_disk_vm
        vault.protect("vm", "web", {"disks": [str(system), str(data)], "config": str(config)})
        vault.backup("web")
        vault.restore("web", None, str(tmp_path / "out"), options={"disks": ["system"], "disk_format": "qcow2"})
        disks = sorted(os.listdir(tmp_path / "out" / "disks"))
        assert disks == ["system.qcow2"]
        info = json.loads(run("qemu-img", "info", "--output=json", tmp_path / "out" / "disks" / "system.qcow2").stdout)
        assert info["format"] == "qcow2"
        assert sha256_file(tmp_path / "out" / "disks" / "system.qcow2", fmt="qcow2") == sha256_file(system)

    def test_zero_regions_take_no_space_and_restore_sparse(self, vault, tmp_path):
        """A 1 GiB image with 8 MiB of data stores about 8 MiB, and restores as a sparse file."""
        image = tmp_path / "big.img"
        with open(image, "wb") as fh:
            fh.truncate(1024 * MIB)
        write_at(image, 100 * MIB, os.urandom(4 * MIB))
        write_at(image, 902 * MIB + 7, os.urandom(3 * MIB))  # straddles two chunks
        vault.protect("vm", "big", {"disks": [f"disk0={image}"]})
        point = vault.backup("big")
        entry = vault.tree(point).lookup("disks/disk0")
        size = entry.chunk_size  # the item's (vm items choose theirs)
        touched = {*range(100 * MIB // size, 104 * MIB // size), *range((902 * MIB + 7) // size, (905 * MIB + 6) // size + 1)}
        assert {i for i, c in enumerate(entry.chunks) if c} == touched
        assert point.stats["stored_bytes"] < len(touched) * size + MIB
        vault.restore("big", None, str(tmp_path / "out"))
        restored = tmp_path / "out" / "disks" / "disk0.img"
        assert os.path.getsize(restored) == 1024 * MIB
        assert sha256_file(restored) == sha256_file(image)
        assert is_sparse(restored, 16 * MIB), "the restored image is not sparse"

    def test_unchanged_image_stores_nothing_new(self, vault, gpt_image):
        """A second backup of an unchanged image adds no data."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        second = vault.backup("sys")
        assert second.stats["new_blobs"] <= 3  # the manifest and tree nodes only
        assert second.stats["stored_bytes"] < 64 * 1024

    def test_luks_image_is_kept_as_it_is(self, vault, tmp_path):
        """A LUKS container is backed up byte for byte and restores to the same image."""
        image = tmp_path / "secret.img"
        with open(image, "wb") as fh:
            fh.truncate(64 * MIB)
        if os.system(f"echo -n pw | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
                     f"{image} - >/dev/null 2>&1") != 0:
            header = b"LUKS\xba\xbe\x00\x02" + os.urandom(16 * 1024 - 8)
            write_at(image, 0, header)  # what matters here is the magic, not the encryption
        write_at(image, 20 * MIB, os.urandom(MIB))  # ciphertext-like content
        vault.protect("vm", "vault-vm", {"disks": [str(image)]})
        item = vault.item("vault-vm")
        assert item.source["disks"][0]["format"] == "luks"
        vault.backup("vault-vm")
        vault.restore("vault-vm", None, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "secret.img") == sha256_file(image)

    def test_raw_disk_is_never_probed_again(self, vault, tmp_path):
        """A raw disk whose guest writes a qcow2 header is still read raw (its format was fixed at protect)."""
        image = tmp_path / "guest.img"
        with open(image, "wb") as fh:
            fh.truncate(16 * MIB)
        vault.protect("vm", "g", {"disks": [str(image)]})
        write_at(image, 0, b"QFI\xfb\x00\x00\x00\x03" + bytes(504))
        vault.backup("g")
        vault.restore("g", None, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "guest.img") == sha256_file(image)

    def test_cli_round_trip(self, cli, vault_url, two_disk_vm, tmp_path):
        """protect vm, backup, browse and restore through the command line."""
        system, data, config = two_disk_vm
        cli("vault", "create", vault_url)
        out = cli("protect", "vm", "web", "--disk", f"sys={system}", "--disk", data, "--config", config)
        assert "sys=" in out.stdout and "(qcow2)" in out.stdout
        cli("backup", "web")
        top = cli("browse", "web").stdout
        assert "sys" in top and "data" in top and "config" in top
        cli("restore", "web", "--target", tmp_path / "r", "--disk", "sys")
        assert sha256_file(tmp_path / "r" / "disks" / "sys.img") == sha256_file(system)
