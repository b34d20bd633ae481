"""Prune is safe beside a backup in another process, including when prune is killed mid-way.

Real child processes on a local vault.  A slowed-down store (``slow_actor.py``) stretches
the prune (or the backup) so that the other process starts, or the prune is killed, at a
chosen step, seen from outside by the objects that appear in the vault: the lease, the
mark, the sweep plan.  Afterwards every point verifies and restores byte for byte, and
a second prune finishes what a killed one left.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunekit import assert_all_points_restore, soft_delete_off
from strongroom.policy.prunesettings import PruneSettings
from strongroom.vault import Vault
from vaultkit import digest_tree

ACTOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_actor.py")
GRACE = 0.5
TTL = 2.0
DELAY = "0.004"


class Scene:
    """A vault with item 'live' (backed up, changing) and the deleted data of item 'gone'."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.url = str(tmp / "vault")
        self.sources = {"live": tmp / "live", "gone": tmp / "gone"}
        self.snapshots: dict[str, dict[str, str]] = {}
        vault = Vault.create(self.url)
        soft_delete_off(vault)  # about GC beside backups: deleted data is garbage at once
        vault.set_prune_settings(PruneSettings(grace=GRACE, lease_ttl=TTL))
        for name, folder in self.sources.items():
            folder.mkdir()
            for i in range(6):
                (folder / f"{i}.bin").write_bytes(os.urandom(100_000))
            vault.protect("files", name, {"paths": [str(folder)]})
            self.backup_here(vault, name)
        self.change()
        self.backup_here(vault, "live")
        vault.stop("gone", delete_data=True)

    def vault(self) -> Vault:
        return Vault.open(self.url)

    def change(self) -> None:
        live = self.sources["live"]
        (live / f"{len(self.snapshots)}.bin").write_bytes(os.urandom(100_000))
        (live / "0.bin").write_bytes(os.urandom(100_000))

    def backup_here(self, vault: Vault, item: str) -> None:
        snapshot = digest_tree(self.sources[item])
        self.snapshots[vault.backup(item).point_id] = snapshot

    def start(self, action: str, arg: str) -> subprocess.Popen:
        snapshot = digest_tree(self.sources["live"]) if action == "backup" else None
        proc = subprocess.Popen([sys.executable, ACTOR, self.url, DELAY, action, arg],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.snapshot = snapshot  # type: ignore[attr-defined]
        return proc

    def finish_backup(self, proc: subprocess.Popen) -> bool:
        """Wait for a backup child; True if it made a point (a refusal is exit code 78)."""
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 78), err
        if proc.returncode == 0:
            self.snapshots[json.loads(out)["point"]] = proc.snapshot  # type: ignore[attr-defined]
        return proc.returncode == 0

    def wait_for(self, pattern: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if glob.glob(os.path.join(self.url, pattern)):
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.002)
        return False

    def check(self, *, settled: bool) -> None:
        vault = self.vault()
        report = vault.verify(read_data=True)
        assert report.ok, report.problems
        if settled:
            assert not report.notes, report.notes
            assert not glob.glob(os.path.join(self.url, "prune", "*", "sweep"))
        restored = assert_all_points_restore(vault, self.snapshots, {"live": self.sources["live"]}, self.tmp / "out")
        assert restored == len(vault.points("live")) >= 2

    def settle(self) -> None:
        """Prune until nothing is pending: the work any killed prune left is finished."""
        time.sleep(TTL + 0.1)  # a killed prune's lease runs out by itself
        vault = self.vault()
        for _ in range(4):
            report = vault.prune()
            if not report.cycles_pending and not list(vault.store.list("prune/")):
                break
            time.sleep(GRACE + 0.1)
        assert list(vault.store.list("prune/")) == []


@pytest.fixture
def scene(tmp_path) -> Scene:
    return Scene(tmp_path)


def _mark_now(scene: Scene) -> None:
    time.sleep(GRACE + 0.1)  # packs older than the grace can be marked
    assert scene.vault().prune().blobs_marked > 0
    time.sleep(GRACE + 0.1)  # and the mark can be swept


class TestPruneBesideABackup:
    def test_backup_starts_while_prune_sweeps(self, scene):
        """A backup started once the sweep plan is written commits a sound point."""
        _mark_now(scene)
        prune = scene.start("prune", str(GRACE))
        assert scene.wait_for("prune/*/sweep", prune)
        scene.change()
        backup = scene.start("backup", "live")
        assert scene.finish_backup(backup)
        assert prune.wait(timeout=120) == 0, prune.stderr.read()
        scene.check(settled=False)
        scene.settle()
        scene.check(settled=True)

    def test_prune_runs_while_a_slow_backup_runs(self, scene):
        """A prune that marks and sweeps while a slow backup is in progress harms nothing."""
        _mark_now(scene)
        scene.change()
        backup = scene.start("backup", "live")
        assert scene.wait_for("leases/*", backup, timeout=0.01) is False  # backups take no lease
        prune = scene.start("prune", str(GRACE))
        assert prune.wait(timeout=120) == 0, prune.stderr.read()
        scene.finish_backup(backup)
        scene.check(settled=False)
        scene.settle()
        scene.check(settled=True)

    @pytest.mark.parametrize("kill_when", ["lease", "sweep plan", "pack deleted"])
    def test_prune_killed_mid_way_then_a_second_prune_finishes(self, scene, kill_when):
        """Prune is killed (SIGKILL) once its lease appears, once its sweep plan is written, or
        once it has deleted a first pack, with a backup running beside it; everything
        verifies and restores, and a second prune, after the lease runs out, finishes."""
        _mark_now(scene)
        packs = set(glob.glob(os.path.join(scene.url, "data", "*", "*")))
        seen = {
            "lease": lambda: glob.glob(os.path.join(scene.url, "leases", "*")),
            "sweep plan": lambda: glob.glob(os.path.join(scene.url, "prune", "*", "sweep")),
            "pack deleted": lambda: packs - set(glob.glob(os.path.join(scene.url, "data", "*", "*"))),
        }[kill_when]
        prune = scene.start("prune", str(GRACE))
        scene.change()
        backup = scene.start("backup", "live")
        deadline = time.monotonic() + 60
        while prune.poll() is None and not seen() and time.monotonic() < deadline:
            time.sleep(0.001)
        prune.send_signal(signal.SIGKILL)
        assert prune.wait() == -signal.SIGKILL, "prune finished before it could be killed"
        if kill_when != "lease":  # killed inside the sweep: its plan is still there
            assert glob.glob(os.path.join(scene.url, "prune", "*", "sweep"))
        scene.finish_backup(backup)
        scene.check(settled=False)
        scene.settle()
        scene.check(settled=True)
        assert scene.vault().points("gone") == []
