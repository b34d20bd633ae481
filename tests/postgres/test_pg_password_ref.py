"""--password-ref: the password of a postgres item is a secret reference, resolved at every
run (backup, restore, drill), and the password itself is stored and shown nowhere: not in
the vault's files, the job records, the command's output, or the tools' command lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from vaultkit import Cli, assert_one_line_error, run_strongroom

ROLE, DB = "refapp", "refdb"
OLD_PASSWORD = "Old-pw-7Hq2-xK9"
NEW_PASSWORD = "New-pw-3Zr8-mW4"


@pytest.fixture(scope="module")
def ref_db(pg_cluster):
    """Database ``refdb`` owned by role ``refapp`` (SCRAM password over TCP, may create
    databases), with one table of 500 rows."""
    pg_cluster.psql(f"create role {ROLE} login createdb password '{OLD_PASSWORD}'")
    pg_cluster.psql(f"create database {DB} owner {ROLE}")
    pg_cluster.psql("create table t(id int primary key, v text); insert into t select g, 'row ' || g"
                    f" from generate_series(1, 500) g; alter table t owner to {ROLE}", DB)
    yield
    for name in pg_cluster.databases():
        if name.startswith(("refdb", "k3_")):
            pg_cluster.dropdb(name)
    pg_cluster.psql(f"drop role {ROLE}")


@pytest.fixture
def set_password(pg_cluster, ref_db):
    """Change the role's password (the SQL on psql's standard input, not its command
    line); the module's tests each start from OLD_PASSWORD."""
    def change(password: str) -> None:
        pg_cluster.script(f"alter role {ROLE} password '{password}';")

    yield change
    change(OLD_PASSWORD)


@pytest.fixture
def cli(vault_url):
    cli = Cli(vault_url)
    cli("vault", "create", vault_url)
    return cli


@pytest.fixture
def wrapped_bindir(pg_cluster, tmp_path) -> tuple[Path, Path]:
    """A --bindir whose tools each record a call in a new file of a folder (its argv,
    NUL-separated, then which of PGPASSWORD and K3_PG_PW its environment has) and then
    run the real tool."""
    bindir, calls = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    calls.mkdir()
    for tool in ("pg_dump", "pg_dumpall", "pg_restore", "psql"):
        script = bindir / tool
        script.write_text(
            f"#!/bin/sh\ncall=$(mktemp -p '{calls}' call.XXXXXXXX)\n"
            "printf '%s\\0' \"$0\" \"$@\" > \"$call\"\n"
            "printf 'ENV:%s %s' \"${PGPASSWORD:+PGPASSWORD}\" \"${K3_PG_PW:+K3_PG_PW}\" >> \"$call\"\n"
            f"exec '{pg_cluster.bindir}/{tool}' \"$@\"\n")
        script.chmod(0o755)
    return bindir, calls


def tcp_args(cluster, *extra: str) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(cluster.port), "--user", ROLE, "--database", DB, *extra]


def write_secret(path: Path, text: str) -> None:
    path.write_text(text + "\n")
    path.chmod(0o600)


