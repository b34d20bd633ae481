"""Healing a geo vault from its secondary: `vault verify --read-data` says what the secondary holds intact,
`vault repair --apply` heals blobs and copies back lost documents from it, and never rolls the vault back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from geokit import UNREACHABLE, geo_vault, geo_vault_out_of_reach, tree_bytes, two_servers, write_files  # noqa: F401
from strongroom import vault as vault_module
from strongroom.errors import StorageError
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.security import SoftDelete
from strongroom.repository.pack import pack_name
from strongroom.storage import open_store
from strongroom.testing import Cli
from strongroom.vault import Vault

HEALABLE = "healable from the secondary: run 'strongroom vault repair --apply'"


@pytest.fixture(autouse=True)
def no_auto_replication(monkeypatch):
    """Backups do not replicate by themselves: each test replicates when it means to."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")


@pytest.fixture
def geo(tmp_path):
    """A geo vault on local folders, one item backed up and replicated: (vault, secondary folder, source)."""
    vault = Vault.create(str(tmp_path / "primary"), name="geo",
                         redundancy=Redundancy("geo", str(tmp_path / "secondary")))
    source = write_files(tmp_path / "src", count=6, size=300_000)
    vault.protect("files", "docs", {"paths": [str(source)]})
    vault.backup("docs")
    assert vault.replicate().complete
    return vault, tmp_path / "secondary", source


def entry_of(vault: Vault, source: Path, name: str):
    """The index entry of the first chunk of file ``name`` of the latest point."""
    fresh = vault.reopen()
    point = fresh.point("docs")
    chunk = fresh.tree(point).lookup(f"{str(source).lstrip('/')}/{name}").chunks[0]
    fresh.index.load()
    return fresh.repo.index.lookup(chunk)


