"""An upgrade killed at any moment leaves a vault that opens, in the old format or the new
one, and restores every point; the next ``vault upgrade`` finishes it.

For each fixture vault older than this version's format, 20 rounds, each on a fresh copy:
``strongroom vault upgrade`` runs in a child process that is SIGKILLed at a moment drawn
from a seeded generator.  Half the rounds run the installed command and kill it at any
time of its run (starting, opening, writing); the other half slow each of its writes to
the storage (``slow_puts.py``) and kill it a moment after its K-th write reached the
storage, K going over every write of the upgrade in turn, so that every state between
two writes is met.  After each kill the vault must open with this version as the old or
the new format (``strongroom.json`` and the settings may disagree only as an interrupted
upgrade leaves them: the settings ahead), verify, and restore every point as the manifest
recorded; then a plain ``vault upgrade`` must finish, and the newest point of each item
restore again from the upgraded vault.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixturekit import Fixture, all_fixtures, check_every_point
from strongroom.models import FORMAT_VERSION
from strongroom.vault import Vault

ROUNDS = 20
SEED = 16
PUT_DELAY = 0.06
OLDER = [Fixture.load(path) for path in all_fixtures()]
OLDER = [f for f in OLDER if f.format < FORMAT_VERSION]


def _command(url: str, slow: bool) -> list[str]:
    if slow:
        return [sys.executable, str(Path(__file__).with_name("slow_puts.py")), str(PUT_DELAY),
                "--vault", url, "vault", "upgrade", "--json"]
    return [os.path.join(os.path.dirname(sys.executable), "strongroom"), "--vault", url, "vault", "upgrade", "--json"]


def _writes(url: str, before: dict[str, bytes]) -> int:
    """How many objects the upgrade has written so far: new names, and strongroom.json if changed."""
    root = Path(url)
    names = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".tmp-" not in p.name}
    changed = (root / "strongroom.json").read_bytes() != before["strongroom.json"]
    return len(names - set(before)) + changed


def _snapshot(url: str) -> dict[str, bytes]:
    root = Path(url)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _run(url: str, home: Path, slow: bool = False, **kwargs):
    env = {**os.environ, "STRONGROOM_HOME": str(home)}
    return subprocess.Popen(_command(url, slow), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _count_writes(fixture: Fixture, tmp_path: Path) -> int:
    """How many objects a whole upgrade of this fixture writes (a trial run on a copy)."""
    url = fixture.install(tmp_path / "trial", tmp_path / "trial-home")
    before = _snapshot(url)
    child = _run(url, tmp_path / "trial-home")
    _, err = child.communicate()
    assert child.returncode == 0, err
    return _writes(url, before)


@pytest.mark.skipif(not OLDER, reason="every fixture is of the newest format: there is no upgrade to interrupt")
@pytest.mark.parametrize("fixture", OLDER, ids=[f.path.name for f in OLDER])
def test_a_killed_upgrade_leaves_a_vault_that_opens_and_restores(fixture, tmp_path, request):
    """After each of 20 SIGKILLs the vault opens as the old or the new format, verifies and
    restores every point; the next 'vault upgrade' finishes and the points still restore."""
    total = _count_writes(fixture, tmp_path)
    assert total >= 2  # at least the settings and strongroom.json
    rng = random.Random(SEED)
    states: dict[tuple[int, int], int] = {}
    for round_ in range(ROUNDS):
        home = tmp_path / f"home-{round_}"  # each round is a machine of its own (its own head record)
        url = fixture.install(tmp_path / f"round-{round_}", home)
        before = _snapshot(url)
        slow = round_ % 2 == 1
        child = _run(url, home, slow)
        if not slow:  # any moment of the run
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # a moment after the K-th write, before the next one lands
            k = (round_ // 2) % total + 1
            while child.poll() is None and _writes(url, before) < k:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, PUT_DELAY * 0.8))
        child.send_signal(signal.SIGKILL)
        child.communicate()

        clear = json.loads(Path(url, "strongroom.json").read_text())["format"]
        vault = Vault.open(url, home=str(home))
        state = (clear, vault.settings.format)
        assert state in {(fixture.format, fixture.format), (fixture.format, FORMAT_VERSION),
                         (FORMAT_VERSION, FORMAT_VERSION)}, (round_, state)
        assert vault.format == max(state)
        states[state] = states.get(state, 0) + 1
        report = vault.verify()
        assert report.ok, (round_, report.problems)
        check_every_point(vault, fixture, tmp_path / f"out-{round_}", request)

        final = _run(url, home)
        _, err = final.communicate()
        assert final.returncode == 0, (round_, err)
        assert json.loads(Path(url, "strongroom.json").read_text())["format"] == FORMAT_VERSION
        vault = Vault.open(url, home=str(home))
        assert vault.format == FORMAT_VERSION and vault.settings.format == FORMAT_VERSION
        check_every_point(vault, fixture, tmp_path / f"after-{round_}", request, newest_only=True)
    print(f"states left by {ROUNDS} kills (strongroom.json, settings): {states}")
    assert (fixture.format, FORMAT_VERSION) in states  # killed between the settings and strongroom.json
    assert (fixture.format, fixture.format) in states and (FORMAT_VERSION, FORMAT_VERSION) in states
