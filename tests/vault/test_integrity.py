"""Damaged vaults are detected, never silently restored; hostile trees cannot escape."""

from __future__ import annotations

import json
import os

import pytest

from strongroom.models import RecoveryPoint, iso, new_id, utcnow
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from vaultkit import first_backup


def _flip(path: str, offset: int | None = None) -> None:
    data = bytearray(open(path, "rb").read())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x40
    open(path, "wb").write(bytes(data))


def _objects(vault_url: str, prefix: str) -> list[str]:
    out = []
    for root, _, files in os.walk(os.path.join(vault_url, prefix)):
        out += [os.path.join(root, f) for f in files]
    return sorted(out)


@pytest.fixture
def protected(tmp_path, cli):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("alpha " * 1000)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    first_backup(cli, src)
    return src


class TestTampering:
    def test_flipped_byte_in_a_pack_is_found_by_verify_and_restore(self, protected, cli, tmp_path):
        """A damaged pack fails verify --read-data and restore, naming the pack and file."""
        pack = max(_objects(cli.vault_url, "data"), key=os.path.getsize)
        _flip(pack)  # the middle of the biggest pack lies inside big.bin's data
        ok = cli("vault", "verify")  # structure alone can't see inside blobs
        assert ok.exit_code == 0
        bad = cli("vault", "verify", "--read-data", expect=51)
        assert os.path.basename(pack) in bad.output
        assert bad.output.count("big.bin") == 1  # the file that needs the damaged blob
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=50)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
        assert "big.bin" in res.stderr
        restored_big = list((tmp_path / "out").rglob("big.bin"))
        assert restored_big == [], "a file with damaged data must not be left behind"

    def test_flipped_byte_in_an_index_file_is_reported_and_repairable(self, protected, cli, tmp_path):
        """A damaged index file is named by verify and by a restore that still restores
        everything (its packs are read from their trailers); rebuild-index repairs it."""
        index = _objects(cli.vault_url, "index")[0]
        _flip(index)
        bad = cli("vault", "verify", expect=51)
        assert os.path.basename(index) in bad.output
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=1)
        assert os.path.basename(index) in res.stderr
        got = (tmp_path / "out" / str(protected).lstrip("/") / "big.bin").read_bytes()
        assert got == (protected / "big.bin").read_bytes()
        cli("vault", "rebuild-index")
        cli("vault", "verify", "--read-data")
        cli("restore", "data", "--target", str(tmp_path / "out2"))
        got = (tmp_path / "out2" / str(protected).lstrip("/") / "big.bin").read_bytes()
        assert got == (protected / "big.bin").read_bytes()

    def test_flipped_byte_in_a_point_header_is_reported(self, protected, cli, tmp_path):
        """A damaged recovery-point header is named by verify and refused by restore."""
        header = _objects(cli.vault_url, "points")[0]
        _flip(header)
        bad = cli("vault", "verify", expect=51)
        assert os.path.basename(header) in bad.output
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=50)
        assert os.path.basename(header) in res.stderr

    def test_wrong_passphrase_and_missing_key_give_clear_errors(self, tmp_path, cli, strongroom_home):
        """A wrong passphrase exits 32, a missing local key exits 31, each in one line."""
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": "right"})
        cli("items", env={"STRONGROOM_PASSPHRASE": "right"})
        res = cli("items", env={"STRONGROOM_PASSPHRASE": "wrong"}, expect=32)
        assert res.stderr.strip() == f"strongroom: error: Wrong passphrase for vault {_vault_id(cli)}."
        other = Cli2 = type(cli)(str(tmp_path / "v2"))
        other("vault", "create", other.vault_url)
        for key in (strongroom_home / "keys").glob("*.key"):
            key.unlink()
        res = other("items", expect=31)
        assert "local key" in res.stderr and "not found" in res.stderr
        assert res.stderr.count("\n") == 1


def _vault_id(cli) -> str:
    return json.load(open(os.path.join(cli.vault_url, "strongroom.json")))["vault_id"]


