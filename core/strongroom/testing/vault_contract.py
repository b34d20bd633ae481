"""The vault contract as an abstract test class: a whole vault on one storage backend.

Subclass :class:`VaultContract` and give it a ``vault_location`` fixture returning a
:class:`~strongroom.testing.VaultLocation` (an empty place for a new vault, and the
storage options to reach it); the plugin's ``strongroom_*_location`` fixtures make one
for each built-in backend::

    from strongroom.testing import VaultContract

    class TestVaultOnMyStorage(VaultContract):
        @pytest.fixture
        def vault_location(self, tmp_path):
            return VaultLocation("mine", f"myproto://{tmp_path}/vault", {"token": "..."})

It backs up a sample tree, restores it byte for byte (whole and one file), checks
that an unchanged second backup stores almost nothing, that ``verify --read-data``
is clean, that a damaged pack is reported by verify and never restored as data, that
the vault opens again from its URL alone, and drives the same through the CLI.
"""

from __future__ import annotations

import json
import os

import pytest

from ..errors import IntegrityError
from .fstree import assert_same_tree, tree_digest
from .sampletree import make_tree

__all__ = ["VaultContract"]


def _inside(target: str, source: str) -> str:
    """Where absolute ``source`` lands inside a restore ``target``."""
    return os.path.join(target, os.path.abspath(source).lstrip("/"))


class VaultContract:
    """Behaviour every storage backend must give a vault; subclasses provide ``vault_location``."""

    @pytest.fixture
    def contract_source(self, tmp_path) -> str:
        return make_tree(str(tmp_path / "source"))

    @pytest.fixture
    def contract_vault(self, vault_location, strongroom_isolated_home):
        from ..vault import Vault

        return Vault.create(vault_location.url, name="contract",
                            storage_options=dict(vault_location.storage_options))

    @pytest.fixture
    def backed_up(self, contract_vault, contract_source):
        contract_vault.protect("files", "tree", {"paths": [contract_source]})
        point = contract_vault.backup("tree")
        return contract_vault, point, contract_source

    def test_backup_restores_byte_for_byte(self, backed_up, tmp_path):
        """A backed-up tree restores with the same names, types, modes, sizes and bytes."""
        vault, point, source = backed_up
        target = str(tmp_path / "restore")
        vault.restore("tree", point.point_id, target)
        assert_same_tree(source, _inside(target, source))

    def test_item_level_restore_of_one_file(self, backed_up, tmp_path):
        """Restoring one path writes that file, byte for byte, and nothing else."""
        vault, point, source = backed_up
        wanted = os.path.abspath(source).lstrip("/") + "/docs/deep/deeper/random.dat"
        target = tmp_path / "one"
        vault.restore("tree", None, str(target), [wanted])
        written = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
        assert written == {wanted}
        with open(os.path.join(source, "docs/deep/deeper/random.dat"), "rb") as f:
            assert (target / wanted).read_bytes() == f.read()

    def test_unchanged_second_backup_stores_almost_nothing(self, backed_up):
        """Backing up the same tree again reads no content and adds no chunk."""
        vault, first, _ = backed_up
        second = vault.backup("tree")
        assert second.stats["bytes_read"] == 0
        assert second.stats["new_bytes"] < 64 * 1024
        assert [p.point_id for p in vault.points("tree")] == [first.point_id, second.point_id]

    def test_verify_with_data_is_clean(self, backed_up):
        """verify --read-data reads every pack and finds nothing wrong."""
        vault, _, _ = backed_up
        report = vault.verify(read_data=True)
        assert report.ok, report.problems
        assert report.packs_read >= 1 and report.bytes_read > 3 * 1024 * 1024

    def test_reopened_from_its_url_it_restores(self, backed_up, vault_location, tmp_path):
        """A second client opening the URL with the same options sees the point and restores it."""
        from ..vault import Vault

        _, point, source = backed_up
        again = Vault.open(vault_location.url, storage_options=dict(vault_location.storage_options))
        assert [p.point_id for p in again.points("tree")] == [point.point_id]
        target = str(tmp_path / "again")
        again.restore("tree", None, target)
        assert_same_tree(source, _inside(target, source))

    def test_damaged_pack_is_reported_and_never_restored(self, backed_up, tmp_path):
        """A flipped byte in a pack fails verify, fails the restore, and no wrong bytes are written."""
        vault, _, source = backed_up
        store = vault.store
        packs = sorted(store.list("data/"), key=store.size)
        victim = packs[-1]  # the biggest: it holds file content
        data = bytearray(store.get(victim))
        data[len(data) // 3] ^= 0x40
        store.put(victim, bytes(data))
        report = vault.verify(read_data=True)
        assert not report.ok
        assert any(victim in problem for problem in report.problems), report.problems
        target = str(tmp_path / "damaged")
        with pytest.raises(IntegrityError):
            vault.restore("tree", None, target)
        expected = tree_digest(source)
        restored_root = _inside(target, source)
        restored = tree_digest(restored_root) if os.path.isdir(restored_root) else {}
        for rel, record in restored.items():
            if record[0] == "file":
                assert record == expected[rel], f"{rel} was restored with wrong bytes"

    def test_cli_round_trip(self, vault_location, strongroom_cli, contract_source, tmp_path):
        """The CLI creates the vault, backs up, lists, verifies and restores on this storage."""
        cli = strongroom_cli(vault_location)
        cli("vault", "create", vault_location.url, "--name", "cli")
        cli("protect", "files", "web", "--path", contract_source)
        point = json.loads(cli("backup", "web", "--json").stdout)
        points = json.loads(cli("points", "web", "--json").stdout)
        assert [p["id"] for p in points] == [point["id"]]
        cli("vault", "verify", "--read-data")
        target = str(tmp_path / "cli-restore")
        cli("restore", "web", "--target", target)
        assert_same_tree(contract_source, _inside(target, contract_source))
