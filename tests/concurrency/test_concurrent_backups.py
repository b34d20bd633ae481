"""Four processes backing up into one vault at the same time, on a local folder and on S3.

Three items, one of them backed up by two processes at once, with content shared
between items (so concurrent writers deduplicate against each other's uploads).  Backups
take no lock: afterwards every point exists, the vault verifies with ``--read-data``,
every point restores byte for byte, and nothing lock-like is left on the storage.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from strongroom.testing import assert_same_tree, tree_digest
from strongroom.vault import Vault

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
MIB = 1 << 20
ITEMS = ("alpha", "beta", "gamma")


def _inside(target, source) -> str:
    return os.path.join(str(target), os.path.abspath(str(source)).lstrip("/"))


def _fill(root: str, rng: random.Random, shared: bytes) -> None:
    os.makedirs(root, exist_ok=True)
    for i in range(3):
        with open(os.path.join(root, f"own-{i}.bin"), "wb") as f:
            f.write(rng.randbytes(3 * MIB))
    with open(os.path.join(root, "shared.bin"), "wb") as f:
        f.write(shared)
    for i in range(40):
        with open(os.path.join(root, f"note-{i}.txt"), "w") as f:
            f.write(f"{root} note {i}\n" * rng.randrange(1, 300))


def _run_together(env: dict, items: list[str]) -> None:
    procs = [subprocess.Popen([STRONGROOM, "backup", item], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for item in items]
    failures = []
    for item, proc in zip(items, procs):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(f"backup {item} exited {proc.returncode}: {err.strip()}")
    assert not failures, failures


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_four_processes_back_up_into_one_vault_at_once(kind, request, tmp_path):
    """Two rounds of 4 concurrent backups (one item twice): all points exist, verify and restore."""
    location = request.getfixturevalue(f"strongroom_{kind}_location")
    options = dict(location.storage_options)
    env = {**os.environ, **location.env()}
    rng = random.Random(4)
    shared = rng.randbytes(4 * MIB)
    sources = {item: str(tmp_path / item) for item in ITEMS}
    vault = Vault.create(location.url, name="busy", storage_options=options)
    for item, path in sources.items():
        _fill(path, rng, shared)
        vault.protect("files", item, {"paths": [path]})

    digests: dict[str, list[dict]] = {item: [] for item in ITEMS}
    for round_no in range(2):
        if round_no:
            for path in sources.values():
                with open(os.path.join(path, "own-0.bin"), "ab") as f:
                    f.write(rng.randbytes(MIB))
        _run_together(env, ["alpha", "beta", "gamma", "alpha"])
        for item, path in sources.items():
            digests[item].append(tree_digest(path))

    after = Vault.open(location.url, storage_options=options)
    report = after.verify(read_data=True)
    assert report.ok, report.problems
    counts = {item: len(after.points(item)) for item in ITEMS}
    assert counts == {"alpha": 4, "beta": 2, "gamma": 2}
    for item, path in sources.items():
        points = after.points(item)
        for n, point in enumerate(points):
            target = tmp_path / f"restore-{item}-{n}"
            after.restore(item, point.point_id, str(target))
            round_no = 0 if n < len(points) // 2 else 1
            assert_same_tree(digests[item][round_no], _inside(target, path))

    names = list(after.store.list())
    assert not [n for n in names if n.startswith("leases/") or "lock" in n.lower()]
    if kind == "local":
        leftovers = [os.path.join(d, n) for d, _, ns in os.walk(location.url) for n in ns if n.startswith(".tmp-")]
        assert not leftovers
