"""strongroom.command_vault(): the vault of the running command, for a plugin's command."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import strongroom
from strongroom.cli import build_cli
from strongroom.plugins import PluginHost


def test_outside_a_command_it_is_a_usage_error():
    with pytest.raises(strongroom.UsageError, match="no strongroom command is running"):
        strongroom.command_vault()


def test_a_plugin_command_gets_the_vault_of_the_command_line(tmp_path, monkeypatch):
    url = str(tmp_path / "vault")
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path / "home"))
    strongroom.create_vault(url, home=str(tmp_path / "home"))
    seen = []

    def register(cli: click.Group) -> None:
        @cli.command(name="probe-vault")
        def probe() -> None:
            vault = strongroom.command_vault()
            seen.append((vault.url, vault is strongroom.command_vault()))

    cli = build_cli(PluginHost.create())
    register(cli)
    result = CliRunner().invoke(cli, ["--vault", url, "probe-vault"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [(url, True)]