class CmdlineWatch:
    """Reads every process's /proc/PID/cmdline while it runs, keeping what it saw."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            self.seen.add(fh.read())
                    except OSError:
                        pass

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def assert_no_password_in_files(folder: str, *passwords: str) -> int:
    """No file under *folder* holds any of *passwords*; the number of files read."""
    count = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                data = fh.read()
            count += 1
            for password in passwords:
                assert password.encode() not in data, os.path.join(root, name)
    return count


class TestResolvedAtEveryRun:
    def test_env_and_file_references_follow_a_changed_password(
            self, pg_cluster, ref_db, set_password, cli, vault_url, tmp_path, wrapped_bindir):
        """Items protected with --password-ref env:VAR and file:PATH back up; after the
        server's password changes (the file rewritten, the variable set anew) the next
        backup uses the new one, the old value now fails; both restore into new databases
        equal to the source and the file item drills; every tool gets the password as
        PGPASSWORD only (not the variable named); the passwords are nowhere: not in the
        vault's files, items, jobs, points or any output, nor in the tools' argv."""
        bindir, calls_dir = wrapped_bindir
        pwfile = tmp_path / "secrets" / "pg.pass"
        pwfile.parent.mkdir()
        (tmp_path / "scratch").mkdir()
        write_secret(pwfile, OLD_PASSWORD)
        outputs: list[str] = []

        def run(*args: str, env: dict | None = None, expect: int | None = 0):
            result = cli(*args, env=env, expect=expect)
            outputs.append(result.output + result.stderr)
            return result

        old_env, new_env = {"K3_PG_PW": OLD_PASSWORD}, {"K3_PG_PW": NEW_PASSWORD}
        with CmdlineWatch() as watch:
            run("protect", "postgres", "byenv", *tcp_args(pg_cluster, "--password-ref", "env:K3_PG_PW",
                                                            "--bindir", str(bindir)), env=old_env)
            run("protect", "postgres", "byfile", *tcp_args(pg_cluster, "--password-ref", f"file:{pwfile}",
                                                             "--bindir", str(bindir)))
            run("backup", "byenv", env=old_env)
            run("backup", "byfile")

            set_password(NEW_PASSWORD)
            write_secret(pwfile, NEW_PASSWORD)
            run("backup", "byfile")
            stale = run("backup", "byenv", env=old_env, expect=None)
            assert_one_line_error(stale, 81, "password authentication failed")
            run("backup", "byenv", env=new_env)

            run("restore", "byenv", "--to-database", "k3_from_env", env=new_env)
            run("restore", "byfile", "--to-database", "k3_from_file")
            drill = json.loads(run("drill", "byfile", "--json", "--scratch", str(tmp_path / "scratch")).stdout)
        assert drill["ok"] is True and "1 database(s) restored into scratch databases" in drill["method"]
        source = pg_cluster.table_digest(DB, "t")
        assert source[0] == 500
        assert pg_cluster.table_digest("k3_from_env", "t") == source
        assert pg_cluster.table_digest("k3_from_file", "t") == source

        points = {item: json.loads(cli("points", item, "--json").stdout) for item in ("byenv", "byfile")}
        assert len(points["byenv"]) == 2 and len(points["byfile"]) == 2
        items = json.loads(cli("items", "--json").stdout)
        stored = json.dumps(items)
        assert "env:K3_PG_PW" in stored and f"file:{pwfile}" in stored
        jobs = cli("jobs", "--json").stdout
        assert len(json.loads(jobs)) >= 8
        documents = stored + jobs + json.dumps(points) + "".join(outputs)
        assert assert_no_password_in_files(vault_url, OLD_PASSWORD, NEW_PASSWORD) > 10
        recorded = [path.read_bytes() for path in calls_dir.iterdir()]
        calls = [data.split(b"\0") for data in recorded]
        assert any(call[0].endswith(b"/pg_dump") and b"--format=custom" in call for call in calls)
        assert any(call[0].endswith(b"/pg_restore") for call in calls)
        connecting = [call for call in calls if any(b"host='127.0.0.1'" in arg for arg in call)]
        assert len(connecting) >= 10
        assert [call for call in connecting if call[-1] != b"ENV:PGPASSWORD "] == []
        for password in (OLD_PASSWORD, NEW_PASSWORD):
            assert password not in documents
            assert not [data for data in recorded if password.encode() in data]
            assert not [cmdline for cmdline in watch.seen if password.encode() in cmdline]


PLUGIN = '''
"""A third party's secret provider: test:NAME is the entry NAME of the JSON file $K3_SECRET_STORE."""
import json
import os

from strongroom import Secret, SecretNotAvailable, SecretProvider, hookimpl


class StoreProvider(SecretProvider):
    scheme = "test"
    description = "an entry of the JSON file $K3_SECRET_STORE"

    def resolve(self, rest):
        with open(os.environ["K3_SECRET_STORE"]) as fh:
            store = json.load(fh)
        if rest not in store:
            raise SecretNotAvailable(reason=f"the store has no entry {rest}")
        return Secret(store[rest].encode())


@hookimpl
def strongroom_register_secret_providers(registry):
    registry.add(StoreProvider.scheme, StoreProvider())
