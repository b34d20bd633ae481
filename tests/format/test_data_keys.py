"""Data-key rotation (format 3): ``vault key rotate``, data keys by id, ``vault key list``.

Real vaults in folders, the real command line: points written under three data keys
restore byte for byte, new objects carry the new key id while deduplication goes on, a
deleted or replaced data key is named (never silent), a read-only or older-format vault
refuses a rotation in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from strongroom.repository.datakeys import datakey_name
from strongroom.repository.pack import read_trailer
from strongroom.vault import Vault

from vaultkit import assert_one_line_error
from fixturekit import Fixture, all_fixtures

PASSPHRASE = "rotate-me-not 7f3a9c"


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def rotated(tmp_path, cli, vault_url):
    """A vault with a passphrase slot and three points of item ``www``: the first under the
    master key's data key, the second and third under two rotated keys; what each held."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(700_000))
    (src / "notes.txt").write_text("first\n" * 1000)
    cli("vault", "create", vault_url)
    cli("vault", "key", "add", "--provider", "passphrase", "--label", "admin", "--new-passphrase-env", "K2_PW",
        env={"K2_PW": PASSPHRASE})
    cli("protect", "files", "www", "--path", str(src))
    expected, keys, new_bytes = {}, [], []
    for step in range(3):
        if step:
            keys.append(json.loads(cli("vault", "key", "rotate", "--json").stdout)["key_id"])
            (src / f"new-{step}.bin").write_bytes(os.urandom(300_000))
            shutil.copy(src / "a.bin", src / f"copy-{step}.bin")  # known content: deduplicated
        point = json.loads(cli("backup", "www", "--json").stdout)
        expected[point["id"]] = tree_digest(src)
        new_bytes.append(point["stats"]["new_bytes"])
    return src, expected, keys, new_bytes


