"""Every command answers --help; every command that lists or reports has --json, and its
JSON parses, carries the schema version (docs/json.md) and writes every time with its UTC
offset.

The commands are read from the click tree when the test runs, so a command added later is
checked too: it fails here until it has ``--json`` or is in :data:`NO_JSON` with the
reason, and until it is run below or is in :data:`NOT_RUN_HERE` with the reason.
"""

from __future__ import annotations

import json
import re

import click
import pytest

from strongroom.cli import build_cli
from strongroom.cli.output import SCHEMA
from strongroom.plugins import PluginHost
from strongroom.testing import Cli

#: Commands that have no --json, and why: what they print is not a report.
NO_JSON = {
    "server run": "a daemon: it serves until stopped and writes only its log lines, on stderr",
    "vault key export": "its output is the recovery kit itself, text for a file or a pipe",
    "guard sign": "its output is the ticket itself, the text --ticket FILE reads",
    "dump": "its output is the file itself, the bytes of one file of a point",
    "mount": "a file system served until unmounted; it prints one note line, on stderr",
    "wal push": "PostgreSQL's archive_command: its exit status is the answer, and it prints nothing",
    "wal get": "PostgreSQL's restore_command: its exit status is the answer, and it writes the segment",
}

#: Commands with --json that this test does not run, and why (each is run with --json elsewhere).
NOT_RUN_HERE = {
    "agent": "a loop until SIGTERM; its one-line JSON reports are tested in tests/cli/test_logging_units.py",
    "protect postgres": "needs a PostgreSQL server (tests/postgres)",
    "protect vm": "needs a disk image and QEMU tools (tests/vm)",
    "protect sqlite": "a contrib plugin with its own tests (contrib/strongroom-sqlite)",
    "vault replicate": "needs a geo vault with a reachable secondary (tests/redundancy)",
    "vault immutability enable": "needs storage with object lock (tests/immutability)",
    "vault immutability disable": "needs storage with object lock (tests/immutability)",
    "vault immutability lock": "needs storage with object lock (tests/immutability)",
    "vault recover-objects": "needs storage with object versions (tests/immutability)",
    "notify test": "needs a reachable sink (contrib/strongroom-notify/tests)",
    "copy": "needs a second vault (tests/operations/test_copy.py runs it with --json)",
    "vm export": "serves until stopped; tests/vm/test_vm_export.py runs it with --json",
    "wal list": "needs a physical postgres item (tests/postgres/test_pg_physical_wal.py runs it with --json)",
    "wal flush": "needs a physical postgres item (tests/postgres/test_pg_physical_wal.py runs it with --json)",
    "wal setup": "needs a physical postgres item (tests/postgres/test_pg_physical_wal.py runs it with --json)",
}


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))


def _tree() -> list[tuple[str, click.Command]]:
    return [(" ".join(path), command) for path, command in _walk(build_cli(PluginHost.create())) if path]


def _reports(command: click.Command) -> bool:
    """A leaf command, or a group that does something of its own (``items``, ``alerts``)."""
    return not isinstance(command, click.Group) or command.invoke_without_command


def _has_json(command: click.Command) -> bool:
    return any("--json" in p.opts for p in command.params if isinstance(p, click.Option))


COMMANDS = _tree()


def _check(path: str, stdout: str) -> object:
    """``stdout`` is one JSON document with the schema key (each element of an array)."""
    try:
        doc = json.loads(stdout)
    except ValueError as exc:
        raise AssertionError(f"strongroom {path} --json printed no JSON ({exc}): {stdout[:300]!r}") from None
    elements = doc if isinstance(doc, list) else [doc]
    for element in elements:
        assert isinstance(element, dict) and element.get("schema") == SCHEMA, \
            f"strongroom {path} --json: {str(element)[:200]} has no \"schema\": {SCHEMA}"
    for text in _strings(doc):
        if _TIME.match(text):
            assert _OFFSET.search(text), f"strongroom {path} --json: time {text!r} has no UTC offset"
    return doc


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_OFFSET = re.compile(r"([+-]\d{2}:\d{2}|Z)$")


def _strings(doc: object):
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from _strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _strings(value)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS])
def test_every_command_answers_help(path):
    """--help of every command and group exits 0 with its usage and no traceback."""
    result = Cli()(*path.split(), "--help", expect=None)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "Usage:" in result.stdout and "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", [p for p, c in COMMANDS if _reports(c)])
def test_every_command_has_json(path):
    """Every command that lists or reports has --json, or is listed in NO_JSON with the reason."""
    command = dict(COMMANDS)[path]
    assert _has_json(command) or path in NO_JSON, (
        f"strongroom {path} has no --json: add it (emit_json), or list it in NO_JSON with the reason")


def test_exemptions_name_real_commands():
    """NO_JSON and NOT_RUN_HERE name commands that exist (a stale entry hides nothing);
    a command in NO_JSON really lacks --json."""
    commands = dict(COMMANDS)
    for path in NOT_RUN_HERE:
        assert path in commands or path.split()[0] in ("notify", "protect"), f"NOT_RUN_HERE: no command {path}"
    for path in NO_JSON:
        if path in commands:
            assert not _has_json(commands[path]), f"{path} has --json now: take it out of NO_JSON"


