"""The key slots of an open vault: list, add, remove, and the recovery kit.

Each slot wraps the vault's master key with a key-encryption key from a key provider
(:mod:`strongroom.repository.keyring`); the master key never changes, so adding or
removing a slot re-encrypts nothing.  Removing the last slot is refused unless forced:
the vault would be unreadable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..repository import keyring

if TYPE_CHECKING:
    from ..registry import Registry
    from ..repository.keyproviders import KeyContext, PassphraseSource
    from ..repository.masterkey import KeySlot, MasterKey
    from ..storage import Store

__all__ = ["KeySlots"]


class KeySlots:
    """The key slots of one vault, opened with ``master`` (through ``opened_with``, if a slot)."""

    def __init__(self, store: Store, master: MasterKey, context: KeyContext, providers: Registry[Any],
                 opened_with: KeySlot | None = None) -> None:
        self.store = store
        self.master = master
        self.context = context
        self.providers = providers
        self.opened_with = opened_with

    def list(self, problems: list[str] | None = None) -> list[KeySlot]:
        """The readable slots; malformed slot objects are described in ``problems``."""
        return keyring.load_slots(self.store, problems)

    def add(self, provider: str, *, label: str = "", passphrase: PassphraseSource | None = None) -> KeySlot:
        """A new slot of ``provider``; ``passphrase`` is where a passphrase slot's comes from."""
        context = self.context if passphrase is None else attrs.evolve(self.context, passphrase=passphrase)
        return keyring.add_slot(self.store, self.master, context, self.providers, provider, label=label)

    def remove(self, slot_id: str, *, force: bool = False) -> KeySlot:
        """Remove the slot whose id starts with ``slot_id``."""
        return keyring.remove_slot(self.store, slot_id, force=force)

    def describe(self, slot: KeySlot) -> str:
        """What the slot's provider says about it (the provider's name if it is not installed)."""
        if slot.provider not in self.providers:
            return slot.provider
        return self.providers.get(slot.provider).describe(slot.params)

    def recovery_kit(self) -> str:
        return keyring.recovery_kit(self.context.vault_id, self.master)
