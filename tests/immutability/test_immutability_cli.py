"""strongroom vault immutability enable|disable|lock|show and what each refuses."""

from __future__ import annotations

import json

import pytest
from lockkit import unique

from strongroom.storage.locking import retention_of
from strongroom.testing import VaultLocation
from strongroom.vault import Vault


def _create(cli, kind):
    cli("vault", "create", kind.url if isinstance(kind, VaultLocation) else kind)


@pytest.fixture
def s3_cli(strongroom_s3_server, strongroom_cli):
    def make(bucket, identity="client"):
        server = strongroom_s3_server
        options = server.client_storage_options if identity == "client" else server.storage_options
        location = VaultLocation("s3", f"s3://{bucket}/{unique()}", options)
        cli = strongroom_cli(location)
        cli("vault", "create", location.url)
        return cli, location
    return make


class TestLock:
    def test_lock_is_refused_on_a_local_folder_and_nothing_changes(self, strongroom_cli, tmp_path):
        """lock on storage without object lock: exit 65, one line naming --client-side-only, still disabled."""
        cli = strongroom_cli(str(tmp_path / "vault"))
        cli("vault", "create", str(tmp_path / "vault"))
        refused = cli("vault", "immutability", "lock", expect=65)
        assert "--client-side-only" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert "Traceback" not in refused.stderr + refused.stdout
        assert json.loads(cli("vault", "immutability", "show", "--json").stdout)["immutability"] == "disabled"

    def test_client_side_only_locks_a_local_folder(self, strongroom_cli, tmp_path):
        """--client-side-only locks the vault, says it is not enforced by storage, and cannot be undone."""
        cli = strongroom_cli(str(tmp_path / "vault"))
        cli("vault", "create", str(tmp_path / "vault"))
        out = cli("vault", "immutability", "lock", "--client-side-only").stdout
        assert "locked" in out and "client side only" in out
        shown = json.loads(cli("vault", "immutability", "show", "--json").stdout)
        assert shown["immutability"] == "locked" and shown["client_side_only"] is True
        assert shown["enforced_by_storage"] is False
        cli("vault", "immutability", "disable", expect=65)
        assert json.loads(cli("vault", "immutability", "show", "--json").stdout)["immutability"] == "locked"

    def test_lock_is_refused_on_a_bucket_without_object_lock(self, s3_cli, plain_bucket):
        """A plain S3 bucket cannot enforce the lock: refused (65), nothing changed."""
        cli, _ = s3_cli(plain_bucket)
        refused = cli("vault", "immutability", "lock", expect=65)
        assert "no object lock" in refused.stderr
        assert json.loads(cli("vault", "immutability", "show", "--json").stdout)["immutability"] == "disabled"


class TestEnableAndLockOnObjectLockStorage:
    def test_enable_locks_existing_objects_then_lock_makes_new_ones_compliance(
            self, s3_cli, lock_bucket, strongroom_s3_server):
        """enable locks what is already there (GOVERNANCE); lock is shown in vault info; disable is then refused."""
        cli, location = s3_cli(lock_bucket)
        enabled = cli("vault", "immutability", "enable", "--lock-days", "1", "--json")
        extension = json.loads(enabled.stdout)["extension"]
        assert extension["ran"] and extension["mode"] == "GOVERNANCE" and extension["extended"] > 0
        vault = Vault.open(location.url, storage_options=location.storage_options)
        assert retention_of(vault.store, "strongroom.json").mode == "GOVERNANCE"
        out = cli("vault", "immutability", "lock").stdout
        assert "COMPLIANCE" in out and "stay GOVERNANCE" in out  # the client may not change the mode
        info = cli("vault", "info").stdout
        assert "immutability locked" in info and "COMPLIANCE" in info
        cli("vault", "immutability", "disable", expect=65)
        vault = Vault.open(location.url, storage_options=location.storage_options)
        vault.update_settings(name="renamed")
        newest = max(vault.store.list("settings/"))
        assert retention_of(vault.store, newest).mode == "COMPLIANCE"

    def test_disable_leaves_locks_and_stops_new_ones(self, s3_cli, lock_bucket):
        """disable (no guard: no ticket needed) stops locking new objects; existing locks stay."""
        cli, location = s3_cli(lock_bucket)
        cli("vault", "immutability", "enable")
        assert "stay until they lapse" in cli("vault", "immutability", "disable").stdout
        vault = Vault.open(location.url, storage_options=location.storage_options)
        assert retention_of(vault.store, "strongroom.json") is not None
        vault.update_settings(name="after")
        assert retention_of(vault.store, max(vault.store.list("settings/"))) is None
