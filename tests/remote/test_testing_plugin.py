"""The pytest plugin shipped as strongroom.testing: registered by entry point, fixtures per backend."""

from __future__ import annotations

import json

from strongroom.storage import capabilities_of
from strongroom.vault import Vault


def test_plugin_is_loaded_through_its_entry_point(request):
    """pytest loads strongroom.testing by the pytest11 entry point named 'strongroom'."""
    plugin = request.config.pluginmanager.get_plugin("strongroom")
    assert plugin is not None and plugin.__name__ == "strongroom.testing"


def test_strongroom_vault_on_every_backend(strongroom_vault, strongroom_location):
    """strongroom_vault is a new, empty vault on each backend kind, reachable again by its URL."""
    assert strongroom_vault.items() == []
    again = Vault.open(strongroom_location.url, storage_options=dict(strongroom_location.storage_options))
    assert again.vault_id == strongroom_vault.vault_id
    assert capabilities_of(again.store).remote == (strongroom_location.kind in ("sftp", "s3"))
    assert "secret" not in repr(strongroom_location)


def test_strongroom_cli_runs_against_a_location(strongroom_cli, strongroom_location):
    """strongroom_cli(location) runs commands with the location's URL and storage options."""
    cli = strongroom_cli(strongroom_location)
    created = json.loads(cli("vault", "create", strongroom_location.url, "--json").stdout)
    info = json.loads(cli("vault", "info", "--json").stdout)
    assert info["vault_id"] == created["vault_id"]
