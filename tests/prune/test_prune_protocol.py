"""Prune and a backup at the same time, in every order that matters, step by step.

Two Vault objects on one vault stand for two processes: ``backer`` runs a backup whose
workload calls back in the middle of its walk, and ``pruner`` prunes from that callback.
The item being backed up holds a file whose content also belonged to an item whose data
was deleted, so prune marks exactly the blobs the backup deduplicates against.

The simulated clock runs two days ahead of the real one, so every pack (whose age comes
from the real time in its index file's name) is past the grace period: the worst case,
in which even the running backup's own new packs can be marked.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from prunekit import assert_all_points_restore, soft_delete_off
from strongroom.errors import PruneConflict
from strongroom.repository import maintenance
from strongroom.repository.indexfile import decode_index
from strongroom.repository.envelope import KIND_INDEX
from strongroom_files.workload import FilesWorkload
from strongroom.vault import Vault
from vaultkit import Clock, digest_tree, workload_host

GRACE = 3600.0


class HookedFiles(FilesWorkload):
    """The files workload, calling ``HookedFiles.midway`` once after its first entries."""

    name = "hooked"
    midway = None

    def backup(self, ctx):
        for n, entry in enumerate(super().backup(ctx)):
            yield entry
            if n == 2 and HookedFiles.midway is not None:
                callback, HookedFiles.midway = HookedFiles.midway, None
                callback()


@pytest.fixture
def world(tmp_path):
    HookedFiles.midway = None
    plugins = workload_host("hooked-files", hooked=HookedFiles)
    clock = Clock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2))
    url = str(tmp_path / "vault")
    backer = Vault.create(url, plugins=plugins)
    soft_delete_off(backer)  # about GC's protocol: deleted data is garbage at once
    backer.clock = clock
    pruner = Vault.open(url, plugins=plugins)
    pruner.clock = clock
    shared = os.urandom(300_000)
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, own in ((old, "old-only.bin"), (new, "new-only.bin")):
        folder.mkdir()
        (folder / "shared.bin").write_bytes(shared)
        (folder / own).write_bytes(os.urandom(200_000))
    backer.protect("files", "old", {"paths": [str(old)]})
    backer.protect("hooked", "new", {"paths": [str(new)]})
    backer.backup("old")
    backer.stop("old", delete_data=True)  # its blobs become garbage at the next prune
    yield backer, pruner, clock, url, new
    HookedFiles.midway = None


def _check(url, new, tmp_path, expect_points=1) -> None:
    vault = Vault.open(url, plugins=workload_host("hooked-files", hooked=HookedFiles))
    report = vault.verify(read_data=True)
    assert report.ok, report.problems
    snapshot = {p.point_id: digest_tree(new) for p in vault.points("new")}
    assert len(snapshot) == expect_points
    assert assert_all_points_restore(vault, snapshot, {"new": new}, tmp_path) == expect_points


class TestInterleavings:
    def test_mark_during_backup_commit_soon_after(self, world, tmp_path):
        """Prune marks what the running backup deduplicated against; the backup commits within
        half the grace, so the later sweep sees its point and keeps that data."""
        backer, pruner, clock, url, new = world
        HookedFiles.midway = lambda: pruner.prune(grace=GRACE)
        point = backer.backup("new")
        assert point.stats["blobs_rescued"] == 0
        clock.advance(seconds=GRACE + 1)
        report = pruner.prune(grace=GRACE)
        assert report.cycles_swept == 1 and report.blobs_deleted > 0  # old-only.bin went
        _check(url, new, tmp_path)

    def test_mark_during_backup_commit_late_copies_the_marked_blobs(self, world, tmp_path):
        """Committing more than half a grace after the mark, the backup copies the marked blobs
        it needs into new packs first; the sweep then deletes the old packs."""
        backer, pruner, clock, url, new = world

        def midway():
            pruner.prune(grace=GRACE)
            clock.advance(seconds=GRACE * 0.6)

        HookedFiles.midway = midway
        point = backer.backup("new")
        assert point.stats["blobs_rescued"] >= 1
        clock.advance(seconds=GRACE)
        pruner.prune(grace=GRACE)
        clock.advance(seconds=GRACE + 1)
        pruner.prune(grace=GRACE)  # the old pack's extra copy is a duplicate now: it goes too
        _check(url, new, tmp_path)
        assert backer.reopen().verify().notes == ()

    def test_mark_and_sweep_during_backup_refuses_to_commit(self, world, tmp_path):
        """If a whole prune cycle removes data the backup relies on before it commits, the
        backup fails with PruneConflict and writes no point; the next backup succeeds."""
        backer, pruner, clock, url, new = world

        def midway():
            pruner.prune(grace=GRACE)
            clock.advance(seconds=GRACE + 1)
            assert pruner.prune(grace=GRACE).cycles_swept == 1

        HookedFiles.midway = midway
        with pytest.raises(PruneConflict, match="removed"):
            backer.backup("new")
        assert backer.points("new") == []
        assert backer.jobs.list(type_="backup")[-1].state == "failed"
        backer.backup("new")
        _check(url, new, tmp_path)

    def test_backup_after_a_mark_stores_its_own_copy(self, world, tmp_path):
        """A backup that starts after a mark does not deduplicate against marked blobs: it
        stores fresh copies, so the sweep may delete the marked ones."""
        backer, pruner, clock, url, new = world
        pruner.prune(grace=GRACE)
        point = backer.backup("new")
        assert point.stats["new_bytes"] >= 500_000  # shared.bin stored again, not deduplicated
        clock.advance(seconds=GRACE + 1)
        pruner.prune(grace=GRACE)
        _check(url, new, tmp_path)

    def test_sweep_during_backup_of_unrelated_data(self, world, tmp_path):
        """A sweep running while a backup runs, with nothing shared, disturbs neither."""
        backer, pruner, clock, url, new = world
        (new / "shared.bin").write_bytes(os.urandom(300_000))
        pruner.prune(grace=GRACE)
        clock.advance(seconds=GRACE + 1)
        HookedFiles.midway = lambda: pruner.prune(grace=GRACE)
        backer.backup("new")
        _check(url, new, tmp_path)


def _indexed_packs(vault: Vault) -> set[str]:
    packs = set()
    for name in vault.store.list("index/"):
        sealed = vault.store.get(name)
        packs |= {e.pack_id for e in decode_index(vault.repo.envelope.open(sealed, name.encode(), kind=KIND_INDEX))}
    return packs


class TestInterruptedSweep:
    @pytest.mark.parametrize("step", ["copy_blobs", "replace_index_file", "delete_pack"])
    def test_a_sweep_killed_at_any_step_is_finished_by_the_next_prune(self, world, tmp_path, step, monkeypatch):
        """A sweep that dies after writing its plan leaves a vault that verifies and restores;
        a backup in between adopts no doomed pack; the next prune finishes the work."""
        backer, pruner, clock, url, new = world
        backer.backup("new")  # shares shared.bin with 'old': the old pack will be repacked
        other = tmp_path / "other"
        other.mkdir()
        (other / "x.bin").write_bytes(os.urandom(200_000))
        backer.protect("files", "other", {"paths": [str(other)]})
        backer.backup("other")
        backer.stop("other", delete_data=True)  # its pack will be deleted whole
        assert pruner.prune(grace=GRACE).blobs_marked > 0
        clock.advance(seconds=GRACE + 1)
        calls = {"n": 0}
        original = getattr(maintenance, step)

        def dies(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > (1 if step == "delete_pack" else 0):
                raise KeyboardInterrupt("killed")
            return original(*args, **kwargs)

        monkeypatch.setattr(maintenance, step, dies)
        with pytest.raises(KeyboardInterrupt):
            pruner.prune(grace=GRACE)
        monkeypatch.undo()
        assert any(n.endswith("/sweep") for n in backer.store.list("prune/"))
        doomed = backer.repo.pack_ids_on_storage() - _indexed_packs(backer)
        assert bool(doomed) == (step == "delete_pack")  # index files replaced, some packs not yet deleted
        (new / "later.bin").write_bytes(os.urandom(50_000))
        backer.backup("new")  # a backup between the two prunes
        assert not doomed & _indexed_packs(backer), "a doomed pack was adopted"
        report = backer.reopen().verify(read_data=True)
        assert report.ok, report.problems
        clock.advance(seconds=400)  # past the killed prune's lease
        finisher = backer.reopen()
        finisher.clock = clock
        finisher.prune(grace=GRACE)
        assert not any(n.endswith("/sweep") for n in finisher.store.list("prune/"))
        after = finisher.verify(read_data=True)
        assert after.ok and not after.notes, (after.problems, after.notes)
        latest = finisher.points("new")[-1].point_id
        finisher.restore("new", latest, str(tmp_path / "final"))
        assert digest_tree(tmp_path / "final" / str(new).lstrip("/")) == digest_tree(new)
