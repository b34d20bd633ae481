"""vault key rewrap on a vault linked to a guard: it removes the old slot, so it needs the
``key.remove`` ticket of that slot; without one nothing changes."""

from __future__ import annotations

from strongroom.vault import Vault
from vaultkit import assert_one_line_error


def _slots(vault: Vault) -> list[str]:
    return sorted(s.slot_id for s in Vault.open(vault.url).keys.list())


def test_rewrap_needs_the_key_remove_ticket_of_the_old_slot(linked, cli, sign):
    [slot] = _slots(linked)
    refused = cli("vault", "key", "rewrap", slot, expect=None)
    assert_one_line_error(refused, 66, "key.remove needs a guard ticket", f"slot={slot}")
    assert _slots(linked) == [slot]
    ticket = sign("key.remove", vault_id=linked.vault_id, slot=slot)
    cli("vault", "key", "rewrap", slot, "--ticket", str(ticket))
    [new] = _slots(linked)
    assert new != slot
    assert Vault.open(linked.url).keys.opened_with.slot_id == new
