"""Master key, key slots and the built-in key providers."""

from __future__ import annotations

import os
import stat

import pytest

from strongroom.repository import keyring, recoverykit
from strongroom.errors import KeyNotAvailable, KeySlotError, WrongPassphrase
from strongroom.plugins import PluginHost
from strongroom.repository.keyproviders import KeyContext, LocalKeyProvider, PassphraseSource
from strongroom.repository.masterkey import MasterKey, unwrap_master_key, wrap_master_key
from strongroom.secrets import Secret
from strongroom.storage import MemoryStore


VID, OTHER = "ab" * 16, "cd" * 16  # vault ids: 32 lowercase hex digits


@pytest.fixture
def providers():
    return PluginHost.create().key_providers


class TestMasterKey:
    def test_json_round_trip(self):
        """A master key survives its JSON form."""
        key = MasterKey.generate()
        assert MasterKey.from_json(key.to_json()) == key

    def test_repr_hides_key_material(self):
        """Neither repr nor str of a key shows its bytes."""
        key = MasterKey.generate()
        assert key.data_key.value.hex() not in repr(key)
        assert "redacted" in repr(key) and "redacted" in str(key.id_key)

    def test_slot_is_bound_to_vault_and_slot_id(self):
        """A wrapped key opens only with the right KEK, vault id and slot id."""
        key, kek = MasterKey.generate(), Secret(os.urandom(32))
        slot = wrap_master_key(key, kek, vault_id=VID, slot_id="00" * 8, provider="local",
                               label="", created="", params={})
        assert unwrap_master_key(slot, kek, vault_id=VID) == key
        assert unwrap_master_key(slot, kek, vault_id=OTHER) is None
        assert unwrap_master_key(slot, Secret(os.urandom(32)), vault_id=VID) is None


class TestKeyring:
    def test_local_key_is_private_and_opens_the_vault(self, tmp_path, providers):
        """The local provider writes a 0600 key outside the store, and unlock finds it."""
        store, key = MemoryStore(), MasterKey.generate()
        ctx = KeyContext(vault_id=VID, home=tmp_path)
        keyring.add_slot(store, key, ctx, providers, "local")
        path = LocalKeyProvider.key_path(ctx)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert keyring.unlock(store, ctx, providers)[0] == key

    def test_passphrase_slot_right_and_wrong(self, tmp_path, providers, monkeypatch):
        """A passphrase slot opens with its passphrase; a wrong one raises WrongPassphrase."""
        store, key = MemoryStore(), MasterKey.generate()
        monkeypatch.setenv("PW", "correct horse")
        ctx = KeyContext(vault_id=VID, home=tmp_path, passphrase=PassphraseSource(env_var="PW"))
        keyring.add_slot(store, key, ctx, providers, "passphrase")
        assert keyring.unlock(store, ctx, providers)[0] == key
        monkeypatch.setenv("PW", "battery staple")
        with pytest.raises(WrongPassphrase):
            keyring.unlock(store, ctx, providers)

    def test_no_passphrase_available_says_how_to_give_one(self, tmp_path, providers, monkeypatch):
        """Without a passphrase source the error names the variable to set."""
        store, key = MemoryStore(), MasterKey.generate()
        monkeypatch.setenv("PW", "pw")
        keyring.add_slot(store, key, KeyContext(VID, tmp_path, PassphraseSource(env_var="PW")),
                         providers, "passphrase")
        with pytest.raises(KeyNotAvailable, match="STRONGROOM_PASSPHRASE"):
            keyring.unlock(store, KeyContext(VID, tmp_path), providers)

    def test_several_slots_any_one_opens(self, tmp_path, providers, monkeypatch):
        """With a local and a passphrase slot, losing the local key still leaves the passphrase."""
        store, key = MemoryStore(), MasterKey.generate()
        monkeypatch.setenv("PW", "pw")
        ctx = KeyContext(VID, tmp_path, PassphraseSource(env_var="PW"))
        keyring.add_slot(store, key, ctx, providers, "local")
        keyring.add_slot(store, key, ctx, providers, "passphrase")
        LocalKeyProvider.key_path(ctx).unlink()
        assert keyring.unlock(store, ctx, providers)[0] == key

    def test_last_slot_cannot_be_removed_even_forced(self, tmp_path, providers):
        """Removing the only slot is refused, forced or not; with a second slot it goes."""
        store, key = MemoryStore(), MasterKey.generate()
        slot = keyring.add_slot(store, key, KeyContext(VID, tmp_path), providers, "local")
        for force in (False, True):
            with pytest.raises(KeySlotError, match="last key slot that can open the vault"):
                keyring.remove_slot(store, slot.slot_id, force=force)
        assert keyring.load_slots(store) == [slot]

    def test_recovery_kit_round_trip_and_garbage(self):
        """A recovery kit gives back the vault id and key; other text is refused clearly."""
        key = MasterKey.generate()
        assert recoverykit.read_recovery_kit(recoverykit.recovery_kit(VID, key)) == (VID, key)
        with pytest.raises(KeySlotError, match="not a recovery kit"):
            recoverykit.read_recovery_kit("hello\nworld")
