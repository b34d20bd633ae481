"""Prune frees space: expiring half the points of a vault with changing data shrinks it by
their unique data, and every remaining point restores byte for byte and verifies clean."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from prunekit import assert_all_points_restore, pack_bytes, soft_delete_off
from strongroom.vault import Vault
from vaultkit import Clock, digest_tree

MIB = 1 << 20


@pytest.fixture
def changing(tmp_path):
    """Ten points of one item: a fixed 1 MiB base plus one new 1 MiB file each time (the
    previous one removed).  The first five carry a retain-until one day ahead; the last
    five have none (no policy: kept)."""
    clock = Clock()
    url = str(tmp_path / "vault")
    vault = Vault.create(url)
    soft_delete_off(vault)  # about the space GC frees: expired points go at once
    vault.clock = clock
    src = tmp_path / "src"
    src.mkdir()
    (src / "base-1.bin").write_bytes(os.urandom(MIB // 2))
    (src / "base-2.bin").write_bytes(os.urandom(MIB // 2))
    vault.protect("files", "data", {"paths": [str(src)]})
    snapshots = {}
    for i in range(10):
        if i:
            (src / f"gen-{i - 1}.bin").unlink()
        (src / f"gen-{i}.bin").write_bytes(os.urandom(MIB))
        until = clock.now + dt.timedelta(days=1) if i < 5 else None
        point = vault.backup("data", retain_until=until)
        snapshots[point.point_id] = digest_tree(src)
        clock.advance(hours=1)
    return vault, clock, url, src, snapshots


class TestPruneFreesSpace:
    def test_expiring_half_the_points_frees_their_data(self, changing, tmp_path):
        """Half the points expire; packs shrink by their 5 MiB of unique data; the rest restores and verifies."""
        vault, clock, url, src, snapshots = changing
        before = pack_bytes(url)
        clock.advance(days=2)
        started = time.monotonic()
        report = vault.prune(grace=0)
        seconds = time.monotonic() - started
        after = pack_bytes(url)
        freed = before - after
        print(f"\nprune: {before / MIB:.2f} MiB -> {after / MIB:.2f} MiB of packs, {freed / MIB:.2f} MiB freed"
              f" (report {report.bytes_freed / MIB:.2f} MiB), {report.packs_deleted} deleted,"
              f" {report.packs_repacked} repacked, {seconds:.2f} s")
        assert len(report.points_expired) == 5
        assert 5 * MIB <= freed <= 5 * MIB + 256 * 1024  # the new files plus a little metadata
        assert report.bytes_freed == freed
        assert report.packs_deleted == 4 and report.packs_repacked == 1  # the first pack held the base too
        assert len(vault.points("data")) == 5
        verify = vault.verify(read_data=True)
        assert verify.ok and not verify.notes, (verify.problems, verify.notes)
        restored = assert_all_points_restore(Vault.open(url), snapshots, {"data": src}, tmp_path)
        assert restored == 5
        assert list(vault.store.list("prune/")) == [] and list(vault.store.list("leases/")) == []

    def test_a_second_prune_finds_nothing_more(self, changing):
        """Right after a prune, another one expires and frees nothing."""
        vault, clock, url, _, _ = changing
        clock.advance(days=2)
        vault.prune(grace=0)
        again = vault.prune(grace=0)
        assert again.points_expired == [] and again.bytes_freed == 0 and again.blobs_marked == 0

    def test_two_phases_with_a_grace_period(self, changing, tmp_path):
        """With a grace period the first prune only marks; data goes once the grace has passed."""
        vault, clock, url, src, snapshots = changing
        clock.advance(days=2)
        before = pack_bytes(url)
        first = vault.prune(grace=3600)
        assert first.bytes_freed == 0 and first.blobs_marked > 0 and first.cycles_pending == 1
        assert [n.rsplit("/", 1)[-1] for n in vault.store.list("prune/")] == ["mark"]
        clock.advance(minutes=30)
        assert vault.prune(grace=3600).bytes_freed == 0  # still within the grace
        clock.advance(minutes=31)
        second = vault.prune(grace=3600)
        assert second.cycles_swept == 1 and before - pack_bytes(url) >= 5 * MIB
        assert vault.verify(read_data=True).ok
        assert assert_all_points_restore(vault, snapshots, {"data": src}, tmp_path) == 5

    def test_young_packs_are_never_marked(self, changing):
        """Unneeded data in packs younger than the grace period is left for a later prune."""
        vault, clock, url, _, _ = changing
        clock.advance(days=2)
        report = vault.prune(grace=30 * 86400)  # every pack was written moments ago
        assert len(report.points_expired) == 5 and report.blobs_marked == 0

    def test_dry_run_changes_nothing(self, changing):
        """prune --dry-run reports what would go and leaves every object as it was."""
        vault, clock, url, _, _ = changing
        clock.advance(days=2)
        names = sorted(vault.store.list(""))
        report = vault.prune(dry_run=True, grace=0)
        assert len(report.points_expired) == 5 and report.packs_deleted == 4
        assert 5 * MIB <= report.bytes_freed <= 5 * MIB + 256 * 1024
        assert sorted(vault.store.list("")) == names
