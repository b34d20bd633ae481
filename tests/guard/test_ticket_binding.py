"""Critical operations on a vault linked to a guard: refused without the right ticket, let
through with it.

Every refusal is one line with a stable exit code (66: no ticket, 67: a ticket that is
not valid for this), changes nothing, leaves a ``refused`` journal entry and raises a
security alert.  ``vault key remove`` is the operation driven here; the security settings
(``guard unlink``, re-linking, soft delete) go through the same check.
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from strongroom.errors import TicketInvalid
from strongroom.models import utcnow
from strongroom.policy.security import SoftDelete
from strongroom.services.tickets import load_private_key, sign_ticket
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


def _add_slot(vault: Vault) -> str:
    from strongroom.repository.keyproviders import PassphraseSource

    return vault.keys.add("passphrase", label="spare", passphrase=PassphraseSource(env_var="SPARE")).slot_id


@pytest.fixture(autouse=True)
def _spare_passphrase(monkeypatch):
    monkeypatch.setenv("SPARE", "spare passphrase")


def _state(vault: Vault) -> tuple:
    """What a refused operation must leave as it was: the slots and the settings in force."""
    fresh = Vault.open(vault.url)
    return sorted(s.slot_id for s in fresh.keys.list()), fresh.settings


def _refusals(vault: Vault) -> list:
    return [e for e in Vault.open(vault.url).journal.entries() if e.outcome == "refused"]


def _security_alerts(vault: Vault, kind: str) -> list:
    return [a for a in Vault.open(vault.url).alerts.list() if a.category == "security" and a.kind == kind]


class TestRefused:
    def _refused(self, vault, cli, ticket_args, code, *words):
        slot = _add_slot(vault)
        before = _state(vault)
        result = cli("vault", "key", "remove", slot, *ticket_args, expect=None)
        assert_one_line_error(result, code, *words)
        assert _state(vault) == before
        (refusal,) = _refusals(vault)
        assert (refusal.operation, refusal.params, refusal.host, refusal.user) == (
            "key.remove", {"slot": slot}, refusal.host, refusal.user)
        assert refusal.host and refusal.user and words[0] in refusal.detail
        (alert,) = _security_alerts(vault, "operation.refused")
        assert "key.remove" in alert.summary
        return slot

    def test_without_a_ticket(self, linked, cli):
        """No ticket: exit 66, and the message names the operation and the parameters to sign."""
        slot = self._refused(linked, cli, [], 66, "key.remove needs a guard ticket")
        assert f"--param slot={slot}" in cli("vault", "key", "remove", slot, expect=66).stderr

    def test_ticket_for_another_vault(self, linked, cli, sign):
        """A ticket signed for another vault id: exit 67."""
        other = sign("key.remove", vault_id="0" * 32, slot="x")
        self._refused(linked, cli, ["--ticket", str(other)], 67, "signed for vault")

    def test_ticket_for_another_operation(self, linked, cli, sign):
        """A ticket for guard.unlink does not remove a key slot."""
        ticket = sign("guard.unlink", vault_id=linked.vault_id)
        self._refused(linked, cli, ["--ticket", str(ticket)], 67, "signed for guard.unlink")

    def test_ticket_for_other_params(self, linked, cli, sign):
        """A ticket for another slot does not remove this one."""
        ticket = sign("key.remove", vault_id=linked.vault_id, slot="0123456789abcdef")
        self._refused(linked, cli, ["--ticket", str(ticket)], 67, "other parameters")

    def test_expired_ticket(self, linked, cli, guard_key, tmp_path):
        """A ticket signed two hours ago, valid one hour: exit 67, naming when it expired."""
        slot_holder = {}

        def ticket_file():
            key = load_private_key(guard_key[0])
            text = sign_ticket(key, linked.vault_id, "key.remove", {"slot": slot_holder["slot"]},
                               dt.timedelta(hours=1), utcnow() - dt.timedelta(hours=2))
            path = tmp_path / "old-ticket"
            path.write_text(text)
            return path

        slot = _add_slot(linked)
        slot_holder["slot"] = slot
        before = _state(linked)
        result = cli("vault", "key", "remove", slot, "--ticket", str(ticket_file()), expect=None)
        assert_one_line_error(result, 67, "expired")
        assert _state(linked) == before
        assert [e.operation for e in _refusals(linked)] == ["key.remove"]

    def test_ticket_of_another_guard(self, linked, cli, sign, tmp_path):
        """A ticket signed by another guard key (right vault, operation, params): exit 67."""
        cli("guard", "keygen", "--out", str(tmp_path / "intruder"))
        slot = _add_slot(linked)
        ticket = sign("key.remove", vault_id=linked.vault_id, key=tmp_path / "intruder", slot=slot)
        before = _state(linked)
        result = cli("vault", "key", "remove", slot, "--ticket", str(ticket), expect=None)
        assert_one_line_error(result, 67, "not signed by this vault's guard")
        assert _state(linked) == before

    @pytest.mark.parametrize("content", [b"", b"hello", b"strongroom-ticket-1.e30.AAAA", b"\xff\xfe" * 50,
                                         b"x" * 70000])
    def test_garbage_ticket_file(self, linked, cli, tmp_path, content):
        """A file that is not a ticket: one line, exit 67 (3 for one too large to be a ticket)."""
        path = tmp_path / "garbage"
        path.write_bytes(content)
        slot = _add_slot(linked)
        before = _state(linked)
        result = cli("vault", "key", "remove", slot, "--ticket", str(path), expect=None)
        if len(content) > 65536:
            assert_one_line_error(result, 3, "too large")
        elif not content:
            assert result.exit_code in (66, 67), result.output  # an empty file is no ticket at all
        else:
            assert_one_line_error(result, 67, "not")
        assert _state(linked) == before

    def test_missing_ticket_file(self, linked, cli, tmp_path):
        """A ticket file that cannot be read: one line, exit 3."""
        slot = _add_slot(linked)
        result = cli("vault", "key", "remove", slot, "--ticket", str(tmp_path / "nope"), expect=None)
        assert_one_line_error(result, 3, "cannot read ticket")


class TestAllowed:
    def test_the_right_ticket_removes_the_slot_once(self, linked, cli, sign):
        """A ticket for this vault, key.remove and this slot removes it (by a unique prefix too),
        journals it with the ticket's nonce, and raises a 'key slot removed' alert."""
        slot = _add_slot(linked)
        ticket = sign("key.remove", vault_id=linked.vault_id, slot=slot)
        cli("vault", "key", "remove", slot[:6], "--ticket", str(ticket))
        assert slot not in _state(linked)[0]
        entries = Vault.open(linked.url).journal.entries()
        authorized = [e for e in entries if e.operation == "key.remove" and e.ticket]
        assert len(authorized) == 1 and authorized[0].params == {"slot": slot}
        assert [e.outcome for e in entries if e.operation == "key.remove" and not e.ticket] == ["started", "succeeded"]
        (alert,) = _security_alerts(linked, "key.removed")
        assert slot in alert.summary

    def test_a_ticket_is_good_once(self, linked, cli, sign, guard_key):
        """Replaying a used ticket is refused (exit 67), journaled and alerted."""
        ticket = sign("guard.unlink", vault_id=linked.vault_id)
        cli("vault", "guard", "unlink", "--ticket", str(ticket))
        cli("vault", "guard", "link", str(guard_key[1]))  # no guard: linking needs no ticket
        before = _state(linked)
        result = cli("vault", "guard", "unlink", "--ticket", str(ticket), expect=None)
        assert_one_line_error(result, 67, "used before")
        assert _state(linked) == before and Vault.open(linked.url).security.settings.guard.linked
        assert [e.operation for e in _refusals(linked)] == ["guard.unlink"]

    def test_without_a_guard_no_ticket_is_needed(self, vault, cli):
        """A vault with no guard removes a key slot without a ticket; the alert is raised all the same."""
        slot = _add_slot(vault)
        cli("vault", "key", "remove", slot)
        assert slot not in _state(vault)[0]
        assert len(_security_alerts(vault, "key.removed")) == 1

    def test_the_last_slot_rule_comes_before_the_ticket(self, linked, cli, sign):
        """Removing the last slot is refused as before (exit 33) without using up the ticket."""
        (only,) = [s.slot_id for s in linked.keys.list()]
        ticket = sign("key.remove", vault_id=linked.vault_id, slot=only)
        assert_one_line_error(cli("vault", "key", "remove", only, "--ticket", str(ticket), expect=None), 33,
                              "last key slot")
        assert list(linked.store.list("tickets/")) == []


