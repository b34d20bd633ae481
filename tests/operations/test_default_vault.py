"""``default_vault`` in ``$STRONGROOM_HOME/config.toml``: the vault of a command given neither
``--vault`` nor ``STRONGROOM_VAULT``."""

from __future__ import annotations

from strongroom.testing import Cli
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


class TestDefaultVault:
    def test_config_names_the_vault(self, tmp_path, strongroom_home):
        """With default_vault set and no --vault, the command opens that vault."""
        url = str(tmp_path / "vault")
        Vault.create(url, name="from-config")
        (strongroom_home / "config.toml").write_text(f'default_vault = "{url}"\n')
        result = Cli()("vault", "info", "--json")
        assert '"name": "from-config"' in result.stdout

    def test_vault_option_wins_over_config(self, tmp_path, strongroom_home):
        """--vault (and STRONGROOM_VAULT) come before the config file's default."""
        Vault.create(str(tmp_path / "a"), name="a")
        Vault.create(str(tmp_path / "b"), name="b")
        (strongroom_home / "config.toml").write_text(f'default_vault = "{tmp_path / "a"}"\n')
        assert '"name": "b"' in Cli()("--vault", str(tmp_path / "b"), "vault", "info", "--json").stdout
        assert '"name": "b"' in Cli(str(tmp_path / "b"))("vault", "info", "--json").stdout

    def test_without_any_the_error_names_the_config(self, strongroom_home):
        """No --vault, no STRONGROOM_VAULT, no default_vault: exit 4 naming all three."""
        result = Cli()("points", expect=None)
        assert_one_line_error(result, 4, "--vault", "STRONGROOM_VAULT", "default_vault")

    def test_a_default_that_is_not_text_is_refused(self, strongroom_home):
        """default_vault = 3 is a usage error naming the file."""
        (strongroom_home / "config.toml").write_text("default_vault = 3\n")
        assert_one_line_error(Cli()("points", expect=None), 3, "default_vault", "config.toml")

    def test_plugins_runs_with_a_default_vault_that_is_gone(self, tmp_path, strongroom_home):
        """A command without a vault never reads it: 'plugins' works whatever default_vault says."""
        (strongroom_home / "config.toml").write_text(f'default_vault = "{tmp_path / "nothing"}"\n')
        assert "files" in Cli()("plugins").stdout
