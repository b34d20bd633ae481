"""A replication killed at any moment leaves a secondary that opens and verifies; the next one completes.

``strongroom vault replicate --wait`` runs in a child process that is SIGKILLed at 20 moments
drawn from a seeded generator, each after a new backup gave it something to copy: half at any
time of the run, half shortly after its first new pack reached the secondary (in its copy).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from geokit import configure, tree_bytes, write_files
from strongroom.errors import VaultNotFound
from strongroom.policy.redundancy import Redundancy
from strongroom.repository.names import kind_of
from strongroom.storage import open_store
from strongroom.vault import Vault

ROUNDS = 20
SEED = 15


def _names(store) -> set[str]:
    return {n for n in store.list("") if kind_of(n) is not None and not n.startswith(("leases/", "journal/"))}


def _replicate(url: str) -> subprocess.Popen:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.Popen([exe, "--vault", url, "vault", "replicate", "--wait", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_replication_leaves_a_consistent_secondary(strongroom_home, strongroom_s3_server, tmp_path,
                                                            monkeypatch):
    """After each of 20 SIGKILLs the secondary is no vault yet or a vault that verifies; a last run completes."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # only the killed runs replicate
    buckets = [strongroom_s3_server.create_bucket() for _ in range(2)]
    for bucket in buckets:
        configure(strongroom_home, strongroom_s3_server, bucket)
    url, secondary_url = (f"s3://{bucket}/vault" for bucket in buckets)
    vault = Vault.create(url, name="crash", redundancy=Redundancy("geo", secondary_url))
    src = write_files(tmp_path / "src", count=20, size=400_000)
    vault.protect("files", "docs", {"paths": [str(src)]})
    rng = random.Random(SEED)
    secondary_store = open_store(secondary_url, strongroom_s3_server.storage_options)
    opened, cut = 0, 0
    for round_ in range(ROUNDS):
        write_files(src / f"r{round_}", count=6, size=200_000, seed=str(round_))
        vault.backup("docs")
        before = _names(secondary_store)
        packs = set(secondary_store.list("data/"))
        child = _replicate(url)
        if rng.random() < 0.5:  # any moment: starting, listing, copying, deleting
            time.sleep(rng.uniform(0.3, 2.5))
        else:  # a moment of the copy: once its first new pack is there
            while child.poll() is None and set(secondary_store.list("data/")) <= packs:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        after = _names(secondary_store)
        cut += before < after < _names(vault.store)  # killed while copying
        try:
            secondary = Vault.open(secondary_url)
        except VaultNotFound:
            continue  # killed before the identity was copied: not a vault yet, never a broken one
        opened += 1
        report = secondary.verify()
        assert report.ok, (round_, report.problems)
    print(f"{opened} of {ROUNDS} kills left a vault, {cut} cut a copy short")
    assert opened > 0 and cut > 0
    final = _replicate(url)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    assert json.loads(out)["complete"]
    assert _names(secondary_store) == _names(vault.store)
    secondary = Vault.open(secondary_url)
    assert secondary.verify(read_data=True).ok
    target = tmp_path / "out"
    secondary.restore("docs", None, str(target))
    assert tree_bytes(target / str(src).lstrip("/")) == tree_bytes(src)
