"""The key slots of an open vault: list, add, remove, upgrade, check, and the recovery kit.

Each slot wraps the vault's master key with a key-encryption key from a key provider
(:mod:`strongroom.repository.keyring`); the master key never changes, so adding or
removing a slot re-encrypts nothing.  Removing the last slot that can open the vault (one
of this vault's, not foreign nor damaged, other than the one removed) is always refused:
the vault would be unreadable.  :meth:`KeySlots.rewrap` wraps the master key of a slot
under a new key of the same provider (a new passphrase, a new HSM key, a new local key),
writing the new slot before it removes the old one.  A slot is its object ``keys/<slot id>``: removing it
removes the only object that can open the vault through it, and an object under
``keys/`` that is not a slot of this vault under its own name (*foreign*) is listed
apart and never tried.  :meth:`KeySlots.upgrade` rewrites old-format slots;
:meth:`KeySlots.check` is ``vault verify``'s look at the slots.

Removing a slot is a critical operation (``key.remove``; a re-wrap removes the old slot, so
it asks the same, for the old slot): once the slot is found and the last-slot rule passed, ``authorize`` (the vault's security service) must allow it, with
the guard's ticket when the vault has a guard, before anything is deleted; every removal
raises a security alert.  Adding, removing and upgrading slots are journaled (``journal``:
the vault's audit journal, :mod:`.journal`), with the slot's id, provider and label,
never a secret.

``dry_run`` on :meth:`KeySlots.remove` and :meth:`KeySlots.rewrap` makes the same checks
(the slot exists, the last-slot rule, the provider is installed, the guard's ticket) and
writes nothing: no slot, no provider key, no journal entry, no alert.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import attrs

from ..errors import KeySlotError
from ..repository import keyring, recoverykit

if TYPE_CHECKING:
    from ..registry import Registry
    from ..repository.keyproviders import KeyContext, PassphraseSource
    from ..repository.keyring import SlotSurvey, Upgrade
    from ..repository.masterkey import KeySlot, MasterKey
    from ..secrets import Secret
    from ..storage import Store
    from .journal import Journal

__all__ = ["KeySlots"]


class KeySlots:
    """The key slots of one vault, opened with ``master`` (through ``opened_with``, if a slot)."""

    def __init__(self, store: Store, master: MasterKey, context: KeyContext, providers: Registry[Any],
                 opened_with: KeySlot | None = None, *,
                 after_change: Callable[[tuple[str, ...]], None] = lambda removed: None,
                 journal: Journal | None = None,
                 authorize: Callable[..., object] = lambda op, params, ticket, **kwargs: None,
                 alert: Callable[..., object] = lambda *args, **kwargs: None) -> None:
        self.store = store
        self.master = master
        self.context = context
        self.providers = providers
        self.opened_with = opened_with
        #: called after a slot is added (with ``()``) or removed (with its object name):
        #: the vault records the slot set in a vault head (:mod:`.head`)
        self.after_change = after_change
        self.journal = journal
        #: ``(operation, params, ticket)``: returns when the operation is allowed, else raises
        self.authorize = authorize
        #: ``(category, kind, summary, *, details)``: the vault's alerts
        self.alert = alert

    def list(self, problems: list[str] | None = None) -> list[KeySlot]:
        """The slots of this vault; foreign and malformed slot objects are described in ``problems``."""
        return keyring.load_slots(self.store, problems, vault_id=self.context.vault_id)

    def survey(self) -> SlotSurvey:
        """The slots, foreign objects and damaged objects under ``keys/``."""
        return keyring.survey(self.store, self.context.vault_id)

    def add(self, provider: str, *, label: str = "", passphrase: PassphraseSource | None = None,
            options: dict[str, str] | None = None) -> KeySlot:
        """A new slot of ``provider``; ``passphrase`` is where a passphrase slot's comes from,
        ``options`` the provider's ``--key-option`` values."""
        context = self.context if passphrase is None else attrs.evolve(self.context, passphrase=passphrase)
        context = attrs.evolve(context, options=dict(options or {}), previous=None)
        with self._journaled("key.add", {"provider": provider, "label": label}):
            slot = keyring.add_slot(self.store, self.master, context, self.providers, provider, label=label)
        self.after_change(())
        return slot

    def find(self, slot_id: str) -> KeySlot:
        """The one slot whose id starts with ``slot_id``; KeySlotError if none or several."""
        matches = [s for s in self.list() if s.slot_id.startswith(slot_id)]
        if not slot_id or len(matches) != 1:
            raise KeySlotError(message=f"no single key slot matches '{slot_id}'")
        return matches[0]

    def remove(self, slot_id: str, *, force: bool = False, ticket: str | None = None,
               dry_run: bool = False) -> KeySlot:
        """Remove the slot whose id starts with ``slot_id`` (see the module docstring);
        ``ticket`` is the guard's ticket for ``key.remove`` with ``slot=<its full id>``."""
        slot = self.find(slot_id)
        keyring.refuse_last_slot(slot, self.list())
        params = {"slot": slot.slot_id}
        if dry_run:
            self.authorize("key.remove", params, ticket, dry_run=True)
            return slot
        self.authorize("key.remove", params, ticket)
        with self._journaled("key.remove", {**params, "provider": slot.provider, "label": slot.label}):
            keyring.remove_slot(self.store, slot.slot_id, force=force, vault_id=self.context.vault_id)
        self.after_change((slot.object_name,))
        self.alert("security", "key.removed", f"key slot {slot.slot_id} ({slot.provider}) was removed",
                   details={"slot": slot.slot_id, "provider": slot.provider, "label": slot.label})
        return slot

    def rewrap(self, slot_id: str, *, passphrase: PassphraseSource | None = None,
               options: dict[str, str] | None = None, ticket: str | None = None,
               dry_run: bool = False) -> tuple[KeySlot, KeySlot | None]:
        """Re-wrap the slot whose id starts with ``slot_id`` under a new key of its provider;
        ``(old, new)`` (``new`` is None in a dry run).  ``ticket`` is the guard's ticket for
        ``key.remove`` of the old slot."""
        slot = self.find(slot_id)
        context = self.context if passphrase is None else attrs.evolve(self.context, passphrase=passphrase)
        context = attrs.evolve(context, options=dict(options or {}))
        params = {"slot": slot.slot_id}
        if dry_run:
            keyring.check_rewrap(context, self.providers, slot)
            self.authorize("key.remove", params, ticket, dry_run=True)
            return slot, None
        self.authorize("key.remove", params, ticket)
        with self._journaled("key.rewrap", {**params, "provider": slot.provider, "label": slot.label}):
            new = keyring.rewrap_slot(self.store, self.master, context, self.providers, slot)
        self.after_change((slot.object_name,))
        self.alert("security", "key.removed", f"key slot {slot.slot_id} ({slot.provider}) was re-wrapped as"
                   f" {new.slot_id}", details={"slot": slot.slot_id, "provider": slot.provider, "label": slot.label,
                                              "new_slot": new.slot_id})
        return slot, new

    def upgrade(self) -> list[Upgrade]:
        """Rewrite the old-format slots this client can open now in the current format."""
        with self._journaled("key.upgrade", {}):
            return keyring.upgrade(self.store, self.master, self.context, self.providers)

    def _journaled(self, operation: str, params: dict) -> ContextManager[None]:
        return self.journal.operation(operation, params) if self.journal is not None else contextlib.nullcontext()

    def check(self) -> tuple[list[str], list[str]]:
        """(notes, problems) about the slots (see :func:`strongroom.repository.keyring.check`)."""
        return keyring.check(self.store, self.master, self.context, self.providers, self.opened_with)

    def describe(self, slot: KeySlot) -> str:
        """What the slot's provider says about it (the provider's name if it is not installed)."""
        if slot.provider not in self.providers:
            return slot.provider
        return self.providers.get(slot.provider).describe(slot.params)

    def recovery_kit(self, passphrase: Secret | None = None) -> str:
        """The recovery kit (protected by ``passphrase`` if given), comments not included."""
        return recoverykit.recovery_kit(self.context.vault_id, self.master, passphrase)
