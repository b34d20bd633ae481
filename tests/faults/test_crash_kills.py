"""Backups killed with SIGKILL at 32 random moments, on a local folder and on S3.

Every round changes the source, starts ``strongroom backup`` as a child process and
kills it (rounds go on until 32 backups were killed while running): half the rounds at a random moment of its run, half a random instant after
its first new pack reached the storage (so the kill lands between the upload of packs,
of their index and of the point header).  After each kill the vault must verify clean
with ``--read-data``, earlier points must restore byte for byte, and the next backup must
complete, reusing what the killed one had uploaded.  At the end every point restores.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from strongroom.testing import assert_same_tree, tree_digest
from strongroom.vault import Vault

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
KILLS = 32
MIB = 1 << 20


def _inside(target, source) -> str:
    return os.path.join(str(target), os.path.abspath(str(source)).lstrip("/"))


def _change(source: str, rng: random.Random, round_no: int) -> int:
    """Replace the oldest new file with 1 MiB of fresh data; returns the bytes added."""
    stale = os.path.join(source, f"round-{round_no - 3:03d}.bin")
    if os.path.exists(stale):
        os.unlink(stale)
    with open(os.path.join(source, f"round-{round_no:03d}.bin"), "wb") as f:
        f.write(rng.randbytes(MIB))
    with open(os.path.join(source, "log.txt"), "a") as f:
        f.write(f"round {round_no}\n")
    return MIB


def _packs(store) -> set[str]:
    return set(store.list("data/"))


def _kill_at_random(env: dict, store, rng: random.Random, duration: float, after_upload: bool) -> bool:
    """Start a backup and SIGKILL it; returns whether it was still running when killed."""
    before = _packs(store)
    proc = subprocess.Popen([STRONGROOM, "backup", "data"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if after_upload:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline and not (_packs(store) - before):
                time.sleep(0.02)  # each look is a listing request: do not crowd the server
            time.sleep(rng.uniform(0, 0.01))  # a small backup ends within tens of milliseconds of its pack
        else:
            deadline = time.monotonic() + rng.uniform(0.1, 1.0) * duration
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGKILL)
        return alive
    finally:
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_backups_killed_at_random_moments_lose_nothing(kind, request, tmp_path):
    """32 kills: after each the vault verifies, old points restore, and the next backup reuses uploads."""
    location = request.getfixturevalue(f"strongroom_{kind}_location")
    options = dict(location.storage_options)
    env = {**os.environ, **location.env()}
    rng = random.Random(20261121)
    source = str(tmp_path / "src")
    os.makedirs(source)
    with open(os.path.join(source, "base.bin"), "wb") as f:
        f.write(rng.randbytes(2 * MIB))

    vault = Vault.create(location.url, name="crash", storage_options=options)
    vault.protect("files", "data", {"paths": [source]})
    expected = {vault.backup("data").point_id: tree_digest(source)}

    _change(source, rng, 0)
    started = time.monotonic()
    subprocess.run([STRONGROOM, "backup", "data"], env=env, check=True, capture_output=True)
    duration = time.monotonic() - started
    store = location.open_store()
    kills = reused_rounds = uploaded_rounds = round_no = 0

    while kills < KILLS and round_no < 3 * KILLS:  # a backup that ends before its kill is a round without one
        round_no += 1
        known = {p.point_id for p in Vault.open(location.url, storage_options=options).points("data")}
        for point_id in known - set(expected):
            expected[point_id] = tree_digest(source)  # a backup that committed before its kill
        added = _change(source, rng, round_no)
        packs_before = _packs(store)
        kills += _kill_at_random(env, store, rng, duration, after_upload=round_no % 2 == 0)

        after = Vault.open(location.url, storage_options=options)
        report = after.verify(read_data=True)
        assert report.ok, f"round {round_no}: {report.problems}"
        points = after.points("data")
        for point in points:
            if point.point_id not in expected:  # committed just before the kill
                expected[point.point_id] = tree_digest(source)
        earlier = rng.choice(sorted(expected))
        target = tmp_path / f"r{round_no}"
        after.restore("data", earlier, str(target))
        assert_same_tree(expected[earlier], _inside(target, source))

        uploaded = bool(_packs(store) - packs_before)
        point = after.backup("data")
        expected[point.point_id] = tree_digest(source)
        if uploaded:
            uploaded_rounds += 1
            if point.stats["new_bytes"] < added // 2:
                reused_rounds += 1

    assert kills >= KILLS, f"only {kills} backups were still running when killed"
    assert uploaded_rounds >= KILLS // 3, "too few kills landed after an upload"
    assert reused_rounds >= uploaded_rounds * 0.8, (reused_rounds, uploaded_rounds)
    final = Vault.open(location.url, storage_options=options)
    assert final.verify(read_data=True).ok
    points = final.points("data")
    assert {p.point_id for p in points} == set(expected)
    for point in points:
        target = tmp_path / f"final-{point.point_id}"
        final.restore("data", point.point_id, str(target))
        assert_same_tree(expected[point.point_id], _inside(target, source))
