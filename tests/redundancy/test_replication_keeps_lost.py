"""Replication deletes on the secondary only what the primary removed on purpose.

A pack, a point header or an index file deleted from the primary's storage by hand (an accident, as far
as the vault can tell: no vault head records its removal) keeps its copy on the secondary, and the
replicate report and `vault info` say how many such objects there are; `vault repair --apply` then heals
from that copy.  A real prune still reaches the secondary: its expired points' headers at once, their
packs in the next run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from geokit import tree_bytes, write_files
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.security import SoftDelete
from strongroom.repository.names import kind_of
from strongroom.repository.pack import PACK_TARGET_SIZE, pack_name
from strongroom.services.replication import Replicator
from strongroom.storage import open_store
from strongroom.testing import Cli
from strongroom.vault import Vault

KEPT = "missing on the primary kept on the secondary: run 'strongroom vault verify'"


@pytest.fixture(autouse=True)
def no_auto_replication(monkeypatch):
    """Backups do not replicate by themselves: each test replicates when it means to."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")


def _names(store, prefix: str = "") -> set[str]:
    return {n for n in store.list(prefix) if kind_of(n) is not None and not n.startswith(("leases/", "journal/"))}


def _geo(tmp_path: Path, *, soft_delete: bool = True) -> tuple[Vault, str, Path]:
    """A geo vault on local folders with two points of ``docs``, replicated: (vault, secondary URL, source)."""
    secondary_url = str(tmp_path / "secondary")
    vault = Vault.create(str(tmp_path / "primary"), name="geo", redundancy=Redundancy("geo", secondary_url))
    if not soft_delete:
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
    source = write_files(tmp_path / "src", count=5, size=200_000)
    vault.protect("files", "docs", {"paths": [str(source)]})
    vault.backup("docs")
    assert vault.replicate().complete
    return vault, secondary_url, source


def _replicate(url: str) -> tuple[dict, str]:
    """``vault replicate --wait``: its JSON report, and its text line from a second run's view (the same state)."""
    report = json.loads(Cli(url)("vault", "replicate", "--wait", "--json").stdout)
    text = Cli(url)("vault", "replicate", "--wait").stdout
    return report, text


def _restores_exactly(vault: Vault, source: Path, tmp_path: Path, expected: dict[str, dict[str, bytes]]) -> None:
    fresh = vault.reopen()
    points = fresh.points("docs")
    assert {p.point_id for p in points} == set(expected)
    for point in points:
        target = tmp_path / f"restore-{point.short_id}"
        fresh.restore("docs", point.point_id, str(target))
        assert tree_bytes(target / str(source).lstrip("/")) == expected[point.point_id]


def test_a_lost_pack_and_point_header_stay_on_the_secondary_and_heal_from_it(strongroom_home, tmp_path):
    """A pack of the newest point and the header of the oldest, deleted on the primary by hand: replicate
    keeps both on the secondary and says so (report, text, vault info); repair --apply heals both from
    there, every point restores byte for byte, and the next replicate deletes the lost pack's copy, which
    nothing names any more."""
    vault, secondary_url, source = _geo(tmp_path)
    expected = {vault.point("docs").point_id: tree_bytes(source)}
    write_files(source, count=5, size=200_000, seed="second")
    newest = vault.backup("docs")
    expected[newest.point_id] = tree_bytes(source)
    assert vault.replicate().complete
    secondary = open_store(secondary_url, {})
    assert _names(secondary) == _names(vault.store)

    fresh = vault.reopen()
    chunk = fresh.tree(newest).lookup(f"{str(source).lstrip('/')}/f001.bin").chunks[0]
    fresh.index.load()
    pack = pack_name(fresh.repo.index.lookup(chunk).pack_id)
    oldest = min(vault.points("docs"), key=lambda p: p.created)
    header = f"points/{oldest.item_id}/{oldest.point_id}"
    vault.store.delete(pack)
    vault.store.delete(header)

    report, text = _replicate(vault.url)
    assert report["complete"] and report["missing_on_primary"] == 2
    assert f"2 object(s) {KEPT}" in text
    assert secondary.exists(pack) and secondary.exists(header)
    info = json.loads(Cli(vault.url)("vault", "info", "--json").stdout)
    assert info["replication"]["lag"]["missing_on_primary"] == 2
    assert f"2 object(s) {KEPT}" in Cli(vault.url)("vault", "info").stdout

    repaired = json.loads(Cli(vault.url)("vault", "repair", "--apply", "--json").stdout)
    assert repaired["ok"] and repaired["blobs_healed"] > 0 and header in repaired["objects_restored"]
    assert vault.reopen().verify(read_data=True).ok
    _restores_exactly(vault, source, tmp_path, expected)

    report, _ = _replicate(vault.url)
    assert report["complete"] and report["missing_on_primary"] == 0
    assert not secondary.exists(pack)  # the repair's index names it no more: removed on purpose
    assert _names(secondary) == _names(vault.store)
    assert Vault.open(secondary_url).verify(read_data=True).ok


