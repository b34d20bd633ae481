"""Key slots of a vault: unlocking the master key, adding and removing slots, recovery kits."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from ..errors import KeyNotAvailable, KeySlotError, ObjectNotFound, WrongPassphrase
from ..models import iso, new_id, utcnow
from .keyproviders import KeyContext
from .masterkey import KeySlot, MasterKey, unwrap_master_key, wrap_master_key

if TYPE_CHECKING:
    from ..registry import Registry
    from ..storage import Store

KIT_HEADER = "strongroom recovery kit"


def load_slots(store: "Store", problems: list[str] | None = None) -> list[KeySlot]:
    """The readable key slots; a malformed one is skipped (and described in ``problems``):
    one damaged slot never locks a vault that another slot opens."""
    slots = []
    for name in sorted(store.list("keys/")):
        try:
            slots.append(KeySlot.from_bytes(store.get(name), name))
        except ObjectNotFound:
            continue
        except KeySlotError as exc:
            if problems is not None:
                problems.append(str(exc))
    return slots


def unlock(store: "Store", ctx: KeyContext, providers: "Registry") -> tuple[MasterKey, KeySlot]:
    """Try the slots, local ones first, and return the master key and the slot that opened."""
    reasons: list[str] = []
    slots = load_slots(store, reasons)
    if not slots:
        if reasons:  # every slot object is malformed
            raise KeySlotError(message="; ".join(reasons))
        raise KeyNotAvailable(vault_id=ctx.vault_id, reason="the vault has no key slots")
    wrong_passphrase = False
    for slot in sorted(slots, key=lambda s: (s.provider != "local", s.slot_id)):
        if slot.provider not in providers:
            reasons.append(f"slot {slot.slot_id}: key provider '{slot.provider}' is not installed")
            continue
        try:
            kek = providers.get(slot.provider).unlock(ctx, slot.params)
        except KeyNotAvailable as exc:
            reasons.append(f"slot {slot.slot_id}: {exc.fields.get('reason', exc)}")
            continue
        master = unwrap_master_key(slot, kek, vault_id=ctx.vault_id)
        if master is not None:
            return master, slot
        if slot.provider == "passphrase":
            wrong_passphrase = True
        reasons.append(f"slot {slot.slot_id}: the {slot.provider} key does not open it")
    if wrong_passphrase:
        raise WrongPassphrase(vault_id=ctx.vault_id)
    raise KeyNotAvailable(vault_id=ctx.vault_id, reason="; ".join(reasons))


def add_slot(
    store: "Store", master: MasterKey, ctx: KeyContext, providers: "Registry", provider: str,
    *, label: str = "",
) -> KeySlot:
    kek, params = providers.get(provider).create(ctx)
    slot = wrap_master_key(
        master, kek, vault_id=ctx.vault_id, slot_id=new_id(8), provider=provider,
        label=label, created=iso(utcnow()), params=params,
    )
    store.put(slot.object_name, slot.to_bytes())
    return slot


def remove_slot(store: "Store", slot_id: str, *, force: bool = False) -> KeySlot:
    slots = load_slots(store)
    matches = [s for s in slots if s.slot_id.startswith(slot_id)]
    if len(matches) != 1:
        raise KeySlotError(message=f"no single key slot matches '{slot_id}'")
    if len(slots) == 1 and not force:
        raise KeySlotError(
            message="refusing to remove the last key slot: the vault would become unreadable"
            " (use --force if that is what you want)"
        )
    store.delete(matches[0].object_name)
    return matches[0]


def recovery_kit(vault_id: str, master: MasterKey) -> str:
    payload = base64.b64encode(master.to_json()).decode()
    lines = [payload[i : i + 64] for i in range(0, len(payload), 64)]
    return "\n".join(
        [f"-----BEGIN {KIT_HEADER.upper()}-----", f"vault: {vault_id}", *lines,
         f"-----END {KIT_HEADER.upper()}-----", ""]
    )


def read_recovery_kit(text: str) -> tuple[str, MasterKey]:
    lines = [line.strip() for line in text.strip().splitlines()]
    try:
        if not lines[0].startswith("-----BEGIN") or not lines[-1].startswith("-----END"):
            raise ValueError("missing BEGIN/END lines")
        vault_id = lines[1].split(":", 1)[1].strip()
        master = MasterKey.from_json(base64.b64decode("".join(lines[2:-1]), validate=True))
    except (IndexError, ValueError, json.JSONDecodeError) as exc:
        raise KeySlotError(message=f"not a recovery kit: {exc}") from None
    return vault_id, master
