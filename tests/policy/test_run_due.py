"""run-due: due backups run once per slot, missed slots coalesce, two run-due at once never double up."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from strongroom.policy.options import policy_from_options
from strongroom.services.schedule import Agent
from strongroom.vault import Vault
from vaultkit import SCHEDULE_START, Clock, scheduled_vault

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
UTC = dt.timezone.utc


@pytest.fixture
def scheduled(tmp_path):
    """A vault on a simulated clock with item 'docs' backed up every 4 hours."""
    clock = Clock(SCHEDULE_START)
    vault = scheduled_vault(str(tmp_path / "vault"), policy_from_options("four", {"every": "4h", "keep_daily": 7}),
                            clock=clock)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    vault.protect("files", "docs", {"paths": [str(tmp_path / "src")]}, policy="four")
    return vault, clock


def backups(vault: Vault) -> int:
    return len(vault.points("docs"))


class TestRunDue:
    def test_new_item_is_due_at_once_and_then_every_slot(self, scheduled):
        """The first call backs up at once; calls every 30 minutes for a day take 6 more."""
        vault, clock = scheduled
        vault.run_due()
        assert backups(vault) == 1
        for _ in range(48):
            clock.now += dt.timedelta(minutes=30)
            vault.run_due()
        assert backups(vault) == 7
        points = vault.points("docs")
        assert all(p.trigger == "scheduled" for p in points)

    def test_calling_twice_is_harmless(self, scheduled):
        """run-due right after run-due finds nothing due."""
        vault, clock = scheduled
        assert [r[2] for r in vault.run_due().results] == ["completed"]
        assert vault.run_due().results == ()

    def test_missed_slots_run_once(self, scheduled):
        """After three days without run-due, one call takes one backup, not eighteen."""
        vault, clock = scheduled
        vault.run_due()
        clock.now += dt.timedelta(days=3)
        vault.run_due()
        vault.run_due()
        assert backups(vault) == 2

    def test_a_failed_backup_is_a_failed_job_and_the_next_slot_runs(self, scheduled, tmp_path):
        """A backup whose source is gone fails with its error kept; it is retried at the next slot only."""
        vault, clock = scheduled
        os.rename(tmp_path / "src", tmp_path / "gone")
        report = vault.run_due()
        assert [r[2] for r in report.results] == ["failed"]
        job = vault.jobs.list(type_="backup")[-1]
        assert job.state == "failed" and job.error
        assert vault.run_due().results == ()
        os.rename(tmp_path / "gone", tmp_path / "src")
        clock.now += dt.timedelta(hours=4)
        assert [r[2] for r in vault.run_due().results] == ["completed"]

    def test_agent_stops_cleanly(self, scheduled):
        """The agent loop runs due work and returns once stopped, without starting more."""
        vault, clock = scheduled
        seen = []
        agent = Agent(vault.reopen, interval=0.01, on_report=lambda r: (seen.append(r), agent.stop()))
        agent.run()
        assert len(seen) == 1 and backups(vault) == 1


def _vault_with_items(tmp_path, names) -> str:
    url = str(tmp_path / "vault")
    vault = Vault.create(url)
    vault.policies.create(policy_from_options("hourly", {"every": "1h", "keep_daily": 3}))
    for name in names:
        src = tmp_path / name
        src.mkdir()
        (src / "data.bin").write_bytes(os.urandom(200_000))
        vault.protect("files", name, {"paths": [str(src)]}, policy="hourly")
    return url


@pytest.mark.parametrize("round_no", range(2))
def test_two_run_due_at_once_take_each_backup_once(tmp_path, round_no):
    """Two run-due processes started together: every item gets one backup, the prune runs once."""
    names = ["alpha", "beta", "gamma"]
    url = _vault_with_items(tmp_path, names)
    env = {**os.environ, "STRONGROOM_VAULT": url}
    procs = [subprocess.Popen([STRONGROOM, "run-due", "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out)["results"])
    done = sorted(r["name"] for results in outputs for r in results if r["outcome"] == "completed")
    assert done == sorted([*names, "(vault)"])
    vault = Vault.open(url)
    assert {name: len(vault.points(name)) for name in names} == {name: 1 for name in names}
    assert len(vault.jobs.list(type_="backup")) == 3 and len(vault.jobs.list(type_="prune")) == 1
    assert vault.verify(read_data=True).ok


def test_agent_backs_up_and_stops_on_sigterm(tmp_path):
    """'strongroom agent' runs due work, and on SIGTERM stops cleanly with exit code 0."""
    import signal
    import time

    url = _vault_with_items(tmp_path, ["alpha"])
    env = {**os.environ, "STRONGROOM_VAULT": url}
    agent = subprocess.Popen([STRONGROOM, "agent", "--interval", "0.2"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(Vault.open(url).store.list("points/")) and time.monotonic() < deadline:
        time.sleep(0.1)
    agent.send_signal(signal.SIGTERM)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert "backup of 'alpha': completed" in out and "stopped" in err
    assert len(Vault.open(url).points("alpha")) == 1
