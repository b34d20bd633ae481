"""Start-up stays light: ``--help`` and ``plugins`` load no engine, storage or crypto code.

Each command runs in a fresh interpreter through the console script's ``main``; the child
then reports every module in ``sys.modules``.  Commands that work on a vault import what
they need when they run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Modules (and their submodules) that only commands doing real work may import.
HEAVY = (
    "numpy",
    "strongroom.engine",
    "strongroom.repository.repository",
    "strongroom.repository.index",
    "strongroom.storage.fsspec_store",
    "strongroom.storage.retry",
    "strongroom.storage.faults",
    "strongroom.storage.memory",
    "strongroom.vault",
    "zstandard",
    "cryptography",
    "fsspec",
    "pytsk3",
)

CHILD = """
import json, sys
from strongroom.cli import main
sys.argv = ["strongroom", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(REPORT, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def run_cli(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``strongroom ARGS`` in a child; return the process and the modules it loaded."""
    report = tmp_path / "modules.json"
    code = CHILD.replace("REPORT", repr(str(report)))
    proc = subprocess.run([sys.executable, "-c", code, str(report), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    loaded = json.loads(report.read_text())
    assert loaded["code"] == 0, proc.stderr
    return proc, loaded["modules"]


def heavy_in(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def _backed_up_docs(tmp_path, monkeypatch) -> None:
    """A vault with item ``docs`` (``data/a.txt``, "hello") backed up once, by the CLI."""
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRONGROOM_VAULT", str(tmp_path / "vault"))
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", "correct horse")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    run_cli(tmp_path, "vault", "create", str(tmp_path / "vault"))
    run_cli(tmp_path, "protect", "files", "docs", "--path", str(tmp_path / "data"))
    run_cli(tmp_path, "backup", "docs")


class TestStartup:
    @pytest.mark.parametrize("args", [("--help",), ("plugins",), ("plugins", "--json")])
    def test_listing_commands_import_nothing_heavy(self, tmp_path, args):
        """--help and plugins load the plugins but none of the heavy modules."""
        proc, modules = run_cli(tmp_path, *args)
        assert proc.stdout.strip()
        assert "strongroom_files" in modules and "strongroom_postgres" in modules
        assert heavy_in(modules) == []

    def test_plugins_still_lists_the_built_in_workloads(self, tmp_path):
        """The light start-up still registers every built-in workload."""
        proc, _ = run_cli(tmp_path, "plugins", "--json")
        registered = {r for p in json.loads(proc.stdout) for r in p["registered"]}
        assert {"workload:files", "workload:postgres", "workload:vm"} <= registered

    def test_python_dash_m_runs_the_same_command_line(self, tmp_path):
        """``python -m strongroom`` is the ``strongroom`` script (handy for ``-X importtime``)."""
        proc = subprocess.run([sys.executable, "-m", "strongroom", "--version"], capture_output=True, text=True,
                              env={**os.environ, "STRONGROOM_HOME": str(tmp_path)})
        script = subprocess.run([sys.executable, "-c", "from strongroom.cli import main; main()", "--version"],
                                capture_output=True, text=True, env={**os.environ,
                                                                     "STRONGROOM_HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == script.stdout.split()[-1] and "." in proc.stdout

    def test_the_check_sees_heavy_imports(self, tmp_path):
        """A command that opens a vault does load the engine, so the check above can fail."""
        _, modules = run_cli(tmp_path, "vault", "create", str(tmp_path / "v"))
        assert "strongroom.repository.repository" in heavy_in(modules)


#: What plugins load only when their workload or key provider is used, never at start-up:
#: PKCS#11 (python-pkcs11 and asn1crypto), the VM and postgres backup machinery, the VM's
#: NBD server (``vm export``), the files scanner.
PLUGIN_MACHINERY = (
    "pkcs11",
    "asn1crypto",
    "strongroom_vm.offline",
    "strongroom_vm.live",
    "strongroom_vm.qmp",
    "strongroom_vm.atrest",
    "strongroom_vm.nbdserve",
    "strongroom_postgres.dump",
    "strongroom_postgres.server",
    "strongroom_postgres.browse",
    "strongroom_files.scan",
)


def machinery_in(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in PLUGIN_MACHINERY)]


class TestPluginsLoadLightly:
    @pytest.mark.parametrize("args", [("--version",), ("--help",), ("restore", "--help"),
                                      ("protect", "files", "--help")])
    def test_start_up_imports_no_plugin_machinery(self, tmp_path, args):
        """Registering the plugins imports no PKCS#11, VM, postgres or scanner code."""
        proc, modules = run_cli(tmp_path, *args)
        assert proc.stdout.strip()
        assert {"strongroom_vm", "strongroom_postgres", "strongroom_files"} <= set(modules)
        assert heavy_in(modules) == [] and machinery_in(modules) == []

    def test_a_files_backup_imports_only_its_own_machinery(self, tmp_path, monkeypatch):
        """Backing up a files item loads the scanner, and nothing of the other plugins."""
        _backed_up_docs(tmp_path, monkeypatch)
        _, modules = run_cli(tmp_path, "backup", "docs")
        assert machinery_in(modules) == ["strongroom_files.scan"]


#: What a vault builds only for the commands that use it: repair, prune and the scheduler.
VAULT_SERVICES = ("strongroom.services.repair", "strongroom.services.prune", "strongroom.services.schedule")


class TestVaultServicesLoadLazily:
    def test_a_restore_imports_no_repair_prune_or_scheduler(self, tmp_path, monkeypatch):
        """Opening a vault for a restore builds no repair, prune or scheduler service (nor
        imports them); a prune then does."""
        _backed_up_docs(tmp_path, monkeypatch)
        _, modules = run_cli(tmp_path, "restore", "docs", "--target", str(tmp_path / "out"),
                             str(tmp_path / "data" / "a.txt"))
        assert (tmp_path / "out" / str(tmp_path / "data" / "a.txt").lstrip("/")).read_text() == "hello"
        assert [m for m in VAULT_SERVICES if m in modules] == []
        _, modules = run_cli(tmp_path, "prune")
        assert "strongroom.services.prune" in modules


class TestExit:
    FREEZE_REPORT = """
import gc, sys
from strongroom.cli import main
try:
    main({argv})
except SystemExit:
    pass
print(gc.get_freeze_count())
"""

    def test_the_process_command_line_skips_the_last_collection(self, tmp_path):
        """Run as the process's command line (no argv), ``main`` leaves the objects frozen,
        so the interpreter's exit does not walk them all once more; a caller that passes
        argv (and goes on) keeps its garbage collection as it was."""
        env = {**os.environ, "STRONGROOM_HOME": str(tmp_path)}
        own = subprocess.run([sys.executable, "-c", self.FREEZE_REPORT.format(argv=""), "--version"],
                             capture_output=True, text=True, env=env, check=True)
        called = subprocess.run([sys.executable, "-c", self.FREEZE_REPORT.format(argv="['--version']")],
                                capture_output=True, text=True, env=env, check=True)
        assert int(own.stdout.split()[-1]) > 10_000
        assert int(called.stdout.split()[-1]) == 0

    def test_the_script_turns_the_collector_back_on_for_the_command(self, tmp_path):
        """The script's entry keeps the collector off only while the command line starts:
        the command itself runs with it on (a long backup must collect its garbage)."""
        code = """
import gc, sys
import click
from strongroom.__main__ import run
from strongroom.cli import build_cli
seen = []
original = click.Group.invoke
def invoke(self, ctx):
    seen.append(gc.isenabled())
    return original(self, ctx)
click.Group.invoke = invoke
sys.argv = ["strongroom", "plugins"]
try:
    run()
except SystemExit:
    pass
print(seen[0], gc.isenabled(), gc.get_freeze_count() > 10_000, file=sys.stderr)
"""
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "STRONGROOM_HOME": str(tmp_path)})
        assert proc.stderr.splitlines()[-1].split() == ["True", "True", "True"]
