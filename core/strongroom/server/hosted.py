"""The vaults a server hosts: their stores (the server's credentials) and the vaults
opened with the server's own key slot.

Promises: :meth:`Hosted.store` opens the storage named in ``server.toml`` with the
options there (secrets from the server's environment), once per configuration;
:meth:`Hosted.vault` opens the vault with the key slot kept in ``DIR/home`` (never a
prompt: a vault without a usable server slot is an error), and gives a fresh view
(:meth:`Vault.reopen`, newest settings) when the cached one is older than
:data:`FRESH_SECONDS`.  A vault removed from ``server.toml`` is forgotten at the next call.
Refuses: a name the server does not host (:class:`UnknownHostedVault`).

Adding a vault (:func:`create_hosted`, :func:`adopt_hosted`) writes a local key slot for
the server into ``DIR/home`` and the vault's entry into ``server.toml``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable

from ..models import utcnow
from ..plugins import PluginHost
from ..repository.keyproviders import PassphraseSource
from ..storage.base import Store
from ..vault import Vault, open_vault_store
from .errors import ServerDirError, UnknownHostedVault
from .serverdir import HostedConfig, ServerDir, check_name

__all__ = ["FRESH_SECONDS", "Hosted", "adopt_hosted", "create_hosted"]

FRESH_SECONDS = 5.0


def _no_prompt() -> PassphraseSource:
    return PassphraseSource(env_var=None, prompt=None, use_default_env=False)


class Hosted:
    """The vaults of one server folder (see the module docstring)."""

    def __init__(self, sdir: ServerDir, plugins: PluginHost | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.dir = sdir
        self.plugins = plugins or PluginHost.create()
        self.clock = clock
        self._lock = threading.Lock()
        self._stores: dict[str, tuple[HostedConfig, Store]] = {}
        self._vaults: dict[str, tuple[HostedConfig, Vault, float]] = {}

    def names(self) -> list[str]:
        return sorted(self.dir.config.vaults)

    def config(self, name: str) -> HostedConfig:
        try:
            return self.dir.config.vaults[name]
        except KeyError:
            raise UnknownHostedVault(vault=name) from None

    def store(self, name: str) -> Store:
        """The vault's storage, opened with the server's credentials (cached)."""
        conf = self.config(name)
        with self._lock:
            cached = self._stores.get(name)
            if cached is not None and cached[0] == conf:
                return cached[1]
        store = open_vault_store(conf.storage, conf.resolved_options(), self.plugins)
        with self._lock:
            self._stores[name] = (conf, store)
        return store

    def vault(self, name: str) -> Vault:
        """The vault, opened with the server's key slot (cached; a fresh view when stale)."""
        conf = self.config(name)
        now = time.monotonic()
        with self._lock:
            cached = self._vaults.get(name)
        if cached is not None and cached[0] == conf:
            if now - cached[2] < FRESH_SECONDS:
                return cached[1]
            vault = cached[1].reopen()
        else:
            vault = Vault.open(conf.storage, passphrase=_no_prompt(), storage_options=conf.resolved_options(),
                               plugins=self.plugins, home=str(self.dir.home))
            vault.clock = self.clock
        with self._lock:
            self._vaults[name] = (conf, vault, now)
        return vault

    def forget(self, name: str | None = None) -> None:
        """Drop the cached stores and vaults (of ``name``, or all)."""
        with self._lock:
            for cache in (self._stores, self._vaults):
                if name is None:
                    cache.clear()
                else:
                    cache.pop(name, None)


def create_hosted(sdir: ServerDir, name: str, storage: str, options: dict, plugins: PluginHost) -> Vault:
    """A new vault at ``storage`` whose first key slot is the server's; added to ``server.toml``."""
    _check_new(sdir, name)
    conf = HostedConfig(name, storage, dict(options))
    vault = Vault.create(storage, name=name, key_provider="local", passphrase=_no_prompt(),
                         storage_options=conf.resolved_options(), plugins=plugins, home=str(sdir.home))
    sdir.add_vault(name, storage, options)
    return vault


def adopt_hosted(sdir: ServerDir, name: str, storage: str, options: dict, plugins: PluginHost,
                 kit_text: str, kit_passphrase: Callable[[str], Any]) -> Vault:
    """An existing vault, opened with the recovery kit ``kit_text``; the server gets a local
    key slot of its own in ``DIR/home`` and the vault is added to ``server.toml``."""
    from ..errors import IntegrityError, KeySlotError
    from ..repository.recoverykit import read_recovery_kit

    _check_new(sdir, name)
    conf = HostedConfig(name, storage, dict(options))
    vault_id, master = read_recovery_kit(kit_text, passphrase=kit_passphrase)
    try:
        vault = Vault.open(storage, master=master, storage_options=conf.resolved_options(), plugins=plugins,
                           home=str(sdir.home))
    except IntegrityError:
        raise KeySlotError(message=f"this recovery kit (vault {vault_id}) does not open the vault at {storage}") from None
    if vault.vault_id != vault_id:
        raise KeySlotError(message=f"this kit is for vault {vault_id}, not {vault.vault_id}")
    vault.keys.add("local", label=f"server {sdir.path.name}", passphrase=_no_prompt())
    sdir.add_vault(name, storage, options)
    return vault


def _check_new(sdir: ServerDir, name: str) -> None:
    check_name("vault", name)
    if name in sdir.config.vaults:
        raise ServerDirError(message=f"this server already hosts a vault '{name}'")
