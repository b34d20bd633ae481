"""`verify --read-data-subset`: N/M splits the packs into M stable groups; N% goes round
every pack over repeated runs (a cursor in the client's home folder)."""

from __future__ import annotations

import math
import re

import pytest
from repairkit import damage

from strongroom.engine.subset import Subset
from strongroom.repository.envelope import KIND_DATA
from strongroom.repository.pack import read_trailer
from strongroom.testing import Cli
from strongroom.vault import Vault

PACK = re.compile(r"data/[0-9a-f]{2}/([0-9a-f]{32})")


@pytest.fixture
def every_pack_damaged(tmp_path, vault_url):
    """A vault of seven packs, each with one damaged data blob (and sound trees)."""
    source = tmp_path / "src"
    source.mkdir()
    vault = Vault.create(vault_url, name="many")
    vault.protect("files", "data", {"paths": [str(source)]})
    for i in range(7):
        (source / f"file-{i}.txt").write_text(f"content of backup {i}\n" * 200)
        vault.backup("data")
    packs = sorted(vault.repo.pack_ids_on_storage())
    assert len(packs) == 7
    for pack_id in packs:
        entry = next(e for e in read_trailer(vault.store, pack_id, vault.repo.envelope) if e.kind == KIND_DATA)
        damage(vault.store, entry)
    return vault, set(packs)


def _found(vault: Vault, subset: str) -> set[str]:
    report = vault.reopen().verify(subset=subset)
    assert report.packs_read == len({m for p in report.problems for m in PACK.findall(p)})
    return {m for p in report.problems for m in PACK.findall(p)}


class TestSubsets:
    def test_n_of_m_groups_split_the_packs(self, every_pack_damaged):
        """1/3, 2/3 and 3/3 read disjoint groups that together are every pack, the same each time."""
        vault, packs = every_pack_damaged
        groups = [_found(vault, f"{n}/3") for n in (1, 2, 3)]
        assert set().union(*groups) == packs
        assert sum(len(g) for g in groups) == len(packs)
        assert _found(vault, "2/3") == groups[1]

    def test_percent_runs_go_round_every_pack(self, every_pack_damaged, vault_url):
        """Three runs of 34% read about a third each, never the same pack twice, and together all."""
        vault, packs = every_pack_damaged
        runs = [_found(vault, "34%") for _ in range(3)]
        assert [len(r) for r in runs[:2]] == [math.ceil(7 * 0.34)] * 2
        assert not runs[0] & runs[1] and set().union(*runs) == packs
        res = Cli(vault_url)("vault", "verify", "--read-data-subset", "34%", expect=51)
        assert "note: read-data-subset 34%: 3 of 7 pack(s), after pack" in res.stdout

    def test_structure_is_checked_in_full_and_bad_subsets_are_refused(self, every_pack_damaged, vault_url):
        """A subset still walks every tree; a malformed subset is one line with exit code 3."""
        vault, packs = every_pack_damaged
        report = vault.reopen().verify(subset="1/7")
        assert report.trees == vault.reopen().verify().trees
        for bad in ("0/3", "4/3", "0%", "150%", "half"):
            res = Cli(vault_url)("vault", "verify", "--read-data-subset", bad, expect=3)
            assert res.stderr.count("\n") == 1 and "--read-data-subset" in res.stderr


class TestSubsetSelection:
    def test_a_cursor_wraps_around(self):
        """After the last pack the selection starts again at the first."""
        ids = [f"{i:032x}" for i in range(5)]
        chosen, cursor = Subset.parse("40%").select(ids, ids[3])
        assert chosen == [ids[4], ids[0]] and cursor == ids[0]
