"""Storage backends are plugins: ``strongroom_register_storage_backends`` adds URL schemes.

A plugin registers a :class:`strongroom.StorageBackend` for a scheme of its own (here
``mem2://``, an fsspec in-memory filesystem under another name, defined in this module);
a vault on that scheme then opens through it, with the backend's capabilities, and backs
up and restores.  The built-in backends come from the essential ``storage`` plugin.
"""

from __future__ import annotations

import json

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from strongroom import StorageBackend, hookimpl
from strongroom.errors import PluginError, StorageError
from strongroom.plugins import ESSENTIAL_PLUGINS, PluginHost
from strongroom.storage import capabilities_of
from strongroom.storage.backends import BUILTIN_BACKENDS, backend_for
from strongroom.testing import assert_same_tree, make_tree
from strongroom.vault import Vault


class Mem2FileSystem(MemoryFileSystem):
    """fsspec's memory filesystem, reached as ``mem2://``."""

    protocol = "mem2"
    store: dict = {}
    pseudo_dirs = [""]


MEM2 = StorageBackend("mem2", ("mem2",), __name__, "Mem2FileSystem", "nothing", one_request_put=True,
                      concurrency=3, defaults={"skip_instance_cache": True})


class Mem2Plugin:
    @hookimpl
    def strongroom_register_storage_backends(self, registry):
        registry.add("mem2", MEM2)


def host_with(*plugins: tuple[str, object]) -> PluginHost:
    return PluginHost.create(extra_plugins=plugins)


class TestRegistration:
    def test_builtin_backends_come_from_the_storage_plugin(self):
        """The essential storage plugin registers s3, sftp, gcs and azure."""
        host = PluginHost.create()
        assert "storage" in ESSENTIAL_PLUGINS
        assert host.storage_backends.names() == sorted(b.name for b in BUILTIN_BACKENDS)
        assert {host.storage_backends.owner(name) for name in host.storage_backends} == {"storage"}

    def test_a_plugin_adds_a_backend(self):
        """A third-party backend is listed and attributed to its plugin."""
        host = host_with(("mem2-plugin", Mem2Plugin()))
        assert host.storage_backends.get("mem2") is MEM2
        info = next(i for i in host.plugin_infos() if i.name == "mem2-plugin")
        assert info.registered == ("storage-backend:mem2",)

    def test_a_scheme_claimed_twice_is_refused(self):
        """Two backends claiming one URL scheme is an error naming both."""
        rival = StorageBackend("rival", ("mem2",), __name__, "Mem2FileSystem", "x", one_request_put=True)
        with pytest.raises(PluginError, match="'mem2' and 'rival'"):
            backend_for("mem2://b/v", [MEM2, rival])

    def test_missing_implementation_says_what_to_install(self):
        """A backend whose package is not installed names what to install."""
        ghost = StorageBackend("ghost", ("ghost",), "no_such_fsspec_driver", "FS", "ghostfs", one_request_put=True)
        from strongroom.storage import open_store

        with pytest.raises(StorageError, match="install it with: pip install ghostfs"):
            open_store("ghost://bucket/vault", backends=[ghost])


class TestVaultOnAPluginBackend:
    def test_backup_and_restore_through_the_plugin_backend(self, strongroom_isolated_home, tmp_path):
        """A vault at mem2:// is created, backs up and restores through the plugin's backend."""
        host = host_with(("mem2-plugin", Mem2Plugin()))
        source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=5)
        vault = Vault.create("mem2://vaults/one", plugins=host)
        assert capabilities_of(vault.store).concurrency == 3  # the backend's own setting
        assert Mem2FileSystem.store, "nothing was written through the plugin's filesystem"
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        again = Vault.open("mem2://vaults/one", plugins=host_with(("mem2-plugin", Mem2Plugin())))
        target = tmp_path / "restored"
        again.restore("src", None, str(target))
        assert_same_tree(source, str(target / source.lstrip("/")))

    def test_without_the_plugin_the_scheme_is_unknown(self, strongroom_isolated_home):
        """Without the plugin, mem2:// is not a storage strongroom can open."""
        with pytest.raises(StorageError):
            Vault.create("mem2://vaults/two", plugins=PluginHost.create())

    def test_plugins_command_lists_storage_backends(self, strongroom_cli):
        """strongroom plugins shows the storage plugin's backends."""
        listed = json.loads(strongroom_cli()("plugins", "--json").stdout)
        storage = next(p for p in listed if p["name"] == "storage")
        assert {"storage-backend:s3", "storage-backend:sftp"} <= set(storage["registered"])
        assert storage["hooks"] == ["strongroom_register_storage_backends"]
