"""The security core: settings records, irreversible states, weakenings, guard tickets, and the
rules applied to the history of settings documents (a document written around the rules is not taken)."""

from __future__ import annotations

import datetime as dt
import os

import attrs
import pytest

from strongroom.errors import (IntegrityError, IrreversibleSetting, TicketInvalid, TicketRequired, UsageError)
from strongroom.policy.security import (GuardLink, Immutability, SecuritySettings, SoftDelete, irreversible_change,
                                        weakenings)
from strongroom.services import tickets
from strongroom.services.settings import read_history
from strongroom.vault import Vault

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    v = Vault.create(str(tmp_path / "vault"))
    v.clock = lambda: NOW
    return v


@pytest.fixture
def guard(tmp_path):
    tickets.new_guard_key(tmp_path / "guard")
    return tickets.load_private_key(tmp_path / "guard"), tickets.load_public_key(tmp_path / "guard.pub")


def _link(vault, public):
    return vault.security.change(attrs.evolve(vault.security.settings, guard=GuardLink(public, "now")))


def _ticket(vault, private, operation, params=None, valid=dt.timedelta(hours=1), now=NOW, vault_id=None):
    return tickets.sign_ticket(private, vault_id or vault.vault_id, operation, params or {}, valid, now)


def test_new_vault_has_soft_delete_on_for_14_days(vault):
    settings = vault.security.settings
    assert settings.soft_delete == SoftDelete("enabled", 14)
    assert settings.immutability.state == "disabled" and not settings.guard.linked


@pytest.mark.parametrize("days", [7, 13, 181, True, "14"])
def test_soft_delete_days_outside_14_to_180_are_refused(days):
    with pytest.raises(UsageError, match="14 to 180"):
        SoftDelete("enabled", days)


@pytest.mark.parametrize("doc", [
    {"soft_delete": {"state": "off"}}, {"soft_delete": {"days": 2}}, {"guard": {"public_key": "AAAA"}},
    {"immutability": {"lock_days": 0}}, {"extra": {}}, ["list"], {"soft_delete": {"state": "enabled", "x": 1}},
])
def test_malformed_security_documents_are_integrity_errors(doc):
    with pytest.raises(IntegrityError):
        SecuritySettings.from_dict(doc)


def test_irreversible_states_and_weakenings_are_named():
    base = SecuritySettings()
    always = attrs.evolve(base, soft_delete=SoftDelete("always-on", 30))
    assert irreversible_change(always, attrs.evolve(always, soft_delete=SoftDelete("enabled", 30)))
    locked = attrs.evolve(base, immutability=Immutability("locked"))
    assert irreversible_change(locked, base)
    assert irreversible_change(locked, attrs.evolve(locked, immutability=Immutability("locked", lock_days=5)))
    assert irreversible_change(base, locked) is None
    assert weakenings(base, attrs.evolve(base, soft_delete=SoftDelete("disabled"))) == [("soft-delete.disable", {})]
    longer = attrs.evolve(base, soft_delete=SoftDelete("enabled", 60))
    assert weakenings(longer, base) == [("soft-delete.shorten", {"days": "14"})]
    assert weakenings(base, longer) == []
    enabled = attrs.evolve(base, immutability=Immutability("enabled"))
    assert weakenings(enabled, base) == [("immutability.disable", {})]
    linked = attrs.evolve(base, guard=GuardLink("A" * 43 + "=", None))
    assert weakenings(linked, base) == [("guard.unlink", {})]


def test_always_on_cannot_be_undone_and_the_refusal_is_journaled(vault):
    vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete("always-on", 30)))
    with pytest.raises(IrreversibleSetting, match="always-on"):
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete("disabled", 30)))
    assert vault.reopen().security.settings.soft_delete.state == "always-on"
    assert [e.outcome for e in vault.journal.entries() if e.outcome == "refused"] == ["refused"]


