"""Logging options (-q, -v, --log-file, --log-level) and ``install-units``, run as a user runs them.

The logging tests run the installed ``strongroom`` in child processes (real standard
error, real files); the unit tests check the written texts and, where ``systemd-analyze``
is installed, let systemd verify them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from strongroom.cli import units
from strongroom.cli.sdnotify import Notifier
from strongroom.policy.options import policy_from_options
from strongroom.vault import Vault

from vaultkit import run_strongroom

PASSPHRASE = "correct-horse-sekrit-7731"
#: An ISO 8601 time with milliseconds and an offset, then the level and the logger.
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (debug|info|warning|error) strongroom[.\w]*: ")
REPO = Path(__file__).resolve().parents[2]
#: What the agent's every line starts with.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


@pytest.fixture
def vault(tmp_path, vault_url):
    """A passphrase vault with one files item, ``docs``; the environment that opens it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n")
    env = {"STRONGROOM_VAULT": vault_url, "MY_PASSPHRASE": PASSPHRASE}
    for args in (("vault", "create", vault_url), ("protect", "files", "docs", "--path", src)):
        done = run_strongroom("--passphrase-env", "MY_PASSPHRASE", *args, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
    return env


def backup(env, *options, **kwargs):
    return run_strongroom("--passphrase-env", "MY_PASSPHRASE", *options, "backup", "docs",
                          env=env, timeout=120, **kwargs)


class TestLogging:
    def test_verbose_logs_the_backup_job_with_timestamps(self, vault):
        """-v puts timestamped info records of the backup job on stderr; the summary stays on stdout."""
        done = backup(vault, "-v")
        assert done.returncode == 0, done.stderr
        records = [line for line in done.stderr.splitlines() if RECORD.match(line)]
        assert any("info strongroom.jobs: backup of 'docs': started (job " in line for line in records)
        assert any("info strongroom.jobs: backup of 'docs': completed (job " in line for line in records)
        assert not any(" debug " in line for line in records)
        assert done.stdout.startswith("Backed up 'docs'")

    def test_log_file_appends_debug_records_without_the_passphrase(self, vault, tmp_path):
        """--log-file with -vv appends every record, timestamped, to a 0600 file; the passphrase is in none."""
        log = tmp_path / "strongroom.log"
        for _ in range(2):
            done = backup(vault, "-vv", "--log-file", log)
            assert done.returncode == 0, done.stderr
        lines = log.read_text().splitlines()
        assert lines and all(RECORD.match(line) for line in lines), lines
        assert sum("backup of 'docs': completed" in line for line in lines) == 2
        assert any(" debug strongroom.cli: " in line for line in lines)
        assert any(" debug strongroom.storage.retry: put points/" in line for line in lines)
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert PASSPHRASE not in log.read_text() and PASSPHRASE not in done.stderr + done.stdout

    def test_quiet_prints_nothing_on_a_clean_backup_but_json_and_errors(self, vault):
        """-q: a clean backup prints nothing; with --json the document still prints; an error still shows."""
        done = backup(vault, "-q")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        done = run_strongroom("--passphrase-env", "MY_PASSPHRASE", "-q", "backup", "docs", "--json",
                              env=vault, timeout=120)
        assert done.returncode == 0 and done.stderr == ""
        assert json.loads(done.stdout)["item_name"] == "docs"
        done = run_strongroom("--passphrase-env", "MY_PASSPHRASE", "-q", "backup", "nope", env=vault, timeout=120)
        assert done.returncode == 41 and done.stderr.startswith("strongroom: error: ")

    def test_quiet_restore_prints_nothing(self, vault, tmp_path):
        """-q: a clean restore prints nothing, and restores."""
        assert backup(vault, "-q").returncode == 0
        done = run_strongroom("--passphrase-env", "MY_PASSPHRASE", "-q", "restore", "docs", "--target",
                              tmp_path / "out", env=vault, timeout=120)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert [p.read_text() for p in (tmp_path / "out").rglob("a.txt")] == ["alpha\n"]

    def test_log_level_overrides_quiet_and_comes_from_the_environment(self, vault):
        """STRONGROOM_LOG_LEVEL=info logs the job even with -q; --log-level error silences -v."""
        done = backup({**vault, "STRONGROOM_LOG_LEVEL": "info"}, "-q")
        assert done.returncode == 0
        assert any(RECORD.match(line) and "completed" in line for line in done.stderr.splitlines())
        done = backup(vault, "-v", "--log-level", "ERROR")
        assert done.returncode == 0 and done.stderr == ""

    def test_a_log_file_that_cannot_be_opened_is_one_line(self, vault, tmp_path):
        """A log file in a missing folder: exit 3, one line naming it, no traceback."""
        done = backup(vault, "--log-file", tmp_path / "missing" / "x.log")
        assert done.returncode == 3
        assert done.stderr.strip().splitlines() == [
            f"strongroom: error: cannot open the log file {tmp_path / 'missing' / 'x.log'}: No such file or directory"]


@pytest.fixture
def notify_socket():
    """A unix datagram socket for $NOTIFY_SOCKET (in a short folder: socket paths are short),
    read as systemd reads it, all the time; yields its path and the messages so far."""
    folder = tempfile.mkdtemp(prefix="sr-notify-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    messages: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                messages.append(sock.recv(4096).decode())
            except (TimeoutError, socket.timeout):
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    yield path, messages
    done.set()
    reader.join()
    sock.close()
    shutil.rmtree(folder)


class TestNotifier:
    def test_abstract_socket_and_watchdog_pid(self):
        """@NAME is the abstract namespace; a WATCHDOG_PID of another process turns the watchdog off;
        without NOTIFY_SOCKET nothing is sent."""
        name = f"strongroom-test-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            mine = Notifier.from_env({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000"})
            assert mine.watchdog_seconds == 1.0 and mine.ready("up")
            assert sock.recv(100) == b"READY=1\nSTATUS=up"
            assert mine.watchdog() and sock.recv(100) == b"WATCHDOG=1"
            other = Notifier.from_env({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
            assert other.watchdog_seconds is None and not other.watchdog()
        assert not Notifier.from_env({}).ready()

    def test_no_watchdog_after_stopping(self):
        """Once STOPPING=1 is sent, neither a pass's ping nor the keep-alive thread sends WATCHDOG=1."""
        name = f"strongroom-test-stop-{os.getpid()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            mine = Notifier.from_env({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "20000"})
            beating = mine.keep_alive()  # every 10 ms
            assert sock.recv(100) == b"WATCHDOG=1"
            assert mine.stopping("bye")
            while (message := sock.recv(100)) == b"WATCHDOG=1":  # any sent before STOPPING
                pass
            assert message == b"STOPPING=1\nSTATUS=bye"
            assert not mine.watchdog()
            sock.settimeout(0.2)
            with pytest.raises(socket.timeout):
                sock.recv(100)
            beating.set()


class TestAgent:
    def test_stamped_lines_failures_as_errors_and_systemd_notified(self, tmp_path, notify_socket):
        """Every agent line starts with a timestamp, a failed backup is an error: line on stderr,
        and systemd's socket gets READY=1, WATCHDOG=1 and, on SIGTERM, STOPPING=1; exit 0."""
        url = str(tmp_path / "vault")
        vault = Vault.create(url)
        vault.policies.create(policy_from_options("hourly", {"every": "1h", "keep_daily": 3}))
        for name in ("good", "gone"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "data.txt").write_text(name)
            vault.protect("files", name, {"paths": [str(tmp_path / name)]}, policy="hourly")
        shutil.rmtree(tmp_path / "gone")  # its backup fails
        path, messages = notify_socket
        env = {**os.environ, "STRONGROOM_VAULT": url, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}
        agent = subprocess.Popen([sys.executable, "-c", "from strongroom.cli import main; main()",
                                  "agent", "--interval", "0.2"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (
                    Vault.open(url).points("good") and Vault.open(url).jobs.list(state="failed")):
                time.sleep(0.2)
            time.sleep(0.5)  # a pass or two more, and watchdog beats
            agent.send_signal(signal.SIGTERM)
            out, err = agent.communicate(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
        assert agent.returncode == 0, err
        lines = [line for line in (out + err).splitlines() if line]
        assert lines and all(STAMP.match(line) for line in lines), lines
        assert any(" backup of 'good': completed (" in line for line in out.splitlines())
        failed = [line for line in err.splitlines() if " error: backup of 'gone': failed" in line]
        assert len(failed) == 1 and "warning: backup" not in err
        assert any(line.endswith(" strongroom agent: stopped") for line in err.splitlines())
        time.sleep(0.3)  # the last datagrams read
        assert messages[0].startswith("READY=1\nSTATUS=watching ")
        assert "WATCHDOG=1" in messages
        assert messages[-1].startswith("STOPPING=1")

    def test_an_error_at_start_is_stamped_with_its_exit_code(self, tmp_path):
        """An agent whose vault is missing prints its one error line stamped and exits with the error's code."""
        done = run_strongroom("--vault", tmp_path / "none", "agent", timeout=120)
        assert done.returncode == 11
        assert len(done.stderr.splitlines()) == 1
        assert STAMP.match(done.stderr) and f"strongroom: error: No vault at {tmp_path / 'none'}" in done.stderr

    def test_json_reports_are_one_document_per_line(self, tmp_path):
        """agent --json prints each pass's report as one JSON line; its stderr is stamped."""
        url = str(tmp_path / "vault")
        vault = Vault.create(url)
        vault.policies.create(policy_from_options("hourly", {"every": "1h", "keep_daily": 3}))
        (tmp_path / "src").mkdir()
        vault.protect("files", "web", {"paths": [str(tmp_path / "src")]}, policy="hourly")
        agent = subprocess.Popen([sys.executable, "-c", "from strongroom.cli import main; main()",
                                  "agent", "--interval", "0.2", "--json"],
                                 env={**os.environ, "STRONGROOM_VAULT": url},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not Vault.open(url).points("web"):
                time.sleep(0.2)
            agent.send_signal(signal.SIGTERM)
            out, err = agent.communicate(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
        assert agent.returncode == 0, err
        reports = [json.loads(line) for line in out.splitlines()]
        assert [(r["kind"], r["name"], r["outcome"]) for r in reports[0]["results"]][0] == ("backup", "web", "completed")
        assert all(STAMP.match(line) for line in err.splitlines() if line)


class TestInstallUnits:
    def test_writes_the_three_units_with_the_executable_and_vault(self, cli, tmp_path):
        """--dir DIR gets the agent service, the run-due service and its timer, filled in; systemctl is printed."""
        target = tmp_path / "units"
        done = cli("install-units", "--dir", target, "--vault", "/srv/my vault%1")
        assert sorted(p.name for p in target.iterdir()) == sorted(units.UNITS)
        agent = (target / "strongroom-agent.service").read_text()
        exe = str(Path(sys.executable).parent / "strongroom")
        assert f'ExecStart="{exe}" agent' in agent
        assert 'Environment="STRONGROOM_VAULT=/srv/my vault%%1"' in agent
        assert "Type=notify" in agent and "WatchdogSec=" in agent and "Restart=on-failure" in agent
        assert "WantedBy=multi-user.target" in agent and "@" not in agent.replace("@STRONGROOM@", "")
        run_due = (target / "strongroom-run-due.service").read_text()
        assert f'ExecStart="{exe}" run-due' in run_due and "Type=oneshot" in run_due
        assert "OnCalendar=minutely" in (target / "strongroom-run-due.timer").read_text()
        assert all(stat.S_IMODE((target / n).stat().st_mode) == 0o644 for n in units.UNITS)
        assert "systemctl enable --now strongroom-agent.service" in done.stdout
        assert "systemctl enable --now strongroom-run-due.timer" in done.stdout
        again = cli("install-units", "--dir", target, "--vault", "/srv/my vault%1", "--json")
        assert {u["outcome"] for u in json.loads(again.stdout)["units"]} == {"unchanged"}

    def test_user_units_and_dry_run(self, cli, tmp_path, monkeypatch):
        """--user goes to $XDG_CONFIG_HOME/systemd/user, without system-only sandboxing; --dry-run writes nothing."""
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        dry = cli("install-units", "--user", "--vault", "/srv/v", "--dry-run")
        assert not (tmp_path / "config").exists()
        assert "systemctl --user enable --now strongroom-agent.service" in dry.stdout
        assert "WantedBy=default.target" in dry.stdout
        cli("install-units", "--user", "--vault", "/srv/v")
        agent = (tmp_path / "config" / "systemd" / "user" / "strongroom-agent.service").read_text()
        assert "WantedBy=default.target" in agent and "ProtectSystem=" not in agent
        assert "NoNewPrivileges=yes" in agent

    def test_the_vault_comes_from_the_global_option_or_is_required(self, cli, tmp_path):
        """Without --vault the global one is used; with neither it is exit 4."""
        Cli = type(cli)
        Cli(None)("install-units", "--dir", tmp_path / "a", expect=4)
        Cli("/srv/global")("install-units", "--dir", tmp_path / "b")
        assert "STRONGROOM_VAULT=/srv/global" in (tmp_path / "b" / "strongroom-agent.service").read_text()

    def test_packaging_holds_the_same_texts(self):
        """packaging/systemd/ ships the templates install-units writes, unchanged."""
        for name, text in units.UNITS.items():
            assert (REPO / "packaging" / "systemd" / name).read_text() == text

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
    @pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
    def test_systemd_accepts_the_units(self, cli, tmp_path, user):
        """systemd-analyze verify finds nothing wrong with the written units."""
        target = tmp_path / "units"
        cli("install-units", "--dir", target, "--vault", "/srv/vault", *(["--user"] if user else []))
        paths = [str(target / name) for name in units.UNITS]
        runtime = tmp_path / "run"  # a user manager needs one
        runtime.mkdir(mode=0o700)
        done = subprocess.run(["systemd-analyze", "verify", *(["--user"] if user else []), *paths],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        problems = [line for line in done.stderr.splitlines() if str(target) in line]  # e.g. an unknown key
        assert done.returncode == 0 and not problems, done.stderr


def complete(words: str, env: dict) -> list[str]:
    """What bash completion offers for the last word of ``words`` (as click's own tests ask)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = run_strongroom(env={**env, "_STRONGROOM_COMPLETE": "bash_complete", "COMP_WORDS": words,
                               "COMP_CWORD": str(cword)}, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [line.partition(",")[2] for line in done.stdout.splitlines() if line]


class TestCompletion:
    @pytest.fixture
    def points(self, cli, tmp_path, vault_url):
        """A vault (opened by its local key) with items docs, data and web; two points of docs."""
        for name in ("docs", "data", "web"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "f").write_text(name)
        cli("vault", "create", vault_url)
        for name in ("docs", "data", "web"):
            cli("protect", "files", name, "--path", tmp_path / name)
        return [json.loads(cli("backup", "docs", "--json").stdout)["id"] for _ in range(2)]

    def test_item_names(self, points, vault_url):
        """backup, drill and items stop complete the vault's item names."""
        env = {"STRONGROOM_VAULT": vault_url}
        assert complete("strongroom backup d", env) == ["data", "docs"]
        assert complete("strongroom drill ", env) == ["data", "docs", "web"]
        assert complete(f"strongroom --vault {vault_url} items stop w", {}) == ["web"]
        assert complete("strongroom points d", env) == ["data", "docs"]  # points ITEM is points list ITEM

    def test_point_ids_after_the_at(self, points, vault_url):
        """ITEM@ completes the item's point ids, newest first; a prefix narrows them; before @ items."""
        env = {"STRONGROOM_VAULT": vault_url}
        newest, oldest = points[1][:8], points[0][:8]
        assert complete("strongroom restore docs@", env) == [f"docs@{newest}", f"docs@{oldest}"]
        assert complete(f"strongroom browse docs@{oldest[:6]}", env) == [f"docs@{oldest}"]
        assert complete("strongroom points delete we", env) == ["web"]
        assert complete("strongroom restore web@", env) == []

    def test_the_config_files_default_vault(self, points, vault_url):
        """Neither --vault nor STRONGROOM_VAULT: the config file's default_vault is the one completed from."""
        home = os.environ["STRONGROOM_HOME"]
        config = os.path.join(home, "config.toml")
        before = open(config, encoding="utf-8").read() if os.path.exists(config) else ""
        with open(config, "w", encoding="utf-8") as out:  # at the top: before any table
            out.write(f'default_vault = "{vault_url}"\n' + before)
        assert complete("strongroom backup d", {}) == ["data", "docs"]

    def test_nothing_when_the_vault_cannot_be_opened(self, tmp_path):
        """No vault, a missing vault, a passphrase vault without its passphrase: nothing, silently."""
        assert complete("strongroom backup d", {}) == []
        assert complete("strongroom backup d", {"STRONGROOM_VAULT": str(tmp_path / "none")}) == []
        url = str(tmp_path / "locked")
        made = run_strongroom("--passphrase-env", "PW", "vault", "create", url, env={"PW": "pw-1234567890"},
                              timeout=120)
        assert made.returncode == 0, made.stderr
        assert complete("strongroom restore x@", {"STRONGROOM_VAULT": url}) == []