class TestEveryJsonCommandOnARealVault:
    def test_run_each_with_json(self, tmp_path):
        """Every command with --json, run on a small real vault, prints JSON with the schema
        key; each one is run here or listed in NOT_RUN_HERE with the reason."""
        ran: set[str] = set()
        present = {path for path, _ in COMMANDS}
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "a.txt").write_text("alpha\n")
        (src / "b.txt").write_text("beta\n")
        url = str(tmp_path / "vault")
        cli = Cli(url)

        def run(path: str, *args: str, expect: int | None = 0, runner: Cli = cli):
            if path not in present:  # a command this build lacks: the coverage check below still holds
                return {}
            result = runner(*path.split(), *map(str, args), "--json", expect=expect)
            assert "Traceback" not in result.stdout + result.stderr, result.stderr
            ran.add(path)
            return _check(path, result.stdout)

        created = run("vault create", url, "--name", "json")
        vault_id = created["vault_id"]
        run("protect files", "docs", "--path", src)
        run("protect files", "tmp", "--path", src / "sub")
        point = run("backup", "docs")["id"]
        run("backup", "tmp")
        run("items")
        run("points")
        run("points list", "docs")
        run("browse", f"docs@{point[:8]}", str(src).lstrip("/"))
        run("restore", "docs", "--target", tmp_path / "out")
        run("jobs")
        second = run("backup", "docs")["id"]
        run("diff", f"docs@{point[:8]}", f"docs@{second[:8]}")
        run("find", "*.txt", "--item", "docs")
        run("items update", "tmp", "--exclude", "*.tmp")
        exported = tmp_path / "strongroom.toml"
        run("export-config", "--output", exported)
        run("export-config")
        assert run("apply", exported, "--dry-run")["changes"] == 0
        run("man", "--output", tmp_path / "man")
        run("drill", "docs", "--scratch", tmp_path)
        run("stats")
        run("vault info")
        run("vault verify")
        run("vault repair")
        run("vault rebuild-index")
        run("vault audit")
        run("vault security")
        run("vault upgrade", "--dry-run")
        run("vault redundancy")
        run("vault redundancy show")
        run("vault immutability show")
        run("vault soft-delete", "--enable", "--days", "14")
        run("points delete", f"docs@{point[:8]}", "--yes")
        run("points list", "--deleted")
        run("points undelete", f"docs@{point[:8]}")
        run("items stop", "tmp", "--delete-data", "--yes")
        run("items undelete", "tmp")
        run("policy create", "nightly", "--daily", "03:00", "--timezone", "Europe/Berlin", "--keep-daily", "3")
        run("items stop", "docs", "--retain", "forever")
        run("items resume", "docs", "--policy", "nightly")

        run("vault key list")
        run("vault key upgrade")
        run("vault key rotate")
        added = run("vault key add", "--provider", "passphrase", "--new-passphrase-env", "NEW_PW",
                    runner=_with_env(cli, NEW_PW="a long passphrase"))
        run("vault key rewrap", added["slot"], "--new-passphrase-env", "NEW_PW",
            runner=_with_env(cli, NEW_PW="another long passphrase"))
        removable = [s["slot"] for s in run("vault key list") if s["provider"] == "passphrase"]
        run("vault key remove", removable[0])
        kit = tmp_path / "kit.txt"
        cli("vault", "key", "export", "--output", kit)
        run("vault key import", kit)

        run("policy update", "nightly", "--keep-daily", "4")
        run("policy list")
        shown = run("policy show", "nightly")
        assert all(moment.endswith("+01:00") or moment.endswith("+02:00") for moment in shown["next_runs"])
        run("policy floors")
        run("policy create", "spare", "--every", "6h")
        run("policy delete", "spare")
        run("schedule")
        run("run-due")
        run("prune", "--dry-run")
        run("prune settings")

        run("alerts sink add", "log", "--type", "command", "--option", f"command=true")
        run("alerts sink list")
        run("alerts sink types")
        run("alerts test")
        run("alerts sink remove", "log")
        alerts = run("alerts")
        assert alerts, "removing a sink raises a security alert"
        run("alerts ack", alerts[0]["alert_id"])

        run("plugins")
        run("notify show")  # contrib/strongroom-notify, where installed
        run("install-units", "--user", "--dir", tmp_path / "units", "--dry-run")

        key = tmp_path / "guard"
        run("guard keygen", "--out", key)
        run("vault guard show")
        run("vault guard link", f"{key}.pub")
        ticket = tmp_path / "ticket"
        cli("guard", "sign", "--key", key, "--vault-id", vault_id, "--operation", "guard.unlink", "--output", ticket)
        run("vault guard unlink", "--ticket", ticket)

        empty = str(tmp_path / "empty")
        other = Cli(empty)
        run("vault create", empty, runner=other)
        run("vault redundancy set", "local", runner=other)  # only while no item is protected
        run("vault delete", "--yes", runner=other)

        server = tmp_path / "server"
        run("server init", server, "--listen", "127.0.0.1:18443")  # written down, not listened on
        run("server user add", "bob", "--dir", server)
        run("server user list", "--dir", server)
        token = run("server token create", "bob", "--dir", server)["token_id"]
        run("server token list", "--dir", server)
        run("server token revoke", token, "--dir", server)
        run("server role assign", "bob", "--vault", "*", "--role", "reader", "--dir", server)
        run("server role list", "--dir", server)
        run("server role remove", "bob", "--vault", "*", "--dir", server)
        run("server vault add", "hosted", "--storage", tmp_path / "hosted", "--create", "--dir", server)
        run("server vault list", "--dir", server)

        with_json = {path for path, command in COMMANDS if _reports(command) and _has_json(command)}
        missing = sorted(with_json - ran - set(NOT_RUN_HERE))
        assert not missing, (f"not run with --json here: {missing}: run each in this test, or list it in"
                             " NOT_RUN_HERE with the reason")


def _with_env(cli: Cli, **env: str) -> Cli:
    class WithEnv(Cli):
        def __call__(self, *args, env=None, **kwargs):
            return super().__call__(*args, env={**extra, **(env or {})}, **kwargs)

    extra = env
    return WithEnv(cli.vault_url)