class TestRotation:
    def test_points_under_each_data_key_restore(self, rotated, cli, tmp_path):
        """After two rotations, the points written under each of the three data keys restore
        byte for byte, and verify --read-data is clean."""
        src, expected, keys, _ = rotated
        assert len(set(keys)) == 2
        for point, digest in expected.items():
            target = tmp_path / f"restore-{point}"
            cli("restore", f"www@{point}", "--target", str(target))
            assert tree_digest(target / str(src).lstrip("/")) == digest
        report = json.loads(cli("vault", "verify", "--read-data", "--json").stdout)
        assert report["problems"] == [] and report["packs_read"] >= 3

    def test_new_objects_carry_the_new_key_and_still_deduplicate(self, rotated, vault_url):
        """Packs written after a rotation name the new data key (trailer and index), the
        documents written after it carry its key id, the copies of known content add no
        data blob, and the id key did not change."""
        _, expected, keys, new_bytes = rotated
        vault = Vault.open(vault_url)
        assert vault.repo.envelope.key_id.hex() == keys[-1]
        vault.repo.load_index()
        by_pack: dict[str, set[bytes]] = {}
        for entry in vault.repo.index.entries():
            by_pack.setdefault(entry.pack_id, set()).add(entry.key_id)
        first = vault.repo.envelope.base_key_id
        assert sorted({key.hex() for keys_ in by_pack.values() for key in keys_}) == sorted([first.hex(), *keys])
        for pack_id, pack_keys in by_pack.items():
            assert len(pack_keys) == 1  # a pack holds blobs of one data key
            assert {e.key_id for e in read_trailer(vault.store, pack_id, vault.repo.envelope)} == pack_keys
        points = sorted(vault.store.list("points/"))
        header_keys = {vault.store.get_range(name, 6, 4).hex() for name in points}
        assert header_keys == {first.hex(), *keys}
        # each later backup added a copy of a.bin (700 kB, stored under the first key) and a
        # new 300 kB file: only the new file (and folders) is new, the copy deduplicated
        assert new_bytes[0] > 700_000 and all(300_000 <= n < 400_000 for n in new_bytes[1:]), new_bytes
        assert len(expected) == 3

    def test_no_passphrase_in_the_vault(self, rotated, vault_url):
        """No file of the vault holds the passphrase, in any encoding a grep would find."""
        needle = PASSPHRASE.encode()
        for path in Path(vault_url).rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), path

    def test_key_list_shows_slots_last_use_and_data_keys(self, rotated, cli):
        """key list: each slot's last use here, and every data key with the current one marked."""
        _, _, keys, _ = rotated
        listed = json.loads(cli("vault", "key", "list", "--json", "--data-keys").stdout)
        local = [s for s in listed["slots"] if s["provider"] == "local"]
        assert local and local[0]["last_used_here"]
        admin = [s for s in listed["slots"] if s["label"] == "admin"]
        assert admin and admin[0]["last_used_here"] is None  # never opened with it here
        data = listed["data_keys"]
        assert [d["key_id"] for d in data[1:]] == keys and data[0]["first"]
        assert [d["current"] for d in data] == [False, False, True]
        slots_only = json.loads(cli("vault", "key", "list", "--json").stdout)
        assert [s["slot"] for s in slots_only] == [s["slot"] for s in listed["slots"]]
        text = cli("vault", "key", "list").stdout
        assert "LAST USED HERE" in text and f"{keys[-1]}  " in text and "current" in text

    def test_rotation_is_journaled(self, rotated, vault_url):
        """Each rotation is in the audit journal with the new key id."""
        _, _, keys, _ = rotated
        vault = Vault.open(vault_url)
        entries = [e for e in vault.journal.entries() if e.operation == "key.rotate"]
        assert {e.params.get("key_id") for e in entries} == set(keys)


    def test_copied_blobs_keep_their_keys(self, rotated, cli, vault_url, tmp_path):
        """Prune's and repair's copies (copy_blobs) put blobs of different data keys into
        different packs; with the original packs gone and the index rebuilt from the
        copies' trailers, every point still restores byte for byte."""
        from strongroom.repository.maintenance import copy_blobs

        src, expected, keys, _ = rotated
        vault = Vault.open(vault_url)
        vault.repo.load_index()
        entries = list(vault.repo.index.entries())
        copies = copy_blobs(vault.repo, entries, pack_size=1 << 30)
        by_pack: dict[str, set[bytes]] = {}
        for entry in copies:
            by_pack.setdefault(entry.pack_id, set()).add(entry.key_id)
        assert len(by_pack) == 3 and all(len(k) == 1 for k in by_pack.values())
        for pack_id in {e.pack_id for e in entries}:
            vault.store.delete(f"data/{pack_id[:2]}/{pack_id}")
        cli("vault", "rebuild-index")
        for point, digest in expected.items():
            target = tmp_path / f"again-{point}"
            cli("restore", f"www@{point}", "--target", str(target))
            assert tree_digest(target / str(src).lstrip("/")) == digest


    def test_a_rotated_empty_vault_deletes_whole(self, cli, vault_url):
        """vault delete removes the data keys too (after the settings, before the key slots)."""
        cli("vault", "create", vault_url)
        cli("vault", "key", "rotate")
        assert list(Path(vault_url, "datakeys").iterdir())
        cli("vault", "delete", "--yes")
        assert not Path(vault_url).exists()


