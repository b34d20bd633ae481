"""A secondary that never answers holds up neither a backup nor ``vault replicate`` beyond the
replication bound: each ends (the process exits), the lag alert is raised, vault info says why.

The secondary is a *black hole*: a TCP listener on loopback that accepts connections and
never answers, so every request to it waits for its read timeout and is retried, many
times over; without the bound each command would wait for minutes.  The commands run in
child processes, so that their exit (not only their return) is what ends them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from geokit import write_files
from strongroom.policy.redundancy import Redundancy
from strongroom.testing import Cli
from strongroom.vault import Vault

BOUND = "1"
#: A guard against a hang (the test fails instead of waiting for the retries), not a timing.
HANG = 300


@pytest.fixture
def black_hole():
    """A loopback port that accepts connections and never answers: its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # kept open, never read, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()


def _strongroom(*args: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=HANG)


@pytest.fixture
def geo_to_black_hole(strongroom_home, black_hole, tmp_path, monkeypatch):
    """A geo vault on a local folder whose secondary is the black hole, one item protected."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", BOUND)
    (strongroom_home / "config.toml").write_text(
        f'[storage."s3://hole"]\nendpoint_url = "{black_hole}"\nkey = "k"\nsecret = "s"\n')
    vault = Vault.create(str(tmp_path / "primary"), name="geo", redundancy=Redundancy("geo", "s3://hole/vault"))
    vault.protect("files", "docs", {"paths": [str(write_files(tmp_path / "src", count=3))]})
    return vault


class TestBoundedReplication:
    def test_a_backup_ends_at_the_bound_and_raises_the_lag_alert(self, geo_to_black_hole):
        """strongroom backup exits 0 with the secondary silent; the alert says the bound cut the wait."""
        vault = geo_to_black_hole
        for _ in range(2):
            done = _strongroom("--vault", vault.url, "backup", "docs")
            assert done.returncode == 0, done.stderr
        again = Vault.open(vault.url)
        assert len(again.points("docs")) == 2
        lag = [a for a in again.alerts.list() if a.open and a.kind == "replication.lag"]
        assert len(lag) == 1 and lag[0].dedupe == f"replication.lag:{vault.vault_id}"  # one, deduplicated
        assert f"did not answer within {BOUND} s" in lag[0].summary
        info = json.loads(Cli(vault.url)("vault", "info", "--json").stdout)
        assert info["replication"]["secondary"] == "s3://hole/vault" and "did not answer" in info["replication"]["error"]

    def test_vault_replicate_without_wait_ends_at_the_bound(self, geo_to_black_hole):
        """vault replicate (no --wait) exits with one line naming the bound, a storage exit code, and the alert."""
        vault = geo_to_black_hole
        vault.backup("docs")
        done = _strongroom("--vault", vault.url, "vault", "replicate")
        assert done.returncode >= 20 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert f"did not answer within {BOUND} s" in done.stderr
        alerts = [a for a in Vault.open(vault.url).alerts.list() if a.open and a.kind == "replication.lag"]
        assert len(alerts) == 1


def test_a_bound_of_zero_turns_replication_after_backups_off(strongroom_home, tmp_path, monkeypatch):
    """With a bound of 0 a backup neither replicates nor raises an alert; vault replicate, unbounded then,
    copies everything."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")
    vault = Vault.create(str(tmp_path / "p"), name="p", redundancy=Redundancy("geo", str(tmp_path / "s")))
    vault.protect("files", "docs", {"paths": [str(write_files(tmp_path / "src", count=2))]})
    vault.backup("docs")
    assert not (tmp_path / "s" / "strongroom.json").exists()
    assert not [a for a in vault.alerts.list() if a.kind == "replication.lag"]
    done = json.loads(Cli(vault.url)("vault", "replicate", "--json").stdout)
    assert done["complete"] and done["copied"] > 5
    assert (tmp_path / "s" / "strongroom.json").exists()