def test_a_lost_index_file_keeps_its_copy_and_every_pack(strongroom_home, tmp_path):
    """An index file deleted on the primary by hand, then a pack it named: neither is deleted on the
    secondary (the pack may be named only there)."""
    vault, secondary_url, _ = _geo(tmp_path)
    secondary = open_store(secondary_url, {})
    index_file = sorted(vault.store.list("index/"))[-1]
    pack = sorted(vault.store.list("data/"))[0]
    vault.store.delete(index_file)
    vault.store.delete(pack)
    report = vault.replicate()
    assert report.complete and report.missing_on_primary == 2 and report.deleted == 0
    assert secondary.exists(index_file) and secondary.exists(pack)
    assert vault.geo.replicator().lag().missing_on_primary == 2


def test_without_the_vault_s_records_nothing_judged_is_deleted(strongroom_home, tmp_path):
    """A replication that cannot read the primary's heads (no key) deletes no point header or pack, only
    what follows the primary as it is (a job record)."""
    vault, secondary_url, _ = _geo(tmp_path)
    secondary = open_store(secondary_url, {})
    header = sorted(vault.store.list("points/"))[0]
    job = sorted(vault.store.list("jobs/"))[0]
    vault.store.delete(header)
    vault.store.delete(job)
    report = Replicator(vault.store, secondary).run()
    assert report.complete and report.missing_on_primary == 1 and report.deleted == 1
    assert secondary.exists(header) and not secondary.exists(job)


def test_a_prune_still_reaches_the_secondary(strongroom_home, tmp_path):
    """Expired points (soft delete off) go from the secondary in the run after the prune, their packs in the
    next; nothing is reported missing, and the secondary then holds what the primary holds."""
    vault, secondary_url, source = _geo(tmp_path, soft_delete=False)
    for i in range(3):
        write_files(source, count=5, size=200_000, seed=str(i))
        vault.backup("docs")
    assert vault.replicate().complete
    secondary = open_store(secondary_url, {})
    packs_before = _names(secondary, "data/")
    vault.prune(keep_last=1, grace=0)
    assert len(_names(vault.store, "points/")) == 1
    assert _names(vault.store, "data/") < packs_before  # the prune freed packs

    first = vault.replicate()
    assert first.complete and first.missing_on_primary == 0 and first.deleted >= 3 and first.deferred_deletes > 0
    assert _names(secondary, "points/") == _names(vault.store, "points/")
    assert _names(secondary, "point-status/") == _names(vault.store, "point-status/")
    second = vault.replicate()
    assert second.complete and second.missing_on_primary == 0 and second.deferred_deletes == 0
    assert _names(secondary, "data/") == _names(vault.store, "data/")
    assert _names(secondary) == _names(vault.store)
    assert Vault.open(secondary_url).verify(read_data=True).ok


def test_a_pack_whose_blobs_points_still_need_is_kept_after_a_repair_without_the_secondary(strongroom_home,
                                                                                            tmp_path):
    """A pack deleted by hand, then a repair that does not use the secondary (the index rewritten without the
    pack's blobs, which the point still needs): replication keeps the secondary's copy, and a repair with
    the secondary then heals from it; only then does the copy go."""
    vault, secondary_url, source = _geo(tmp_path)
    expected = {vault.point("docs").point_id: tree_bytes(source)}
    (source / "large.bin").write_bytes(os.urandom(3 * PACK_TARGET_SIZE))  # packs of file data only
    expected[vault.backup("docs").point_id] = tree_bytes(source)
    assert vault.replicate().complete
    secondary = open_store(secondary_url, {})
    fresh = vault.reopen()
    point = fresh.point("docs")
    tree = fresh.tree(point)
    fresh.index.load()
    with_trees = {fresh.repo.index.lookup(bytes.fromhex(point.root)).pack_id}
    chunks = tree.lookup(f"{str(source).lstrip('/')}/large.bin").chunks
    pack = next(pack_name(e.pack_id) for e in map(fresh.repo.index.lookup, chunks) if e.pack_id not in with_trees)
    vault.store.delete(pack)  # file data only: the point's folder listings stay readable
    alone = json.loads(Cli(vault.url)("vault", "repair", "--apply", "--no-secondary", "--json", expect=None).stdout)
    assert alone["blobs_lost"] > 0

    report = vault.replicate()
    # the pack, and the index files the repair replaced: the secondary's index still names its blobs
    assert report.complete and secondary.exists(pack) and _names(secondary, "index/") > _names(vault.store, "index/")
    assert report.missing_on_primary == 1 + len(_names(secondary, "index/") - _names(vault.store, "index/"))
    healed = json.loads(Cli(vault.url)("vault", "repair", "--apply", "--json").stdout)
    assert healed["blobs_healed"] > 0 and healed["blobs_lost"] == 0
    _restores_exactly(vault, source, tmp_path, expected)
    report = vault.replicate()
    assert report.complete and report.missing_on_primary == 0 and not secondary.exists(pack)
