"""A backup killed at random moments loses nothing committed, and the next one resumes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from strongroom.testing import assert_trees_equal

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


def _fill(root, rng: random.Random, files: int, size: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i:04}.bin").write_bytes(rng.randbytes(size))


def _packs(vault_url: str) -> int:
    """Complete packs on storage (uploads still in progress have temporary names)."""
    return sum(
        1 for _, _, files in os.walk(os.path.join(vault_url, "data"))
        for name in files if not name.startswith(".tmp-")
    )


@pytest.mark.slow
def test_sigkill_during_backup_leaves_a_sound_vault_and_next_backup_resumes(tmp_path, cli):
    """Kill backups with SIGKILL several times: vault verifies, old points restore, the next backup reuses uploads."""
    rng = random.Random(42)
    src = tmp_path / "src"
    _fill(src / "first", rng, 20, 256 * 1024)
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", "data", "--path", str(src))
    first = cli("backup", "data", "--json")
    reference = tmp_path / "reference"
    subprocess.run(["cp", "-a", str(src), str(reference)], check=True)

    _fill(src / "second", rng, 24, 8 * 1024 * 1024)  # 192 MiB of new, incompressible data
    env = {**os.environ, "STRONGROOM_VAULT": cli.vault_url}
    kills = 0
    for attempt in range(4):
        # Kill at a random moment after a random number of new packs reached storage,
        # so every kill lands in the middle of uploading, whatever the machine's speed.
        target = _packs(cli.vault_url) + rng.randint(1, 3)
        proc = subprocess.Popen([STRONGROOM, "backup", "data"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _packs(cli.vault_url) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "backups finished before they could be killed"

    cli("vault", "verify", "--read-data")
    import json

    points = json.loads(cli("points", "data", "--json").stdout)
    first_id = json.loads(first.stdout)["id"]
    assert first_id in [p["id"] for p in points]
    out = tmp_path / "out"
    cli("restore", f"data@{first_id}", "--target", str(out))
    restored = out / str(src).lstrip("/")
    assert_trees_equal(str(reference), str(restored))

    final = json.loads(cli("backup", "data", "--json").stdout)
    reused = 192 * 1024 * 1024 - final["stats"]["new_bytes"]
    assert reused > 16 * 1024 * 1024, f"next backup re-uploaded almost everything: {final['stats']}"
    cli("vault", "verify", "--read-data")
    out2 = tmp_path / "out2"
    cli("restore", "data", "--target", str(out2))
    assert_trees_equal(str(src), str(out2 / str(src).lstrip("/")))