class TestHostileTrees:
    """Points crafted by an attacker with write access to the storage."""

    def _craft(self, vault, nodes_json: dict, root: str) -> RecoveryPoint:
        item = vault.protect("files", f"evil{new_id(2)}", {"paths": ["/tmp"]})
        with vault.repo.writer() as writer:
            payload = writer.add(KIND_DATA, b"payload written by a hostile tree\n")
            ids = {}
            for name, entries in nodes_json.items():
                for e in entries:
                    if e.get("chunks") == ["PAYLOAD"]:
                        e["chunks"] = [payload.hex()]
                    if e.get("subtree") in ids:
                        e["subtree"] = ids[e["subtree"]]
                raw = json.dumps({"v": 1, "entries": entries}).encode()
                ids[name] = writer.add(KIND_TREE, raw).hex()
        point = RecoveryPoint(
            point_id=new_id(8), item_id=item.item_id, item_name=item.name, workload="files",
            created=iso(utcnow()), root=ids[root],
        )
        vault.repo.put_document(point.object_name, point.to_dict())
        return point

    @pytest.mark.parametrize("name", ["../escape", "/abs-escape", "..", "a/../../escape"])
    def test_names_with_dotdot_or_slashes_are_refused(self, vault, tmp_path, name):
        """A tree entry named with '..' or '/' is rejected as damage; nothing is written outside."""
        self._craft(vault, {"root": [{"name": name, "type": "file", "chunks": ["PAYLOAD"], "size": 34}]}, "root")
        item = vault.items()[-1].name
        target = tmp_path / "t" / "target"
        with pytest.raises(Exception) as info:
            vault.restore(item, None, str(target))
        assert getattr(info.value, "exit_code", 0) in (50, 52)
        assert not (tmp_path / "t" / "escape").exists()
        assert not os.path.exists("/abs-escape") and not os.path.exists("/escape")

    def test_symlink_then_file_through_it_is_refused(self, vault, tmp_path):
        """A symlink out of the target followed by a file 'through' it cannot write outside."""
        outside = tmp_path / "outside"
        outside.mkdir()
        nodes = {
            "sub": [{"name": "evil", "type": "file", "chunks": ["PAYLOAD"], "size": 34}],
            "root": [
                {"name": "link", "type": "symlink", "target": str(outside)},
                {"name": "link", "type": "dir", "mode": 493, "subtree": "sub"},
            ],
        }
        self._craft(vault, nodes, "root")
        item = vault.items()[-1].name
        with pytest.raises(Exception) as info:
            vault.restore(item, None, str(tmp_path / "target"))
        assert getattr(info.value, "exit_code", 0) in (50, 52)
        assert list(outside.iterdir()) == []

    def test_folder_with_a_malformed_file_entry_is_not_created(self, vault, tmp_path):
        """A folder whose node holds a malformed file entry (its own folders' entries
        intact) is named and not created, nor the folders in it; the rest is restored."""
        nodes = {
            "deep": [{"name": "f", "type": "file", "chunks": ["PAYLOAD"], "size": 34}],
            "bad": [{"name": "inner", "type": "dir", "mode": 493, "subtree": "deep"},
                    {"name": "broken", "type": "file", "size": -1}],
            "good": [{"name": "f", "type": "file", "chunks": ["PAYLOAD"], "size": 34}],
            "root": [{"name": "bad", "type": "dir", "mode": 493, "subtree": "bad"},
                     {"name": "good", "type": "dir", "mode": 493, "subtree": "good"}],
        }
        self._craft(vault, nodes, "root")
        item = vault.items()[-1].name
        target = tmp_path / "target"
        with pytest.raises(Exception) as info:
            vault.restore(item, None, str(target))
        assert getattr(info.value, "exit_code", 0) == 50 and "bad" in str(info.value)
        assert sorted(os.listdir(target)) == ["good"]
        assert (target / "good" / "f").read_bytes() == b"payload written by a hostile tree\n"

    def test_hardlink_to_outside_is_refused(self, vault, tmp_path):
        """A hardlink whose target path leaves the target folder is refused."""
        secret = tmp_path / "secret.txt"
        secret.write_text("do not link me")
        nodes = {"root": [
            {"name": "a", "type": "file", "chunks": ["PAYLOAD"], "size": 34, "nlink": 2},
            {"name": "b", "type": "hardlink", "target": "../secret.txt", "chunks": ["PAYLOAD"], "size": 34},
        ]}
        self._craft(vault, nodes, "root")
        item = vault.items()[-1].name
        target = tmp_path / "target"
        try:
            vault.restore(item, None, str(target))
        except Exception as exc:
            assert getattr(exc, "exit_code", 0) in (50, 52)
        assert os.stat(secret).st_nlink == 1
        assert not (target / "b").exists() or (target / "b").read_bytes() != b"do not link me"


class TestDamagedDocuments:
    def test_damaged_newest_settings_falls_back_to_the_previous_valid_one(self, protected, cli):
        """The newest valid settings document wins; a damaged newer one does not lock the vault."""
        names = _objects(cli.vault_url, "settings")
        newest = os.path.join(cli.vault_url, "settings", "99999999T999999999999Z-ffffffff")
        with open(names[-1], "rb") as src, open(newest, "wb") as dst:
            dst.write(src.read())  # a copy under another name fails authentication
        assert "data" in cli("items").stdout

    def test_newer_fields_in_documents_are_ignored(self, protected, cli):
        """A point header with a field this version does not know still reads."""
        from strongroom.models import RecoveryPoint

        header = json.loads(cli("points", "data", "--json").stdout)[0]
        header.pop("id")
        header["field_from_the_future"] = 42
        assert RecoveryPoint.from_dict(header).point_id == header["point_id"]
