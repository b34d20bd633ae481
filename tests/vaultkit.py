"""What vault-level tests share: an isolated key store, vaults, a CLI runner, a clock.

- fixtures: ``strongroom_home`` (autouse), ``vault_url``, ``vault``, ``cli``;
- vaults: :func:`scheduled_vault` (policies, no prune schedule), :func:`workload_host`
  (a test's workload classes registered), :func:`first_backup` (create, protect, back up
  through the command line), :func:`install_fixture_vault` (a frozen vault of
  :data:`FIXTURES`), :func:`fail_pack_uploads`;
- time: :class:`Clock` (moves when the test says), :data:`SCHEDULE_START`, :func:`wait_until`;
- checks: :func:`digest_tree`, :func:`restored_digest`, :func:`assert_one_line_error`,
  :func:`run_strongroom` (the installed command in a child process).

The CLI runner is :class:`strongroom.testing.Cli`, the one the pytest plugin gives
plugin authors; the plugin's fixtures (``strongroom_*``) are available here too.  What
only this project's tests need (not a plugin author) lives here rather than in
``strongroom.testing``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from strongroom.errors import StorageError
from strongroom.markers import hookimpl
from strongroom.plugins import PluginHost
from strongroom.policy.prunesettings import PruneSettings
from strongroom.testing import Cli, CliResult  # noqa: F401  (the CLI runner, shared with plugin authors)
from strongroom.vault import Vault


@pytest.fixture(autouse=True)
def strongroom_home(tmp_path_factory, monkeypatch):
    """Every test gets its own local key store and no vault from the environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("STRONGROOM_HOME", str(home))
    monkeypatch.delenv("STRONGROOM_VAULT", raising=False)
    monkeypatch.delenv("STRONGROOM_PASSPHRASE", raising=False)
    monkeypatch.delenv("STRONGROOM_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("STRONGROOM_STORAGE_OPTIONS", raising=False)
    monkeypatch.delenv("STRONGROOM_LOG_LEVEL", raising=False)
    return home


@pytest.fixture
def vault_url(tmp_path) -> str:
    return str(tmp_path / "vault")


@pytest.fixture
def vault(vault_url) -> Vault:
    return Vault.create(vault_url, name="test")


@pytest.fixture
def cli(vault_url) -> Cli:
    return Cli(vault_url)


def _a_minute_ahead() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)


@attrs.define
class Clock:
    """A clock that moves only when the test moves it: ``vault.clock = Clock(start)``.

    Schedules, retention and soft delete read the vault's clock, so a test can live days in
    a second.  The default start is a minute ahead of the real time: index files and leases
    carry real times, and a clock behind them would see the future.
    """

    now: dt.datetime = attrs.field(factory=_a_minute_ahead)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        """Move on by ``datetime.timedelta(**delta)``."""
        self.now += dt.timedelta(**delta)


#: where a schedule test's clock starts: half past midnight, the day's first slots due
SCHEDULE_START = dt.datetime(2031, 3, 1, 0, 30, tzinfo=dt.timezone.utc)


def scheduled_vault(url: str, *policies, clock: Clock | None = None, **create) -> Vault:
    """A new vault (``Vault.create(url, **create)``) with ``policies`` and no prune schedule,
    on ``clock`` if given: run-due then runs only the backups and drills the policies make due."""
    vault = Vault.create(url, **create)
    if clock is not None:
        vault.clock = clock
    vault.set_prune_settings(PruneSettings(schedule=None))
    for policy in policies:
        vault.policies.create(policy)
    return vault


def digest_tree(root: str | os.PathLike) -> dict[str, str]:
    """relative path -> SHA-256 of every file under ``root``: what a source held when a point
    was made, to compare with what that point restores."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def restored_digest(vault: Vault, item: str, point_id: str, target: Path, source: Path) -> dict[str, str]:
    """Restore ``point_id`` of the files item ``item`` into ``target``; the :func:`digest_tree`
    of ``source`` as it came back (a restore recreates the source's absolute path under the target)."""
    vault.restore(item, point_id, str(target))
    return digest_tree(target / str(source.resolve()).lstrip("/"))


#: the frozen vaults of every format ever shipped (tests/fixtures/vault-format-N)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def install_fixture_vault(fixture: Path, where: Path, home: Path) -> str:
    """Copy the frozen vault of ``fixture`` (a folder of :data:`FIXTURES`) to ``where`` and its
    local keys into the key store ``home``, as the machine that made it had them; its URL."""
    shutil.copytree(fixture / "vault", where)
    keys = Path(home) / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for key in (fixture / "home" / "keys").iterdir():
        shutil.copy(key, keys / key.name)
        os.chmod(keys / key.name, 0o600)
    return str(where)


def fail_pack_uploads(monkeypatch, vault: Vault) -> None:
    """From now until ``monkeypatch.undo()``, every pack (``data/...``) that a store of the
    kind of ``vault``'s store uploads fails with a StorageError, as broken storage would;
    other objects are written as usual."""
    original_put = type(vault.repo.store).put

    def failing_put(store, name, data):
        if name.startswith("data/"):
            raise StorageError(message="injected failure")
        return original_put(store, name, data)

    monkeypatch.setattr(type(vault.repo.store), "put", failing_put)


@attrs.frozen(eq=False)  # a plugin is told apart from another by identity, as pluggy hashes it
class _WorkloadPlugin:
    """Registers each of ``workloads`` (name -> Workload class) under its name."""

    workloads: dict

    @hookimpl
    def strongroom_register_workloads(self, registry) -> None:
        for name, workload in self.workloads.items():
            registry.add(name, workload)


def workload_host(name: str = "test", **workloads) -> PluginHost:
    """The installed plugins and one more, ``name``, registering the workload classes of a
    test under their names: ``Vault.create(url, plugins=workload_host(slow=SlowWorkload))``."""
    return PluginHost.create(extra_plugins=[(name, _WorkloadPlugin(workloads))])


def first_backup(cli: Cli, source, item: str = "data") -> CliResult:
    """Through the command line, as a user starts: create the vault at ``cli.vault_url``,
    protect the folder ``source`` as files item ``item``, back it up; the backup's result."""
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", item, "--path", source)
    return cli("backup", item)


def wait_until(predicate, what: str, limit: float = 60.0, step: float = 0.005):
    """Poll ``predicate`` every ``step`` seconds until it gives a true value and return that
    value; fail the test naming ``what`` if ``limit`` seconds pass first."""
    deadline = time.monotonic() + limit
    while not (found := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(step)
    return found


def run_strongroom(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed ``strongroom`` command in a child process."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.run([exe, *map(str, args)], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, **kwargs)


def assert_one_line_error(result, code: int, *words: str) -> None:
    """The command failed with exit ``code`` and one error line naming every word."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
