"""Interrupted jobs are ended and visible: SIGTERM and SIGINT end a running job as
``cancelled`` (exit 143 and 130, one line); after a SIGKILL the job is shown
``abandoned``; a job of another host that cannot be checked is ``stale`` once old.

The backups run in a child process (``gated_cli.py``: the real command line with a
plugin that makes each backup wait at a gate), so the signal always lands while the
job is running.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys

import pytest

from gated_cli import wait_at_gate
from strongroom.models import Job, iso, time_id, utcnow
from strongroom.processes import ProcessId
from strongroom.vault import Vault

GATED_CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gated_cli.py")


@pytest.fixture
def gated(tmp_path, vault_url):
    """A vault with one files item, and a way to start a backup that waits at the gate."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n")
    vault = Vault.create(vault_url, name="t")
    vault.protect("files", "data", {"paths": [str(source)]})
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "STRONGROOM_VAULT": vault_url}
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, object]:
        proc = subprocess.Popen([sys.executable, GATED_CLI, str(gate), "backup", "data"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc, wait_at_gate(str(gate))

    yield vault, start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def jobs_json(vault_url: str, *args: str) -> list[dict]:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    done = subprocess.run([exe, "--vault", vault_url, "jobs", "--json", *args], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


class TestSignals:
    @pytest.mark.parametrize("signum, code, line", [
        (signal.SIGTERM, 143, "strongroom: terminated (SIGTERM)"),
        (signal.SIGINT, 130, "strongroom: interrupted"),
    ])
    def test_a_signal_cancels_the_running_job(self, gated, vault_url, signum, code, line):
        """SIGTERM / SIGINT during a backup: exit 143 / 130 with one line, the job is cancelled."""
        vault, start = gated
        proc, gate = start()
        try:
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=120)
        finally:
            gate.release()
        assert proc.returncode == code, err
        assert err.strip().splitlines() == [line]
        (job,) = jobs_json(vault_url)
        assert job["type"] == "backup" and job["state"] == "cancelled"
        assert job["error"] == ("terminated by SIGTERM" if signum == signal.SIGTERM else "interrupted")
        assert job["pid"] == proc.pid and job["ended"]
        assert vault.points("data") == []

    def test_a_killed_job_is_shown_abandoned(self, gated, vault_url):
        """SIGKILL leaves the record in_progress; jobs shows it abandoned, naming the process."""
        vault, start = gated
        proc, gate = start()
        proc.kill()
        proc.wait()
        gate.release()
        (job,) = jobs_json(vault_url)
        assert job["state"] == "abandoned" and job["pid"] == proc.pid and job["ended"] is None
        assert f"process {proc.pid}" in job["error"]
        assert [j["job_id"] for j in jobs_json(vault_url, "--state", "abandoned")] == [job["job_id"]]
        assert jobs_json(vault_url, "--state", "in_progress") == []

    def test_a_running_job_stays_in_progress(self, gated, vault_url):
        """While the backup waits at the gate, its job is in_progress; let go, it completes."""
        vault, start = gated
        proc, gate = start()
        (job,) = jobs_json(vault_url)
        assert job["state"] == "in_progress" and job["pid"] == proc.pid and job["host"]
        gate.release()
        proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert [j["state"] for j in jobs_json(vault_url)] == ["completed"]


class TestJobsOfOtherProcesses:
    def _record(self, vault: Vault, **fields) -> str:
        job = Job(job_id=time_id(), type="backup", state="in_progress", **fields)
        vault.repo.put_document(f"jobs/{job.job_id}/{time_id()}", job.to_dict())
        return job.job_id

    def test_states_as_seen(self, vault):
        """In-progress records: this host's dead or reused pid is abandoned; another host's
        is stale after STALE_AFTER, in progress before; an old record without a process too."""
        me = ProcessId.current()
        boot, _, tick = me.start.partition("/")
        now, long_ago = utcnow(), utcnow() - dt.timedelta(days=8)
        ids = {
            "mine": self._record(vault, started=iso(now), host=me.host, pid=me.pid, process_start=me.start),
            "reused": self._record(vault, started=iso(now), host=me.host, pid=me.pid,
                                   process_start=f"{boot}/{int(tick) + 7}"),
            "other-new": self._record(vault, started=iso(now), host="elsewhere.example", pid=1, process_start="b/1"),
            "other-old": self._record(vault, started=iso(long_ago), host="elsewhere.example", pid=1,
                                      process_start="b/1"),
            "legacy-new": self._record(vault, started=iso(now)),
            "legacy-old": self._record(vault, started=iso(long_ago)),
        }
        seen = {j.job_id: j for j in vault.jobs.list()}
        states = {name: seen[job_id].state for name, job_id in ids.items()}
        assert states == {"mine": "in_progress", "reused": "abandoned", "other-new": "in_progress",
                          "other-old": "stale", "legacy-new": "in_progress", "legacy-old": "stale"}
        assert "elsewhere.example" in seen[ids["other-old"]].error
        assert [j.job_id for j in vault.jobs.list(state="stale")] == sorted([ids["other-old"], ids["legacy-old"]])

    def test_old_records_still_read(self, vault):
        """A job record written before host and pid were recorded reads back with None."""
        doc = {"job_id": time_id(), "type": "verify", "state": "completed", "started": iso(utcnow()),
               "item": None, "ended": iso(utcnow()), "point": None, "bytes": 0, "error": None,
               "warnings": [], "details": {}}
        vault.repo.put_document(f"jobs/{doc['job_id']}/{time_id()}", doc)
        (job,) = vault.jobs.list()
        assert (job.state, job.host, job.pid, job.local) == ("completed", None, None, False)
