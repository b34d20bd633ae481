"""Zonal redundancy on a real SeaweedFS cluster: three volume servers in three racks,
replication ``010`` (every volume on two racks).  A vault created ``--redundancy zonal``
on it keeps backing up and restoring while one volume server is down: one is killed
(SIGKILL) in the middle of a backup, which completes or fails cleanly, and the next
backup and every restore work; once it is back, a different one is killed, and every
point still restores byte for byte.  Never two down at once: with ``010`` and three
racks, losing two volume servers may lose the volumes whose copies were on both.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest

from strongroom.errors import StrongroomError
from strongroom.testing import Cli, SeaweedCluster, ServerUnavailable, VaultLocation, assert_same_tree, make_tree
from strongroom.testing import tree_digest, unavailable
from strongroom.vault import Vault

MIB = 1 << 20


@pytest.fixture(scope="module")
def cluster():
    try:
        running = SeaweedCluster().start()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    try:
        yield running
    finally:
        running.stop()


def _write_bulk(root: str, seed: int, files: int, mib: int) -> None:
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "bulk"), exist_ok=True)
    for n in range(files):
        with open(os.path.join(root, "bulk", f"part-{seed}-{n:02d}.bin"), "wb") as f:
            f.write(rng.randbytes(mib * MIB))


def _settled_layout(cluster: SeaweedCluster, tries: int = 50) -> dict[str, set[str]]:
    """The volume layout once every volume is on two racks (or as it is after ``tries`` looks)."""
    for _ in range(tries):
        layout = cluster.layout()
        if layout and all(len(racks) == 2 for racks in layout.values()):
            break
        time.sleep(0.2)
    return layout


def _restores(vault: Vault, expected: dict[str, dict], scratch: str, source: str) -> None:
    """Every point in ``expected`` (point id -> tree digest of the source then) restores byte for byte."""
    for point_id, digest in expected.items():
        target = os.path.join(scratch, f"{point_id}-{len(os.listdir(scratch))}")
        vault.restore("data", point_id, target)
        assert_same_tree(digest, os.path.join(target, os.path.abspath(source).lstrip("/")))


def test_backups_and_restores_go_on_while_a_volume_server_is_down(cluster, tmp_path):
    bucket = cluster.create_bucket()
    location = VaultLocation("s3", f"s3://{bucket}/vault", cluster.storage_options)
    cli = Cli(location=location)
    cli("vault", "create", location.url, "--redundancy", "zonal")
    assert json.loads(cli("vault", "redundancy", "--json").stdout)["kind"] == "zonal"

    source, scratch = str(tmp_path / "source"), str(tmp_path / "restored")
    os.makedirs(scratch)
    make_tree(source, seed=3, big_mib=2)
    _write_bulk(source, seed=1, files=12, mib=2)
    vault = Vault.open(location.url, storage_options=location.storage_options)
    vault.protect("files", "data", {"paths": [source]})
    expected: dict[str, dict] = {}

    # 1. volume server 1 is killed by a thread while the first backup is reading
    started, killed = threading.Event(), threading.Event()

    def killer() -> None:
        if started.wait(120):
            cluster.kill_volume(1)
        killed.set()

    def progress(stats) -> None:
        if stats.bytes_read >= 14 * MIB:
            started.set()
            killed.wait(30)  # the kill lands mid-backup, with data still to write

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    digest = tree_digest(source)
    first_failed = False
    try:
        point = vault.backup("data", progress=progress)
        expected[point.point_id] = digest
    except StrongroomError as exc:  # failing is allowed, cleanly: one line, no point
        assert "\n" not in str(exc)
        first_failed = True
    finally:
        started.set()
        thread.join(60)
    assert killed.is_set() and cluster.pid("volume1") is None
    cluster.wait_until_gone(1)

    # 2. with rack 1 down: the next backup (resuming what the first one wrote) and every restore
    vault = vault.reopen()
    _write_bulk(source, seed=2, files=2, mib=1)
    with open(os.path.join(source, "big.bin"), "ab") as f:
        f.write(b"changed while rack1 is down")
    digest = tree_digest(source)
    point = vault.backup("data")
    expected[point.point_id] = digest
    if first_failed:  # it resumes: what the first one stored is taken, not written again
        assert point.stats["packs_adopted"] + point.stats["chunks_reused"] > 0, point.stats
    else:  # incremental: the twelve unchanged bulk files are not read again
        assert point.stats["files_unchanged"] >= 12, point.stats
    _restores(vault, expected, scratch, source)

    # 3. rack 1 back, then rack 2 down (never two at once): backup and restore again
    cluster.restart_volume(1)
    cluster.kill_volume(2)
    cluster.wait_until_gone(2)
    vault = vault.reopen()
    os.unlink(os.path.join(source, "bulk", "part-1-00.bin"))
    _write_bulk(source, seed=4, files=1, mib=1)
    digest = tree_digest(source)
    point = vault.backup("data")
    expected[point.point_id] = digest
    assert len(expected) >= 2 and {p.point_id for p in vault.points("data")} >= set(expected)
    _restores(vault, expected, scratch, source)
    cluster.restart_volume(2)
    layout = _settled_layout(cluster)  # every volume, those written while a rack was down too, on two racks
    assert layout and all(len(racks) == 2 for racks in layout.values()), layout
    assert not vault.verify(read_data=True).problems