def test_a_guard_needs_a_ticket_bound_to_vault_operation_and_params(vault, guard, tmp_path):
    private, public = guard
    _link(vault, public)
    off = attrs.evolve(vault.security.settings, soft_delete=SoftDelete("disabled"))
    with pytest.raises(TicketRequired, match="soft-delete.disable"):
        vault.security.change(off)
    for bad, reason in [
        (_ticket(vault, private, "soft-delete.disable", vault_id="0" * 32), "signed for vault"),
        (_ticket(vault, private, "immutability.disable"), "signed for immutability.disable"),
        (_ticket(vault, private, "soft-delete.disable", {"days": "1"}), "other parameters"),
        (_ticket(vault, private, "soft-delete.disable", now=NOW - dt.timedelta(hours=2)), "expired"),
        ("strongroom-ticket-1.e30.AAAA", "not signed by this vault's guard"),
        ("garbage", "not a strongroom guard ticket"),
    ]:
        with pytest.raises(TicketInvalid, match=reason):
            vault.security.change(off, ticket=bad)
    tickets.new_guard_key(tmp_path / "other")
    stranger = tickets.load_private_key(tmp_path / "other")
    with pytest.raises(TicketInvalid, match="not signed by this vault's guard"):
        vault.security.change(off, ticket=_ticket(vault, stranger, "soft-delete.disable"))
    assert vault.reopen().security.settings.soft_delete.state == "enabled"  # nothing changed
    good = _ticket(vault, private, "soft-delete.disable")
    vault.security.change(off, ticket=good)
    assert vault.reopen().security.settings.soft_delete.state == "disabled"
    back_on = attrs.evolve(vault.security.settings, soft_delete=SoftDelete("enabled"))
    vault.security.change(back_on)  # strengthening needs no ticket
    with pytest.raises(TicketInvalid, match="used before"):
        vault.security.change(off, ticket=good)
    refused = [e for e in vault.journal.entries() if e.outcome == "refused"]
    assert len(refused) == 9


def test_a_settings_document_that_skips_the_rules_is_not_taken(vault, guard):
    private, public = guard
    vault.security.change(attrs.evolve(vault.security.settings, immutability=Immutability("enabled")))
    _link(vault, public)
    weakened = attrs.evolve(vault.security.settings, immutability=Immutability("disabled"))
    vault._settings.update(security=weakened.to_dict())  # written with the key, around the service
    history = read_history(vault.repo, vault.vault_id)
    assert len(history.rejected) == 1 and "without the guard's ticket" in history.rejected[0]
    assert vault.reopen().security.settings.immutability.state == "enabled"
    # the same document with a valid ticket in it is taken
    ticket = _ticket(vault, private, "immutability.disable")
    vault._settings.update(security=weakened.to_dict(), authorized_by=(ticket,))
    assert vault.reopen().security.settings.immutability.state == "disabled"


def test_undoing_a_lock_by_writing_settings_directly_is_not_taken(vault):
    vault.security.change(attrs.evolve(vault.security.settings, immutability=Immutability("locked", True)))
    vault._settings.update(security=SecuritySettings().to_dict())
    assert vault.reopen().security.settings.immutability.state == "locked"
    assert "irreversible" in read_history(vault.repo, vault.vault_id).rejected[0]


def test_guard_key_files(tmp_path):
    line = tickets.new_guard_key(tmp_path / "g")
    assert os.stat(tmp_path / "g").st_mode & 0o777 == 0o600
    assert (tmp_path / "g.pub").read_text().strip() == line
    with pytest.raises(UsageError, match="exists"):
        tickets.new_guard_key(tmp_path / "g")
    (tmp_path / "bad.pub").write_text("ssh-ed25519 AAAA")
    with pytest.raises(UsageError, match="not a guard public key"):
        tickets.load_public_key(tmp_path / "bad.pub")
    with pytest.raises(UsageError, match="not a guard private key"):
        tickets.load_private_key(tmp_path / "g.pub")