'''


class TestAPluginsScheme:
    def test_an_installed_plugin_provides_the_password(self, pg_cluster, ref_db, set_password, vault_url, tmp_path):
        """A distribution registering the scheme test: through the hook (installed on the
        path, loaded by its entry point) gives the password of an item protected with
        --password-ref test:NAME; a changed entry is used by the next backup; a missing
        entry is exit 36 naming the reference."""
        site = tmp_path / "site"
        site.mkdir()
        (site / "sr_k3_secretstore.py").write_text(textwrap.dedent(PLUGIN))
        info = site / "strongroom_k3_secretstore-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: strongroom-k3-secretstore\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[strongroom]\nk3store = sr_k3_secretstore\n")
        store = tmp_path / "store.json"
        store.write_text(json.dumps({"pg": OLD_PASSWORD}))
        env = {"PYTHONPATH": os.pathsep.join([str(site), *sys.path]), "K3_SECRET_STORE": str(store),
               "STRONGROOM_VAULT": vault_url}

        def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
            done = run_strongroom(*args, env=env)
            assert done.returncode == expect, done.stderr
            assert OLD_PASSWORD not in done.stdout + done.stderr
            assert NEW_PASSWORD not in done.stdout + done.stderr
            return done

        run("vault", "create", vault_url)
        plugins = json.loads(run("plugins", "--json").stdout)
        mine = [p for p in plugins if p["name"] == "k3store"]
        assert mine and "secret-provider:test" in mine[0]["registered"]
        run("protect", "postgres", "viaplugin", *tcp_args(pg_cluster, "--password-ref", "test:pg"))
        run("backup", "viaplugin")
        set_password(NEW_PASSWORD)
        store.write_text(json.dumps({"pg": NEW_PASSWORD}))
        run("backup", "viaplugin")
        run("restore", "viaplugin", "--to-database", "k3_from_plugin")
        assert pg_cluster.table_digest("k3_from_plugin", "t") == pg_cluster.table_digest(DB, "t")
        store.write_text(json.dumps({}))
        failed = run("backup", "viaplugin", expect=36)
        assert failed.stderr.strip() == ("strongroom: error: Secret test:pg is not available:"
                                         " the store has no entry pg")
        assert_no_password_in_files(vault_url, OLD_PASSWORD, NEW_PASSWORD)


class TestBadReferences:
    @pytest.mark.parametrize("ref, code, words", [
        (OLD_PASSWORD, 35, ("Bad secret reference", "SCHEME:REST", "known schemes: env, file")),
        ("nope:x", 35, ("unknown scheme 'nope'", "known schemes: env, file")),
        ("env:K3_NOT_SET", 36, ("Secret env:K3_NOT_SET is not available", "K3_NOT_SET is not set")),
        ("file:/nonexistent/k3.pass", 36, ("file:/nonexistent/k3.pass", "No such file")),
        ("env:A=B", 35, ("name of an environment variable",)),
    ])
    def test_protect_refuses_a_bad_reference_in_one_line(self, pg_cluster, ref_db, cli, ref, code, words):
        """Each bad reference is one line with its exit code (35: the reference itself, 36:
        the secret cannot be read); a reference that is not SCHEME:REST is not echoed; no
        item is made."""
        res = cli("protect", "postgres", "bad", *tcp_args(pg_cluster, "--password-ref", ref), expect=None)
        assert_one_line_error(res, code, *words)
        assert OLD_PASSWORD not in res.output + res.stderr
        assert json.loads(cli("items", "--json").stdout) == []

    def test_empty_secret_file_is_refused(self, pg_cluster, ref_db, cli, tmp_path):
        """A file holding only a newline is an empty secret: exit 36, never sent as a password."""
        empty = tmp_path / "empty.pass"
        write_secret(empty, "")
        res = cli("protect", "postgres", "bad", *tcp_args(pg_cluster, "--password-ref", f"file:{empty}"),
                  expect=None)
        assert_one_line_error(res, 36, f"file:{empty}", "the secret is empty")

    def test_two_password_options_are_refused(self, pg_cluster, ref_db, cli):
        """--password-ref with --password-env is one line naming the choice (exit 47)."""
        res = cli("protect", "postgres", "bad", *tcp_args(pg_cluster, "--password-ref", "env:A",
                                                          "--password-env", "B"), expect=None)
        assert_one_line_error(res, 47, "give only one of --password-ref, --password-env")

    def test_a_secret_gone_at_backup_time_fails_the_job_with_the_reference(self, pg_cluster, ref_db, cli, tmp_path):
        """A password file removed after protect fails the backup (exit 36); the failed job
        records the reference and the reason, not the password."""
        pwfile = tmp_path / "pg.pass"
        write_secret(pwfile, OLD_PASSWORD)
        cli("protect", "postgres", "gone", *tcp_args(pg_cluster, "--password-ref", f"file:{pwfile}"))
        pwfile.unlink()
        res = cli("backup", "gone", expect=None)
        assert_one_line_error(res, 36, f"Secret file:{pwfile} is not available", "No such file")
        jobs = json.loads(cli("jobs", "--json").stdout)
        failed = [job for job in jobs if job.get("state") == "failed"]
        assert failed and f"file:{pwfile}" in json.dumps(failed)
        assert OLD_PASSWORD not in json.dumps(jobs)

    def test_restore_takes_a_reference_for_another_server_login(self, pg_cluster, ref_db, cli):
        """restore --password-ref checks the reference it is given (exit 35 for an unknown scheme)."""
        cli("protect", "postgres", "r", *tcp_args(pg_cluster, "--password-ref", "env:K3_PG_PW"),
            env={"K3_PG_PW": OLD_PASSWORD})
        cli("backup", "r", env={"K3_PG_PW": OLD_PASSWORD})
        res = cli("restore", "r", "--to-database", "k3_never", "--password-ref", "vault:x", expect=None)
        assert_one_line_error(res, 35, "unknown scheme 'vault'")
        assert "k3_never" not in pg_cluster.databases()
