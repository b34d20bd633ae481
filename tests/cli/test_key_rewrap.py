"""vault key rewrap: a slot's master key under a new passphrase or local key, crash-safe; and
vault key remove never removes the last slot that can open the vault, --force or not."""

from __future__ import annotations

import json
import signal

import pytest

from strongroom.repository.keyring import KILL_AT_ENV
from vaultkit import assert_one_line_error, run_strongroom

SEAMS = ("key.rewrap.written", "key.rewrap.activated")


def _slots(cli, **env):
    return json.loads(cli("vault", "key", "list", "--json", env=env or None).stdout)


def _opens(vault_url, **env) -> bool:
    return run_strongroom("--vault", vault_url, "vault", "info", env=env).returncode == 0


@pytest.fixture
def passphrase_vault(cli, strongroom_weak_kdf):
    cli("vault", "create", cli.vault_url, "--passphrase-env", "OLD", env={"OLD": "old secret"})
    return cli


class TestRewrap:
    def test_a_passphrase_slot_takes_the_new_passphrase(self, passphrase_vault, vault_url):
        """After the rewrap the old passphrase opens nothing (exit 32), the new one opens, the label stays."""
        cli = passphrase_vault
        [old] = _slots(cli, STRONGROOM_PASSPHRASE="old secret")
        out = json.loads(cli("vault", "key", "rewrap", old["slot"][:6], "--new-passphrase-env", "NEW", "--json",
                             env={"STRONGROOM_PASSPHRASE": "old secret", "NEW": "new secret"}).stdout)
        assert out["old_slot"] == old["slot"] and out["provider"] == "passphrase"
        assert_one_line_error(cli("vault", "info", env={"STRONGROOM_PASSPHRASE": "old secret"}, expect=None), 32,
                              "Wrong passphrase")
        [new] = _slots(cli, STRONGROOM_PASSPHRASE="new secret")
        assert (new["slot"], new["label"]) == (out["slot"], "initial")

    def test_a_local_slot_gets_a_new_local_key(self, cli, vault_url, strongroom_home):
        """The key file is replaced: a copy of the old key file no longer opens the vault."""
        cli("vault", "create", vault_url)
        key_file = next((strongroom_home / "keys").glob("*.key"))
        old_key = key_file.read_bytes()
        [old] = _slots(cli)
        cli("vault", "key", "rewrap", old["slot"])
        assert key_file.read_bytes() != old_key and _opens(vault_url)
        key_file.write_bytes(old_key)
        assert_one_line_error(cli("vault", "info", expect=None), 31, "is not the key of this slot")

    def test_options_a_provider_does_not_take_are_refused(self, passphrase_vault):
        [old] = _slots(passphrase_vault, STRONGROOM_PASSPHRASE="old secret")
        result = passphrase_vault("vault", "key", "rewrap", old["slot"], "--key-option", "key=x", expect=None,
                                  env={"STRONGROOM_PASSPHRASE": "old secret", "NEW": "n"})
        assert_one_line_error(result, 3, "key provider 'passphrase' has no option 'key'")
        assert [s["slot"] for s in _slots(passphrase_vault, STRONGROOM_PASSPHRASE="old secret")] == [old["slot"]]

    @pytest.mark.parametrize("seam", SEAMS)
    def test_a_passphrase_rewrap_killed_at_either_seam_leaves_a_vault_that_opens(self, passphrase_vault,
                                                                                  vault_url, seam):
        """SIGKILL after the new slot is written (and after its key is in place): both passphrases open."""
        env = {"STRONGROOM_PASSPHRASE": "old secret", "NEW": "new secret", KILL_AT_ENV: seam}
        [old] = _slots(passphrase_vault, STRONGROOM_PASSPHRASE="old secret")
        killed = run_strongroom("--vault", vault_url, "vault", "key", "rewrap", old["slot"],
                                "--new-passphrase-env", "NEW", env=env)
        assert killed.returncode == -signal.SIGKILL
        assert _opens(vault_url, STRONGROOM_PASSPHRASE="old secret")
        assert _opens(vault_url, STRONGROOM_PASSPHRASE="new secret")
        assert len(_slots(passphrase_vault, STRONGROOM_PASSPHRASE="new secret")) == 2

    @pytest.mark.parametrize("seam", SEAMS)
    def test_a_local_rewrap_killed_at_either_seam_leaves_a_vault_that_opens(self, cli, vault_url, seam):
        """Before the key file is replaced the old slot opens; after it, the new one."""
        cli("vault", "create", vault_url)
        [old] = _slots(cli)
        killed = run_strongroom("--vault", vault_url, "vault", "key", "rewrap", old["slot"], env={KILL_AT_ENV: seam})
        assert killed.returncode == -signal.SIGKILL
        assert _opens(vault_url)
        slots = _slots(cli)
        in_use = [s["slot"] for s in slots if s["in_use"]]
        assert len(slots) == 2 and in_use == ([old["slot"]] if seam == SEAMS[0] else
                                              [s["slot"] for s in slots if s["slot"] != old["slot"]])
        cli("vault", "key", "remove", [s["slot"] for s in slots if s["slot"] not in in_use][0])  # the dead one
        assert _opens(vault_url)


class TestLastSlot:
    @pytest.mark.parametrize("force", [(), ("--force",)], ids=["plain", "forced"])
    def test_the_last_slot_is_never_removed(self, cli, vault_url, force):
        """One line naming what to do, exit 33; the vault still opens."""
        cli("vault", "create", vault_url)
        [slot] = _slots(cli)
        result = cli("vault", "key", "remove", *force, slot["slot"], expect=None)
        assert_one_line_error(result, 33, "last key slot that can open the vault", "add another slot first")
        assert [s["slot"] for s in _slots(cli)] == [slot["slot"]] and _opens(vault_url)

    def test_foreign_and_damaged_objects_do_not_count(self, cli, vault_url, tmp_path):
        """A copy of the slot under another name and a malformed slot object are no second slot."""
        cli("vault", "create", vault_url)
        [slot] = _slots(cli)
        keys = tmp_path / "vault" / "keys"
        (keys / "copy-of-it").write_bytes((keys / slot["slot"]).read_bytes())
        (keys / "0123456789abcdef").write_text("{not json")
        result = cli("vault", "key", "remove", "--force", slot["slot"], expect=None)
        assert_one_line_error(result, 33, "last key slot that can open the vault")
        assert _opens(vault_url)

    def test_with_a_second_slot_it_goes(self, cli, vault_url, strongroom_weak_kdf):
        cli("vault", "create", vault_url)
        [local] = _slots(cli)
        cli("vault", "key", "add", "--new-passphrase-env", "PW", env={"PW": "pw"})
        cli("vault", "key", "remove", local["slot"])
        assert _opens(vault_url, STRONGROOM_PASSPHRASE="pw")
        [left] = _slots(cli, STRONGROOM_PASSPHRASE="pw")
        assert_one_line_error(cli("vault", "key", "remove", "--force", left["slot"], expect=None,
                                  env={"STRONGROOM_PASSPHRASE": "pw"}), 33, "add another slot first")
