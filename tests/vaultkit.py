"""Fixtures for vault-level tests: an isolated key store, vaults, a CLI runner."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import attrs
import pytest
from click.testing import CliRunner

from strongroom.plugins import PluginHost
from strongroom.vault import Vault


@pytest.fixture(autouse=True)
def strongroom_home(tmp_path_factory, monkeypatch):
    """Every test gets its own local key store and no vault from the environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("STRONGROOM_HOME", str(home))
    monkeypatch.delenv("STRONGROOM_VAULT", raising=False)
    monkeypatch.delenv("STRONGROOM_PASSPHRASE", raising=False)
    monkeypatch.delenv("STRONGROOM_DISABLE_PLUGINS", raising=False)
    return home


@pytest.fixture
def vault_url(tmp_path) -> str:
    return str(tmp_path / "vault")


@pytest.fixture
def vault(vault_url) -> Vault:
    return Vault.create(vault_url, name="test")


@attrs.frozen
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``strongroom`` in-process, as a user would, and returns exit code and output."""

    def __init__(self, vault_url: str | None = None) -> None:
        self.vault_url = vault_url

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None,
                 expect: int | None = 0) -> CliResult:
        from strongroom.cli import _disabled_from_argv, build_cli

        argv = [str(a) for a in args]
        full_env = {"STRONGROOM_VAULT": self.vault_url} if self.vault_url else {}
        full_env.update(env or {})
        runner = CliRunner()
        with_env = {**os.environ, **full_env}
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(with_env)
        try:
            cli = build_cli(PluginHost.create(disabled=_disabled_from_argv(argv)))
            result = runner.invoke(cli, argv, input=input, catch_exceptions=False)
        finally:
            os.environ.clear()
            os.environ.update(old)
        out = CliResult(result.exit_code, result.stdout, result.stderr)
        if expect is not None and out.exit_code != expect:
            raise AssertionError(
                f"strongroom {shlex.join(argv)} exited {out.exit_code}, expected {expect}:\n"
                f"{out.stdout}\n{out.stderr}"
            )
        return out


@pytest.fixture
def cli(vault_url) -> Cli:
    return Cli(vault_url)


def run_strongroom(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed ``strongroom`` command in a child process."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return subprocess.run([exe, *map(str, args)], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, **kwargs)
