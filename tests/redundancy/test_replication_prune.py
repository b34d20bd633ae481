"""A prune on the primary while a replication runs: the secondary never holds a head that names
a point it lacks (a rollback its checks would report), and the next run catches up in full.

The prune runs from inside the replication, when its first pack lands on the secondary (a
store that wraps the secondary's): after the primary was listed, before the point headers
and the heads are copied.
"""

from __future__ import annotations

import attrs

from geokit import write_files
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.security import SoftDelete
from strongroom.repository.names import kind_of
from strongroom.services.georemovals import PrimaryRecords
from strongroom.services.replication import Replicator
from strongroom.storage import open_store
from strongroom.vault import Vault


def _replicator(vault, secondary) -> Replicator:
    """The vault's replication to ``secondary``, deleting there what the vault removed on purpose."""
    return Replicator(vault.store, secondary, removals=PrimaryRecords(vault.heads).judge)


def _names(store, prefix: str = "") -> set[str]:
    return {n for n in store.list(prefix) if kind_of(n) is not None and not n.startswith(("leases/", "journal/"))}


@attrs.define
class PruneOnFirstPack:
    """The secondary's store; the first pack put through it runs ``prune()`` first."""

    inner: object
    prune: object
    pruned: bool = False

    @property
    def url(self) -> str:
        return self.inner.url

    def put(self, name, data):
        if name.startswith("data/") and not self.pruned:
            self.pruned = True
            self.prune()
        self.inner.put(name, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_prune_during_replication_leaves_no_head_naming_a_missing_point(strongroom_home, tmp_path, monkeypatch):
    """The run sees the prune's head, lists again (a second pass) and copies the heads that match what it
    copied: the secondary verifies with no rollback; the next run makes it equal to the primary."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # only the runs below replicate
    secondary_url = str(tmp_path / "secondary")
    vault = Vault.create(str(tmp_path / "primary"), name="p", redundancy=Redundancy("geo", secondary_url))
    vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
    src = write_files(tmp_path / "src", count=3)
    vault.protect("files", "docs", {"paths": [str(src)]})
    for round_ in range(3):  # three points the secondary has never seen
        write_files(src, count=2, seed=str(round_))
        vault.backup("docs")
    secondary = open_store(secondary_url, {}, create=True)
    hooked = PruneOnFirstPack(secondary, lambda: vault.prune(keep_last=1, grace=0))
    report = _replicator(vault, hooked).run()
    assert hooked.pruned and report.complete
    assert report.passes == 2  # the prune's head was seen before any head was copied
    kept = _names(vault.store, "points/")
    assert len(kept) == 1 and _names(secondary, "points/") == kept
    copy = Vault.open(secondary_url)
    checked = copy.verify()
    assert checked.ok, checked.problems
    assert [p.point_id for p in copy.points("docs")] == [p.point_id for p in vault.points("docs")]
    assert _replicator(vault, secondary).run().complete  # the packs the prune freed go now
    assert _names(secondary) == _names(vault.store)
    assert Vault.open(secondary_url).verify(read_data=True).ok


def test_a_primary_that_keeps_changing_stops_the_run_before_its_heads(strongroom_home, tmp_path, monkeypatch):
    """A head written during every pass: the run stops after its passes with no head copied, the secondary
    still a vault that verifies; a quiet run then copies the heads."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")
    secondary_url = str(tmp_path / "secondary")
    vault = Vault.create(str(tmp_path / "primary"), name="p", redundancy=Redundancy("geo", secondary_url))
    src = write_files(tmp_path / "src", count=3)
    vault.protect("files", "docs", {"paths": [str(src)]})
    vault.backup("docs")
    assert vault.replicate().complete
    secondary = open_store(secondary_url, {})
    heads_before = _names(secondary, "heads/")
    backups = iter(range(10))

    class BackupOnEveryPointPut(PruneOnFirstPack):
        def put(self, name, data):
            if name.startswith("points/"):
                write_files(src, count=1, seed=f"busy{next(backups)}")
                vault.backup("docs")  # a new point and a new head on the primary, every pass
            self.inner.put(name, data)

    write_files(src, count=1, seed="first")
    vault.backup("docs")
    report = _replicator(vault, BackupOnEveryPointPut(secondary, None)).run()
    assert not report.complete and report.stopped == "primary changing" and report.passes == 3
    assert _names(secondary, "heads/") == heads_before
    assert Vault.open(secondary_url).verify().ok
    assert _replicator(vault, secondary).run().complete
    assert _names(secondary) == _names(vault.store)
