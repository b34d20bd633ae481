"""``strongroom guard keygen`` and ``guard sign``: the guard's key files and the tickets they sign."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat

import pytest

from strongroom.policy.security import OPERATIONS
from strongroom.services.tickets import load_public_key, verify_ticket
from vaultkit import assert_one_line_error


class TestKeygen:
    def test_writes_a_private_key_0600_and_a_public_key(self, tmp_path, cli):
        """keygen writes FILE (mode 0600, PEM) and FILE.pub (one line: the raw Ed25519 key, base64)."""
        out = tmp_path / "g"
        shown = cli("guard", "keygen", "--out", str(out)).stdout
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        pub = (tmp_path / "g.pub").read_text()
        assert pub.startswith("strongroom-guard-ed25519 ") and pub.count("\n") == 1
        assert len(base64.b64decode(load_public_key(tmp_path / "g.pub"))) == 32
        assert pub.strip() in shown

    def test_refuses_to_overwrite_either_file(self, tmp_path, cli):
        """An existing FILE or FILE.pub is never written over: one line, exit 3, the files unchanged."""
        out = tmp_path / "g"
        cli("guard", "keygen", "--out", str(out))
        before = out.read_bytes(), (tmp_path / "g.pub").read_bytes()
        assert_one_line_error(cli("guard", "keygen", "--out", str(out), expect=None), 3, "exists")
        assert (out.read_bytes(), (tmp_path / "g.pub").read_bytes()) == before
        (tmp_path / "h.pub").write_text("mine\n")
        assert_one_line_error(cli("guard", "keygen", "--out", str(tmp_path / "h"), expect=None), 3, "h.pub")
        assert not (tmp_path / "h").exists() and (tmp_path / "h.pub").read_text() == "mine\n"

    def test_two_keys_differ(self, tmp_path, cli):
        """Every keygen makes a new key."""
        cli("guard", "keygen", "--out", str(tmp_path / "a"))
        cli("guard", "keygen", "--out", str(tmp_path / "b"))
        assert load_public_key(tmp_path / "a.pub") != load_public_key(tmp_path / "b.pub")


class TestSign:
    def test_help_lists_every_operation(self, cli):
        """guard sign --help names every critical operation with its description."""
        shown = cli("guard", "sign", "--help").stdout
        for name, what in OPERATIONS.items():
            assert name in shown and what in shown, name

    def test_ticket_to_stdout_is_bound_as_asked(self, cli, guard_key):
        """The printed ticket verifies with the public key for exactly that vault, operation and params."""
        key, pub = guard_key
        text = cli("guard", "sign", "--key", str(key), "--vault-id", "v1", "--operation", "key.remove",
                   "--param", "slot=abc", "--valid", "2h").stdout.strip()
        raw = base64.b64decode(load_public_key(pub))
        now = dt.datetime.now(dt.timezone.utc)
        ticket = verify_ticket(text, raw, vault_id="v1", operation="key.remove", params={"slot": "abc"}, now=now)
        assert dt.timedelta(minutes=119) < dt.datetime.fromisoformat(ticket.not_after) - now <= dt.timedelta(hours=2)

    def test_ticket_to_a_new_file_0600(self, cli, guard_key, tmp_path):
        """--output writes a new file of mode 0600, and never over an existing one."""
        out = tmp_path / "t"
        cli("guard", "sign", "--key", str(guard_key[0]), "--vault-id", "v1", "--operation", "guard.unlink",
            "--output", str(out))
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert out.read_text().startswith("strongroom-ticket-1.")
        before = out.read_bytes()
        again = cli("guard", "sign", "--key", str(guard_key[0]), "--vault-id", "v1", "--operation", "guard.unlink",
                    "--output", str(out), expect=None)
        assert_one_line_error(again, 3, "exists")
        assert out.read_bytes() == before

    @pytest.mark.parametrize("args, words", [
        (["--operation", "points.erase"], ["unknown operation", "points.erase", "points.delete"]),
        (["--operation", "key.remove", "--valid", "soon"], ["--valid", "soon"]),
        (["--operation", "key.remove", "--valid", "0s"], ["valid for 1 second"]),
        (["--operation", "key.remove", "--valid", "31d"], ["30 days"]),
        (["--operation", "key.remove", "--param", "slot"], ["KEY=VALUE", "slot"]),
        (["--operation", "key.remove", "--param", "=x"], ["KEY=VALUE"]),
        (["--operation", "key.remove", "--param", "slot=a", "--param", "slot=b"], ["each key once"]),
    ])
    def test_bad_input_is_one_line_exit_3(self, cli, guard_key, args, words, tmp_path):
        """An unknown operation, a bad duration, a malformed K=V: one line, exit 3, no ticket."""
        out = tmp_path / "t"
        result = cli("guard", "sign", "--key", str(guard_key[0]), "--vault-id", "v1", *args, "--output", str(out),
                     expect=None)
        assert_one_line_error(result, 3, *words)
        assert not out.exists()

    def test_a_file_that_is_not_a_private_key(self, cli, guard_key, tmp_path):
        """Signing with the public key file (or anything else) is refused: one line, exit 3."""
        result = cli("guard", "sign", "--key", str(guard_key[1]), "--vault-id", "v1", "--operation", "key.remove",
                     expect=None)
        assert_one_line_error(result, 3, "not a guard private key")
        result = cli("guard", "sign", "--key", str(tmp_path / "missing"), "--vault-id", "v1",
                     "--operation", "key.remove", expect=None)
        assert_one_line_error(result, 3, "cannot read")

    def test_needs_no_vault(self, cli, guard_key, monkeypatch):
        """guard sign runs offline: no vault in the environment, none opened."""
        result = cli("guard", "sign", "--key", str(guard_key[0]), "--vault-id", "v1", "--operation", "vault.delete",
                     env={"STRONGROOM_VAULT": "/nonexistent/vault"})
        assert result.stdout.startswith("strongroom-ticket-1.")
        assert not os.path.exists("/nonexistent/vault")