class TestGuardLink:
    def test_show_link_unlink(self, vault, cli, guard_key, sign):
        """show says no guard; link links it; unlink needs a guard.unlink ticket and raises an alert."""
        assert "No guard is linked" in cli("vault", "guard", "show").stdout
        cli("vault", "guard", "link", str(guard_key[1]))
        shown = cli("vault", "guard", "show", "--json").stdout
        assert '"linked": true' in shown and vault.vault_id in shown
        assert_one_line_error(cli("vault", "guard", "unlink", expect=None), 66, "guard.unlink")
        assert Vault.open(vault.url).security.settings.guard.linked
        cli("vault", "guard", "unlink", "--ticket", str(sign("guard.unlink", vault_id=vault.vault_id)))
        assert not Vault.open(vault.url).security.settings.guard.linked
        assert len(_security_alerts(vault, "guard.unlinked")) == 1

    def test_relinking_to_another_key_needs_an_unlink_ticket(self, linked, cli, sign, tmp_path):
        """Replacing the guard needs the current guard's guard.unlink ticket; the same key again changes nothing."""
        cli("guard", "keygen", "--out", str(tmp_path / "new"))
        old_key = Vault.open(linked.url).security.settings.guard.public_key
        assert_one_line_error(cli("vault", "guard", "link", str(tmp_path / "new.pub"), expect=None), 66, "guard.unlink")
        assert Vault.open(linked.url).security.settings.guard.public_key == old_key
        ticket = sign("guard.unlink", vault_id=linked.vault_id)
        cli("vault", "guard", "link", str(tmp_path / "new.pub"), "--ticket", str(ticket))
        assert Vault.open(linked.url).security.settings.guard.public_key != old_key
        settings = Vault.open(linked.url).settings
        assert "nothing changed" in cli("vault", "guard", "link", str(tmp_path / "new.pub")).stdout
        assert Vault.open(linked.url).settings == settings

    def test_link_a_file_that_is_not_a_public_key(self, vault, cli, guard_key):
        """The private key (or any other file) is not a public key: one line, exit 3."""
        assert_one_line_error(cli("vault", "guard", "link", str(guard_key[0]), expect=None), 3,
                              "not a guard public key")
        assert not Vault.open(vault.url).security.settings.guard.linked

    def test_weakening_soft_delete_needs_a_ticket(self, linked, sign):
        """With a guard, disabling soft delete is refused without a ticket and done with one."""
        from strongroom.errors import TicketRequired

        v = Vault.open(linked.url)
        off = attrs.evolve(v.security.settings, soft_delete=SoftDelete(state="disabled"))
        with pytest.raises(TicketRequired):
            v.security.change(off)
        assert Vault.open(linked.url).security.settings.soft_delete.on
        ticket = sign("soft-delete.disable", vault_id=linked.vault_id).read_text()
        v.security.change(off, ticket=ticket)
        assert not Vault.open(linked.url).security.settings.soft_delete.on

    def test_expiry_follows_the_vault_clock(self, linked, sign):
        """A ticket valid for a minute is refused once the vault's clock is two minutes on."""
        v = Vault.open(linked.url)
        off = attrs.evolve(v.security.settings, soft_delete=SoftDelete(state="disabled"))
        ticket = sign("soft-delete.disable", vault_id=linked.vault_id, valid="1m").read_text()
        v.clock = lambda: utcnow() + dt.timedelta(minutes=2)
        with pytest.raises(TicketInvalid, match="expired"):
            v.security.change(off, ticket=ticket)
        assert Vault.open(linked.url).security.settings.soft_delete.on


class TestSettingsWrittenAroundTheRules:
    def test_a_document_weakening_security_without_a_ticket_is_not_taken(self, linked, cli):
        """A settings document written with the key that disables soft delete under a guard is
        not taken: the vault keeps soft delete on, verify names the document (exit 51)."""
        from strongroom.services.settings import read_history

        v = Vault.open(linked.url)
        security = attrs.evolve(v.security.settings, soft_delete=SoftDelete(state="disabled")).to_dict()
        v._settings.update(security=security)  # what a client that skips the rules would write
        fresh = Vault.open(linked.url)
        assert fresh.security.settings.soft_delete.on
        history = read_history(fresh.repo, fresh.vault_id)
        assert len(history.rejected) == 1 and "soft-delete.disable" in history.rejected[0]
        result = cli("vault", "verify", expect=51)
        assert "Traceback" not in result.output
        assert "soft-delete.disable" in result.stderr and "not taken" in result.stderr
