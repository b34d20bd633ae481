"""New vaults are of the newest format (format 2's encoding: headerless blobs, padding) with a 64-bit chunker seed; the format in force is authenticated."""

from __future__ import annotations

import json
import os
from pathlib import Path

from strongroom.models import FORMAT_VERSION
from strongroom.repository.chunker import ChunkerParams
from strongroom.vault import Vault

from vaultkit import assert_one_line_error


def backed_up(vault: Vault, tmp_path: Path, name: str = "docs") -> None:
    src = tmp_path / f"src-{name}"
    src.mkdir()
    (src / "a.txt").write_text("some text\n" * 2000)
    (src / "b.bin").write_bytes(os.urandom(900_000))
    vault.protect("files", name, {"paths": [str(src)]})
    vault.backup(name)


def first_bytes(vault: Vault, prefix: str) -> set[bytes]:
    """The first 4 bytes of every object under ``prefix``."""
    return {vault.store.get_range(name, 0, 4) for name in vault.store.list(prefix)}


class TestNewVault:
    def test_created_in_the_newest_format(self, vault_url, tmp_path):
        """strongroom.json and the settings say the newest format (3: format 2's encoding, with
        data keys); blobs are headerless, other objects carry a version-2 header."""
        vault = Vault.create(vault_url, name="new")
        assert FORMAT_VERSION == 3 and vault.format == 3
        assert json.loads(Path(vault_url, "strongroom.json").read_text())["format"] == 3
        assert vault.settings.format == 3
        backed_up(vault, tmp_path)
        vault.repo.load_index()
        for entry in vault.repo.index.entries():
            sealed = vault.store.get_range(f"data/{entry.pack_id[:2]}/{entry.pack_id}", entry.offset, entry.length)
            assert sealed[:3] != b"SRE"
            assert vault.repo.open_blob(entry, sealed)
        for prefix in ("index/", "points/", "items/", "settings/", "jobs/"):
            assert {head[:4] for head in first_bytes(vault, prefix)} == {b"SRE\x02"}, prefix
        assert vault.verify(read_data=True).ok

    def test_seed_is_64_bits(self, vault_url):
        """A new vault's chunker seed is drawn from 64 bits (format 1 drew below 2**31); the
        checks below fail by chance with a probability of about 2**-19."""
        seeds = [ChunkerParams.new_seed() for _ in range(20)]
        assert all(2**40 <= s < 2**64 and s & (2**63 - 1) for s in seeds)
        assert any(s >= 2**63 for s in seeds)
        vault = Vault.create(vault_url)
        assert vault.chunker_params.seed == vault.settings.chunker["seed"] >= 2**31

    def test_upgrade_has_nothing_to_do(self, vault, cli):
        """'vault upgrade' on a new vault says so and writes nothing."""
        settings = sorted(vault.store.list("settings/"))
        result = cli("vault", "upgrade", "--apply")
        assert "nothing to upgrade" in result.stdout
        assert sorted(vault.store.list("settings/")) == settings


class TestFormatInForce:
    def test_clear_downgrade_is_ignored(self, vault_url, tmp_path):
        """Editing strongroom.json back to format 1 does not make the client write format 1:
        the settings' (authenticated) format wins."""
        vault = Vault.create(vault_url)
        config = Path(vault_url, "strongroom.json")
        config.write_text(config.read_text().replace(f'"format": {FORMAT_VERSION}', '"format": 1'))
        again = Vault.open(vault_url)
        assert again.config.format == 1 and again.format == FORMAT_VERSION
        before = again.repo.pack_ids_on_storage()
        backed_up(again, tmp_path)
        again.repo.load_index()
        new = [e for e in again.repo.index.entries() if e.pack_id not in before]
        assert new and all(
            again.store.get_range(f"data/{e.pack_id[:2]}/{e.pack_id}", e.offset, 3) != b"SRE" for e in new)

    def test_settings_of_a_newer_format_are_refused(self, vault, cli):
        """A vault whose settings record a format newer than this strongroom knows is refused (exit 13)."""
        vault.update_settings(format=FORMAT_VERSION + 1)
        result = cli("points", expect=13)
        assert_one_line_error(result, 13, f"format {FORMAT_VERSION + 1}")