def flip(store, entry) -> None:
    """Flip one bit in the middle of one blob's sealed bytes in its pack."""
    name = pack_name(entry.pack_id)
    data = bytearray(store.get(name))
    data[entry.offset + entry.length // 2] ^= 0x10
    store.put(name, bytes(data))


def verify(url: str, *args: str, expect: int | None = 0) -> dict:
    return json.loads(Cli(url)("vault", "verify", "--read-data", "--json", *args, expect=expect).stdout)


def repair(url: str, *args: str, expect: int | None = 0) -> dict:
    return json.loads(Cli(url)("vault", "repair", "--json", *args, expect=expect).stdout)


def restores_exactly(vault: Vault, source: Path, tmp_path: Path, expected: dict[str, bytes] | None = None) -> None:
    """Every point of ``docs`` restores to the source's bytes (or ``expected``), file for file."""
    fresh = vault.reopen()
    points = fresh.points("docs")
    assert points
    for point in points:
        target = tmp_path / f"restore-{point.short_id}"
        fresh.restore("docs", point.point_id, str(target))
        assert tree_bytes(target / str(source).lstrip("/")) == (expected or tree_bytes(source))


def objects(store, prefix: str = "") -> dict[str, bytes]:
    return {name: store.get(name) for name in sorted(store.list(prefix))}


class TestHealBlobs:
    def test_a_damaged_pack_is_named_healable_and_heals(self, geo, tmp_path):
        """A blob flipped on the primary: verify names it healable from the secondary, a dry run changes
        nothing, repair --apply heals it, verify is then clean and every point restores byte for byte."""
        vault, _, source = geo
        entry = entry_of(vault, source, "f002.bin")
        flip(vault.store, entry)
        report = verify(vault.url, expect=51)
        [problem] = [p for p in report["problems"] if entry.blob_id.hex()[:16] in p]
        assert "no intact copy" in problem and HEALABLE in problem
        before = objects(vault.store)
        dry = repair(vault.url)
        assert dry["dry_run"] and dry["blobs_healed"] == 1 and dry["ok"] and dry["secondary"] == vault.redundancy.secondary
        assert objects(vault.store).keys() - {n for n in objects(vault.store) if n.startswith("jobs/")} \
            == before.keys() - {n for n in before if n.startswith("jobs/")}
        done = repair(vault.url, "--apply")
        assert done["blobs_healed"] == 1 and done["blobs_lost"] == 0 and done["ok"]
        assert done["moved_aside"] == [pack_name(entry.pack_id)]
        assert verify(vault.url)["ok"]
        restores_exactly(vault, source, tmp_path)

    def test_a_deleted_pack_is_named_healable_and_heals(self, geo, tmp_path):
        """A pack deleted from the primary: verify says the secondary holds its blobs, repair --apply heals every
        blob a point needs, in the text report too, and every point restores byte for byte."""
        vault, _, source = geo
        entry = entry_of(vault, source, "f004.bin")
        vault.store.delete(pack_name(entry.pack_id))
        report = verify(vault.url, expect=51)
        [problem] = [p for p in report["problems"] if p.startswith(f"{pack_name(entry.pack_id)}: named by the index")]
        assert "missing from storage" in problem and HEALABLE in problem
        result = Cli(vault.url)("vault", "repair", "--apply")
        healed = [line for line in result.stdout.splitlines() if line.startswith("Healed ")]
        assert healed and healed[0].endswith("blob(s) from the secondary.")
        assert verify(vault.url)["ok"]
        restores_exactly(vault, source, tmp_path)

    def test_a_blob_damaged_on_both_sides_stays_lost(self, geo, tmp_path):
        """The same blob flipped on both sides: verify says the secondary holds no intact copy either, repair
        heals nothing, names the file lost and exits 53; no other file is touched."""
        vault, secondary, source = geo
        entry = entry_of(vault, source, "f001.bin")
        flip(vault.store, entry)
        flip(open_store(str(secondary)), entry)
        [problem] = [p for p in verify(vault.url, expect=51)["problems"] if entry.blob_id.hex()[:16] in p]
        assert "the secondary holds no intact copy either" in problem and HEALABLE not in problem
        done = repair(vault.url, "--apply", expect=53)
        assert done["blobs_healed"] == 0 and done["blobs_lost"] == 1
        assert [loss["path"].rsplit("/", 1)[-1] for loss in done["lost_files"]] == ["f001.bin"]
        target = tmp_path / "partial"
        vault.reopen().restore("docs", None, str(target), [f"{str(source).lstrip('/')}/f000.bin"])
        assert (target / str(source).lstrip("/") / "f000.bin").read_bytes() == (source / "f000.bin").read_bytes()

    def test_no_secondary_repairs_from_the_vault_alone(self, geo):
        """--no-secondary: the secondary is not asked; the damaged blob is lost, as in a vault without one."""
        vault, _, source = geo
        flip(vault.store, entry_of(vault, source, "f003.bin"))
        dry = repair(vault.url, "--no-secondary", expect=53)
        assert dry["blobs_healed"] == 0 and dry["blobs_lost"] == 1 and dry["secondary"] is None


class TestUnreachableSecondary:
    def test_repair_does_the_local_part_and_says_so_in_one_line(self, geo, tmp_path):
        """The secondary's folder gone: repair --apply moves the damage aside and names the loss, with one note
        line saying the secondary could not be reached; once it is back, a second repair heals the loss."""
        vault, secondary, source = geo
        entry = entry_of(vault, source, "f005.bin")
        flip(vault.store, entry)
        os.rename(secondary, tmp_path / "away")
        result = Cli(vault.url)("vault", "repair", "--apply", expect=53)
        notes = [line for line in result.stderr.splitlines() if "could not be reached" in line]
        assert len(notes) == 1 and notes[0].startswith(f"note: the geo secondary {secondary}")
        assert "Traceback" not in result.output
        assert f"quarantine/{pack_name(entry.pack_id)}" in result.stdout
        os.rename(tmp_path / "away", secondary)
        done = repair(vault.url, "--apply")
        assert done["blobs_healed"] == 1 and done["ok"] and not done["secondary_error"]
        restores_exactly(vault, source, tmp_path)

    def test_verify_notes_an_unreachable_secondary(self, geo, tmp_path):
        """verify --read-data with the secondary gone: a clean vault does not ask it (no note); with damage, the
        damage is reported as without one, and a note says the secondary could not be reached."""
        vault, secondary, source = geo
        os.rename(secondary, tmp_path / "away")
        clean = verify(vault.url)
        assert clean["ok"] and not [n for n in clean["notes"] if "secondary" in n]
        flip(vault.store, entry_of(vault, source, "f000.bin"))
        report = verify(vault.url, expect=51)
        assert not any(HEALABLE in p for p in report["problems"])
        assert [n for n in report["notes"] if "could not be reached" in n]


class PacksFail:
    """A store whose pack reads fail (a secondary that breaks down half-way through a repair)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        if name.startswith("data/"):
            raise StorageError(message=f"{name}: connection reset by peer")
        return self.inner.get_range(name, offset, length)

    def get(self, name: str) -> bytes:
        return self.get_range(name, 0, 1 << 40) if name.startswith("data/") else self.inner.get(name)


class TestSecondaryFailing:
    def test_a_secondary_failing_half_way_stops_the_repair_before_it_rewrites_anything(self, geo, monkeypatch, tmp_path):
        """The secondary answers, then its pack reads fail: the repair stops with one storage error line (exit 20)
        before moving the damaged pack aside or rewriting the index, and a later repair heals."""
        vault, secondary, source = geo
        entry = entry_of(vault, source, "f002.bin")
        flip(vault.store, entry)
        real = vault_module.open_store

        def open_store_failing(url, *args, **kwargs):
            store = real(url, *args, **kwargs)
            return PacksFail(store) if url == str(secondary) else store
        monkeypatch.setattr(vault_module, "open_store", open_store_failing)
        packs, index = objects(vault.store, "data/"), objects(vault.store, "index/")
        result = Cli(vault.url)("vault", "repair", "--apply", expect=20)
        assert "the geo secondary" in result.stderr and "--no-secondary" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert objects(vault.store, "data/") == packs and objects(vault.store, "index/") == index
        monkeypatch.setattr(vault_module, "open_store", real)
        assert repair(vault.url, "--apply")["blobs_healed"] == 1
        restores_exactly(vault, source, tmp_path)


class TestCopyBack:
    def test_a_deleted_point_header_comes_back(self, geo, tmp_path):
        """A point header deleted from the primary (the vault head still lists it): verify says it is healable,
        a dry run writes nothing, repair --apply copies it back and the point restores byte for byte."""
        vault, _, source = geo
        point = vault.point("docs")
        name = f"points/{point.item_id}/{point.point_id}"
        vault.store.delete(name)
        report = verify(vault.url, expect=None)
        assert [n for n in report["notes"] if n.startswith(name) and HEALABLE in n]
        dry = repair(vault.url)
        assert dry["objects_restored"] == [name] and not dry["rollback_open"]
        text = Cli(vault.url)("vault", "repair").stdout
        assert f"Would restore {name} from the secondary." in text.splitlines()
        assert not vault.store.exists(name)
        done = repair(vault.url, "--apply")
        assert done["objects_restored"] == [name] and done["ok"] and not done["rollback_open"]
        assert [p.point_id for p in vault.reopen().points("docs")] == [point.point_id]
        assert verify(vault.url)["ok"]
        restores_exactly(vault, source, tmp_path)

    def test_a_damaged_point_header_is_replaced_by_its_intact_copy(self, geo, tmp_path):
        """A point header damaged on the primary is no lost point: its intact copy replaces it, the damaged
        bytes are kept under quarantine/."""
        vault, _, source = geo
        point = vault.point("docs")
        name = f"points/{point.item_id}/{point.point_id}"
        data = bytearray(vault.store.get(name))
        data[len(data) // 2] ^= 0x01
        vault.store.put(name, bytes(data))
        assert verify(vault.url, expect=51)["problems"][0].startswith(name)
        assert HEALABLE in [p for p in verify(vault.url, expect=51)["problems"] if p.startswith(name)][0]
        done = repair(vault.url, "--apply")
        assert done["objects_restored"] == [name] and not done["lost_points"] and done["ok"]
        assert vault.store.get(f"quarantine/{name}") == bytes(data)
        assert verify(vault.url)["ok"]
        restores_exactly(vault, source, tmp_path)

    def test_a_damaged_item_version_comes_back(self, geo, tmp_path):
        """The item's document damaged on the primary (the item cannot be read): repair --apply replaces it with
        the secondary's intact copy, and the item and its point read and restore again."""
        vault, _, source = geo
        [name] = vault.store.list("items/")
        data = bytearray(vault.store.get(name))
        data[len(data) // 2] ^= 0x01
        vault.store.put(name, bytes(data))
        assert Cli(vault.url)("points", "docs", expect=None).exit_code != 0
        done = repair(vault.url, "--apply")
        assert done["objects_restored"] == [name] and done["ok"]
        assert any(line.startswith(name) and "restored from the intact copy on the secondary" in line
                   for line in done["damage"])
        assert vault.store.get(f"quarantine/{name}") == bytes(data)
        assert [item.name for item in vault.reopen().items()] == ["docs"]
        restores_exactly(vault, source, tmp_path)

    def test_a_stale_secondary_never_rolls_the_vault_back(self, geo, tmp_path):
        """Backups and a prune since the last replication: repair --apply (healing a pack from the secondary)
        brings back neither the pruned point nor older versions, changes no newer object, and a newest point
        header the secondary never had stays a finding rather than being replaced by anything older."""
        vault, secondary, source = geo
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
        first = vault.point("docs")
        (source / "late.txt").write_text("after the replication")
        second = vault.backup("docs")
        (source / "later.txt").write_text("later still")
        third = vault.backup("docs")
        vault.prune(keep_last=2, grace=0)  # the first point: gone here, still on the stale secondary
        assert [p.point_id for p in vault.points("docs")] == [second.point_id, third.point_id]
        assert Vault.open(str(secondary)).point("docs").point_id == first.point_id
        flip(vault.store, entry_of(vault, source, "f002.bin"))  # a blob every point needs, healed from the secondary
        newest = f"points/{third.item_id}/{third.point_id}"
        vault.store.delete(newest)  # the secondary never had it
        documents = ("points/", "point-status/", "items/", "policies/", "settings/")
        before = {n: b for prefix in documents for n, b in objects(vault.store, prefix).items()}
        done = repair(vault.url, "--apply", expect=54)  # what went backwards and stays so: the rollback exit
        assert done["blobs_healed"] == 1 and done["objects_restored"] == []
        assert newest in done["rollback_open"]
        after = {n: b for prefix in documents for n, b in objects(vault.store, prefix).items()}
        assert after == before
        assert [p.point_id for p in vault.reopen().points("docs")] == [second.point_id]
        expected = tree_bytes(source)
        del expected["later.txt"]
        restores_exactly(vault, source, tmp_path, expected)


class TestOnTwoServers:
    def test_a_deleted_pack_heals_from_the_secondary_server(self, strongroom_home, two_servers, tmp_path):
        """Two SeaweedFS servers with different credentials: a pack deleted from the primary bucket is named
        healable, repair --apply heals it from the secondary bucket, and the point restores byte for byte."""
        vault, _ = geo_vault(strongroom_home, *two_servers)
        source = write_files(tmp_path / "src", count=6, size=200_000)
        vault.protect("files", "docs", {"paths": [str(source)]})
        vault.backup("docs")
        assert vault.replicate().complete
        entry = entry_of(vault, source, "f003.bin")
        vault.store.delete(pack_name(entry.pack_id))
        problems = verify(vault.url, expect=51)["problems"]
        [problem] = [p for p in problems if p.startswith(f"{pack_name(entry.pack_id)}: named by the index")]
        assert HEALABLE in problem
        done = repair(vault.url, "--apply")
        assert done["blobs_healed"] >= 1 and done["ok"]
        assert verify(vault.url)["ok"]
        restores_exactly(vault, source, tmp_path)

    def test_a_secondary_server_out_of_reach_is_one_note_line(self, strongroom_home, two_servers, tmp_path):
        """The secondary's endpoint refuses connections: repair --apply repairs what it can here (the damaged
        pack moved aside, the loss named, exit 53) and says in one line that the secondary could not be reached."""
        primary_server, _ = two_servers
        vault = geo_vault_out_of_reach(strongroom_home, primary_server)
        source = write_files(tmp_path / "src", count=3, size=100_000)
        vault.protect("files", "docs", {"paths": [str(source)]})
        vault.backup("docs")
        entry = entry_of(vault, source, "f001.bin")
        flip(vault.store, entry)
        result = Cli(vault.url)("vault", "repair", "--apply", expect=53)
        notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
        assert len(notes) == 1 and f"the geo secondary {UNREACHABLE} could not be reached" in notes[0]
        assert "Traceback" not in result.output
        assert f"quarantine/{pack_name(entry.pack_id)}" in result.stdout
