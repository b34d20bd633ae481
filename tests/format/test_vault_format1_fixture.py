"""The frozen format-1 vault (tests/fixtures/vault-format-1): it opens, restores byte for
byte, verifies, upgrades to format 2 in place, backs up again and restores old and new points."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from fixturekit import describe as describe_in_full
from strongroom.models import FORMAT_VERSION
from strongroom.repository.envelope import KIND_DATA
from strongroom.vault import Vault
from vaultkit import FIXTURES, install_fixture_vault

FIXTURE = FIXTURES / "vault-format-1"
SOURCE = json.loads((FIXTURE / "source.json").read_text())


def describe(root: Path) -> dict:
    """What source.json records of a tree: path -> type, size and SHA-256, or link target
    (the fixtures' description without modes and xattrs, which format 1 did not record)."""
    return {rel: {key: value for key, value in record.items() if key not in ("mode", "xattrs")}
            for rel, record in describe_in_full(root).items()}


@pytest.fixture
def old_vault(tmp_path, strongroom_home) -> str:
    """A copy of the fixture vault, its local key in this test's key store."""
    return install_fixture_vault(FIXTURE, tmp_path / "vault", strongroom_home)


def restore_all(vault: Vault, item: str, point_id: str, target: Path) -> dict:
    vault.restore(item, point_id, str(target))
    return describe(target / SOURCE["source"].lstrip("/"))


def blob_starts(vault: Vault, pack_ids: set[str]) -> set[bytes]:
    """The first three bytes of every blob of the given packs (b"SRE" for a format-1 blob)."""
    vault.repo.load_index()
    out = set()
    for entry in vault.repo.index.entries():
        if entry.pack_id in pack_ids:
            out.add(vault.store.get_range(f"data/{entry.pack_id[:2]}/{entry.pack_id}", entry.offset, 3))
    return out


class TestFrozenFixture:
    def test_fixture_is_unchanged(self):
        """Every file of the fixture has the hash its manifest recorded when format 1 wrote it."""
        manifest = json.loads((FIXTURE / "MANIFEST.json").read_text())
        for rel, digest in manifest.items():
            assert hashlib.sha256((FIXTURE / rel).read_bytes()).hexdigest() == digest, rel
        assert json.loads((FIXTURE / "vault" / "strongroom.json").read_text())["format"] == 1

    def test_opens_restores_and_verifies(self, old_vault, tmp_path):
        """The format-1 vault opens as format 1, both points restore byte for byte, verify passes."""
        vault = Vault.open(old_vault)
        assert vault.config.format == 1 and vault.format == 1
        points = {p.point_id: p for p in vault.points("docs")}
        assert set(points) == set(SOURCE["points"])
        for point_id, expected in SOURCE["points"].items():
            assert restore_all(vault, "docs", point_id, tmp_path / point_id) == expected
        report = vault.verify(read_data=True)
        assert report.ok and report.packs_read == 2, report.problems

    def test_recovery_kit_opens_it(self, old_vault, cli, tmp_path):
        """The recovery kit committed beside the fixture still gives access on a new machine."""
        for key in (Path(os.environ["STRONGROOM_HOME"]) / "keys").iterdir():
            key.unlink()
        kit = tmp_path / "kit.txt"
        shutil.copy(FIXTURE / "recovery-kit.txt", kit)
        result = cli("--vault", old_vault, "vault", "key", "import", str(kit))
        assert result.exit_code == 0, result.output
        assert cli("--vault", old_vault, "points", "docs").exit_code == 0

    def test_keeps_writing_format_1_until_upgraded(self, old_vault, tmp_path):
        """A new backup into the format-1 vault writes format-1 blobs (clear headers)."""
        vault = Vault.open(old_vault)
        before = vault.repo.pack_ids_on_storage()
        src = tmp_path / "more"
        src.mkdir()
        (src / "new.bin").write_bytes(os.urandom(600_000))
        vault.protect("files", "more", {"paths": [str(src)]})
        vault.backup("more")
        new_packs = vault.repo.pack_ids_on_storage() - before
        assert new_packs and blob_starts(vault, new_packs) == {b"SRE"}
        assert json.loads(Path(old_vault, "strongroom.json").read_text())["format"] == 1


class TestUpgrade:
    def test_upgrade_then_back_up_and_restore_old_and_new(self, old_vault, cli, tmp_path):
        """After 'vault upgrade' new packs are of the newest format, the seed is kept (the same content
        deduplicates against format-1 data), and old and new points restore byte for byte."""
        dry = cli("--vault", old_vault, "vault", "upgrade", "--dry-run", "--json")
        assert dry.exit_code == 0 and json.loads(dry.stdout)["dry_run"] and json.loads(dry.stdout)["changes"]
        assert json.loads(Path(old_vault, "strongroom.json").read_text())["format"] == 1
        done = cli("--vault", old_vault, "vault", "upgrade")
        assert done.exit_code == 0 and f"Upgraded to format {FORMAT_VERSION}" in done.stdout, done.output
        assert json.loads(Path(old_vault, "strongroom.json").read_text())["format"] == FORMAT_VERSION
        again = cli("--vault", old_vault, "vault", "upgrade")
        assert "nothing to upgrade" in again.stdout

        vault = Vault.open(old_vault)
        assert vault.format == FORMAT_VERSION and vault.settings.format == FORMAT_VERSION
        seed = vault.settings.chunker["seed"]
        assert seed < 2**31  # the format-1 seed, kept
        # the same content as the old points, under another path: only folders are new
        last = max(SOURCE["points"].values(), key=len)
        copy = tmp_path / "copy"
        for rel, what in last.items():
            if what["type"] == "dir":
                (copy / rel).mkdir(parents=True, exist_ok=True)
        restore_all(vault, "docs", vault.point("docs").point_id, tmp_path / "staging")
        shutil.copytree(tmp_path / "staging" / SOURCE["source"].lstrip("/"), copy, symlinks=True, dirs_exist_ok=True)
        before = vault.repo.pack_ids_on_storage()
        vault.protect("files", "copy", {"paths": [str(copy)]})
        point = vault.backup("copy")
        assert point.stats["new_blobs"] == point.stats["dirs"]  # trees only: every chunk was there
        new_packs = vault.repo.pack_ids_on_storage() - before
        assert new_packs and b"SRE" not in blob_starts(vault, new_packs)

        vault = Vault.open(old_vault)
        for point_id, expected in SOURCE["points"].items():
            assert restore_all(vault, "docs", point_id, tmp_path / f"old-{point_id}") == expected
        vault.restore("copy", point.point_id, str(tmp_path / "new"))
        assert describe(tmp_path / "new" / str(copy).lstrip("/")) == last
        report = vault.verify(read_data=True)
        assert report.ok and report.packs_read == 3, report.problems

        # and a blob of new data is written headerless
        (copy / "fresh.bin").write_bytes(os.urandom(300_000))
        before = vault.repo.pack_ids_on_storage()
        vault.backup("copy")
        fresh = vault.repo.pack_ids_on_storage() - before
        assert fresh and b"SRE" not in blob_starts(vault, fresh)
        assert any(e.kind == KIND_DATA for e in vault.repo.index.entries() if e.pack_id in fresh)
