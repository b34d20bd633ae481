"""A vault on a faulty store: transient errors are ridden out, permanent ones fail clearly
and leave the vault sound, and damaged reads are reported, never restored as data."""

from __future__ import annotations

import os
import random

import pytest

from strongroom.errors import IntegrityError, StorageError
from strongroom.storage import FaultPlan
from strongroom.testing import assert_same_tree, make_tree
from strongroom.vault import Vault


def _inside(target, source) -> str:
    return os.path.join(str(target), os.path.abspath(str(source)).lstrip("/"))


def _change(source: str, rng: random.Random, round_no: int) -> None:
    """A small day of changes: a new file, a rewritten file, sometimes a deletion."""
    with open(os.path.join(source, f"new-{round_no:02d}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.randrange(1, 700_000)))
    with open(os.path.join(source, "docs", f"note-{rng.randrange(20):03d}.txt"), "w") as f:
        f.write(f"rewritten in round {round_no}\n" * rng.randrange(1, 500))
    if round_no % 5 == 4:
        os.unlink(os.path.join(source, f"new-{round_no - 2:02d}.bin"))


@pytest.fixture
def source(tmp_path) -> str:
    return make_tree(str(tmp_path / "source"), big_mib=2)


class TestTransientFaults:
    def test_twenty_backups_and_restores_with_five_percent_transient_errors(
        self, strongroom_faults, vault_url, source, tmp_path
    ):
        """With 5% of all operations dropped, 20 backups and restores in a row succeed byte for byte."""
        stores = strongroom_faults(FaultPlan(seed=2024, transient=0.05))
        vault = Vault.create(vault_url, name="flaky")
        vault.protect("files", "src", {"paths": [source]})
        rng = random.Random(7)
        for round_no in range(20):
            _change(source, rng, round_no)
            point = vault.backup("src")
            target = tmp_path / f"restore-{round_no}"
            vault.restore("src", point.point_id, str(target))
            assert_same_tree(source, _inside(target, source))
        assert len(vault.points("src")) == 20
        injected = sum(s.injected["transient"] for s in stores)
        assert injected >= 20, f"only {injected} faults were injected"
        report = Vault.open(vault_url).verify(read_data=True)
        assert report.ok, report.problems

    def test_cut_off_uploads_and_slow_calls_are_ridden_out(self, strongroom_faults, vault_url, source, tmp_path):
        """Uploads cut off half-way (10%) and slow calls are retried; the vault stays whole.
        Backups go on (5 at least, 30 at most) until 3 uploads have been cut off: which puts
        are cut depends on their names, which are random (5 backups make about 50 puts, and
        once in a few hundred runs none of them was cut)."""
        stores = strongroom_faults(FaultPlan(seed=9, truncate=0.1, delay=0.05, delay_seconds=0.01))
        vault = Vault.create(vault_url, name="cut")
        vault.protect("files", "src", {"paths": [source]})
        assert stores, "the vault was not opened on a faulty store"
        rng = random.Random(3)
        round_no = 0
        while round_no < 5 or (round_no < 30 and sum(s.injected["truncate"] for s in stores) < 3):
            _change(source, rng, round_no)
            vault.backup("src")
            round_no += 1
        assert sum(s.injected["truncate"] for s in stores) >= 3
        target = tmp_path / "restore"
        Vault.open(vault_url).restore("src", None, str(target))
        assert_same_tree(source, _inside(target, source))
        assert Vault.open(vault_url).verify(read_data=True).ok


class TestPermanentFaults:
    @pytest.mark.parametrize("prefix", ["data/", "index/", "points/"])
    def test_backup_fails_clearly_and_the_vault_still_verifies(
        self, strongroom_faults, vault_url, source, tmp_path, prefix
    ):
        """A storage that refuses writes of packs, index files or headers fails the backup with a
        clear message; the vault verifies clean, the earlier point restores, and the next backup works."""
        vault = Vault.create(vault_url, name="perm")
        vault.protect("files", "src", {"paths": [source]})
        first = vault.backup("src")
        _change(source, random.Random(1), 0)

        strongroom_faults(FaultPlan(seed=1, permanent=1.0, operations={"put"}, prefixes=(prefix,)))
        broken = Vault.open(vault_url)
        with pytest.raises(StorageError) as info:
            broken.backup("src")
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("Storage error: injected permanent fault: put ") and prefix in message

        strongroom_faults(FaultPlan())  # the storage is healthy again
        healthy = Vault.open(vault_url)
        report = healthy.verify(read_data=True)
        assert report.ok, report.problems
        assert [p.point_id for p in healthy.points("src")] == [first.point_id]
        target = tmp_path / "first"
        healthy.restore("src", first.point_id, str(target))
        assert healthy.backup("src").stats["files"] > 0
        assert healthy.verify(read_data=True).ok

    def test_cli_prints_one_line_and_the_storage_exit_code(self, strongroom_faults, cli, vault_url, source):
        """Through the CLI a refused upload is one error line and exit code 20."""
        cli("vault", "create", vault_url)
        cli("protect", "files", "src", "--path", source)
        strongroom_faults(FaultPlan(permanent=1.0, operations={"put"}, prefixes=("data/",)))
        result = cli("backup", "src", expect=20)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("strongroom: error: Storage error: injected permanent fault: put 'data/")


class TestBitFlips:
    def test_flipped_bits_in_packs_are_reported_and_never_restored(
        self, strongroom_faults, vault_url, source, tmp_path
    ):
        """Every read of a pack coming back with a flipped bit: verify reports it, restore refuses it."""
        vault = Vault.create(vault_url, name="flips")
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        stores = strongroom_faults(FaultPlan(seed=4, bitflip=1.0, prefixes=("data/",)))
        damaged = Vault.open(vault_url)
        report = damaged.verify(read_data=True)
        assert not report.ok
        assert all("data/" in p for p in report.problems)
        target = tmp_path / "restore"
        with pytest.raises(IntegrityError):
            damaged.restore("src", None, str(target))
        assert sum(s.injected["bitflip"] for s in stores) >= 1
        restored = _inside(target, source)
        for dirpath, _, files in os.walk(restored):
            for name in files:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as got, open(os.path.join(source, os.path.relpath(path, restored)), "rb") as want:
                    assert got.read() == want.read(), f"{path} was restored with damaged bytes"

    def test_occasional_flips_never_reach_the_restored_files(self, strongroom_faults, vault_url, source, tmp_path):
        """With half the ranged reads flipped (trees and contents), the restore reports damage and
        every file it leaves behind is exact."""
        vault = Vault.create(vault_url, name="some-flips")
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        strongroom_faults(FaultPlan(seed=8, bitflip=0.5, operations={"get_range"}, prefixes=("data/",)))
        target = tmp_path / "restore"
        with pytest.raises(IntegrityError, match="damaged"):
            Vault.open(vault_url).restore("src", None, str(target))
        restored = _inside(target, source)
        for dirpath, _, files in os.walk(restored):
            for name in files:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as got, open(os.path.join(source, os.path.relpath(path, restored)), "rb") as want:
                    assert got.read() == want.read()