class TestTampering:
    def test_a_deleted_old_data_key_is_named(self, rotated, cli, vault_url, tmp_path):
        """Deleting a data key that is not current: the vault opens, verify names the object
        (exit 51), and a restore of a point sealed under it fails in one line naming it."""
        _, expected, keys, new_bytes = rotated
        name = datakey_name(keys[0])
        os.remove(Path(vault_url, name))
        result = cli("vault", "verify", expect=51)
        assert name in result.stdout + result.stderr
        second = list(expected)[1]
        result = cli("restore", f"www@{second}", "--target", str(tmp_path / "r"), expect=50)
        assert_one_line_error(result, 50, name)

    def test_a_replaced_current_data_key_is_refused(self, rotated, cli, vault_url):
        """Replacing the current data key with another data key's object: the vault does not
        open, one line names the object; the key is never used."""
        _, _, keys, _ = rotated
        current, other = Path(vault_url, datakey_name(keys[-1])), Path(vault_url, datakey_name(keys[0]))
        current.write_bytes(other.read_bytes())
        result = cli("points", "www", expect=50)
        assert_one_line_error(result, 50, datakey_name(keys[-1]), "replaced or damaged")

    def test_a_planted_data_key_is_reported_and_never_used(self, rotated, cli, vault_url):
        """An object under datakeys/ that the settings do not name is reported by verify and
        never written with."""
        _, _, keys, _ = rotated
        planted = Path(vault_url, "datakeys", "0badc0de")
        planted.write_bytes(Path(vault_url, datakey_name(keys[0])).read_bytes())
        result = cli("vault", "verify", expect=51)
        assert "datakeys/0badc0de" in result.stdout + result.stderr
        assert Vault.open(vault_url).repo.envelope.key_id.hex() == keys[-1]

    def test_settings_that_roll_the_current_key_back_are_not_taken(self, rotated, vault_url):
        """A settings document (written with the key) that drops the newest data key is not
        taken: the current key stays the newest."""
        _, _, keys, _ = rotated
        vault = Vault.open(vault_url)
        vault.update_settings(data_keys=tuple(keys[:1]))
        assert Vault.open(vault_url).repo.envelope.key_id.hex() == keys[-1]


class TestReplication:
    def test_the_secondary_gets_the_data_keys_and_restores(self, tmp_path, cli):
        """After a rotation, vault replicate copies datakeys/ with the rest: the points
        written under each data key restore from the secondary (--from-secondary)."""
        primary, secondary = str(tmp_path / "p"), str(tmp_path / "s")
        src = tmp_path / "src"
        src.mkdir()
        cli("vault", "create", primary, "--redundancy", "geo", "--secondary", secondary)
        cli("--vault", primary, "protect", "files", "www", "--path", str(src))
        expected = {}
        for step in range(2):
            (src / f"f{step}.bin").write_bytes(os.urandom(200_000))
            point = json.loads(cli("--vault", primary, "backup", "www", "--json").stdout)
            expected[point["id"]] = tree_digest(src)
            if not step:
                key = json.loads(cli("--vault", primary, "vault", "key", "rotate", "--json").stdout)["key_id"]
        cli("--vault", primary, "vault", "replicate")
        assert Path(secondary, datakey_name(key)).is_file()
        for point, digest in expected.items():
            target = tmp_path / f"from-secondary-{point}"
            cli("--vault", primary, "--from-secondary", "restore", f"www@{point}", "--target", str(target))
            assert tree_digest(target / str(src).lstrip("/")) == digest


class TestRefusals:
    def test_rotate_from_the_secondary_is_refused(self, tmp_path, cli):
        """On a geo secondary (--from-secondary, or its URL) rotate is one line, exit 37."""
        primary, secondary = str(tmp_path / "p"), str(tmp_path / "s")
        cli("vault", "create", primary, "--redundancy", "geo", "--secondary", secondary)
        cli("--vault", primary, "vault", "replicate")
        result = cli("--vault", primary, "--from-secondary", "vault", "key", "rotate", expect=37)
        assert_one_line_error(result, 37, "read-only")
        assert not Path(secondary, "datakeys").exists()

    def test_rotate_on_an_older_format_is_refused_until_upgraded(self, tmp_path, cli, strongroom_home):
        """A format-2 vault refuses rotate (exit 37, naming vault upgrade); after the upgrade
        it rotates, and its old points still restore."""
        fixture = Fixture.load(next(p for p in all_fixtures() if p.name == "vault-format-2"))
        url = fixture.install(tmp_path / "v2", strongroom_home)
        result = cli("--vault", url, "vault", "key", "rotate", expect=37)
        assert_one_line_error(result, 37, "format 2", "vault upgrade")
        cli("--vault", url, "vault", "upgrade")
        cli("--vault", url, "vault", "key", "rotate")
        point, digest = next(iter(fixture.items["docs"]["points"].items()))
        target = tmp_path / "r"
        cli("--vault", url, "restore", f"docs@{point}", "--target", str(target))
        assert len(list(target.rglob("*"))) > 5
