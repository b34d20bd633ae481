"""A vault whose key is in SoftHSM2, through the ``strongroom`` command as a user runs it.

Each test has its own SoftHSM2 configuration and token folder (``hsm``); every PKCS#11
call runs in a child process (:mod:`hsmkit`).
"""

from __future__ import annotations

import json

from strongroom.testing import make_tree, tree_digest

from hsmkit import TOKEN, one_line_error


def _create(hsm, tmp_path, key="cmk-1", name="vault"):
    url = str(tmp_path / name)
    hsm.cli("vault", "create", url, "--key-provider", "pkcs11", *hsm.options(TOKEN, key))
    return url


def _slots(hsm, url, **env):
    return json.loads(hsm.cli("--vault", url, "vault", "key", "list", "--json", **env).stdout)


def _backup_and_restore(hsm, url, src, target, **env):
    hsm.cli("--vault", url, "protect", "files", "docs", "--path", str(src), **env)
    hsm.cli("--vault", url, "backup", "docs", **env)
    hsm.cli("--vault", url, "restore", "docs", "--target", str(target), **env)


def _restored_digest(target, src):
    """The digest of the restored copy of ``src`` (restored under its absolute path)."""
    return tree_digest(target / str(src).lstrip("/"))


class TestOnlyAnHsmSlot:
    def test_backs_up_and_restores_byte_for_byte(self, hsm, tmp_path):
        """The vault's only slot is in the token, whose key was generated there (sensitive, not extractable)."""
        url = _create(hsm, tmp_path)
        src = tmp_path / "src"
        make_tree(src)
        _backup_and_restore(hsm, url, src, tmp_path / "out")
        assert _restored_digest(tmp_path / "out", src) == tree_digest(src)
        [slot] = _slots(hsm, url)
        assert slot["provider"] == "pkcs11"
        assert hsm.key_facts(TOKEN, "cmk-1") == {"sensitive": True, "extractable": False, "token": True,
                                                 "bits": 256}
        stored = (tmp_path / "vault" / "keys" / slot["slot"]).read_text()
        params = json.loads(stored)["params"]
        assert params == {"module": hsm.module, "token": TOKEN, "key": "cmk-1", "pin-env": "HSM_PIN"}
        assert "1234" not in stored

    def test_deleting_the_token_makes_it_unopenable_until_a_recovery_slot(self, hsm, tmp_path):
        """softhsm2-util --delete-token: a vault with only that slot fails in one line (exit 101); one
        with a passphrase recovery slot added before opens with it and restores byte for byte."""
        only = _create(hsm, tmp_path, name="only")
        recovered = _create(hsm, tmp_path, name="recovered")
        src = tmp_path / "src"
        make_tree(src)
        for url in (only, recovered):
            hsm.cli("--vault", url, "protect", "files", "docs", "--path", str(src))
            hsm.cli("--vault", url, "backup", "docs")
        hsm.cli("--vault", recovered, "vault", "key", "add", "--new-passphrase-env", "RECOVERY", "--label",
                "recovery", RECOVERY="office safe")
        hsm.delete_token(TOKEN)
        one_line_error(hsm.cli("--vault", only, "vault", "info", expect=None), 101,
                       f"no PKCS#11 token '{TOKEN}'")
        failed = one_line_error(hsm.cli("--vault", recovered, "vault", "info", expect=None), 31,
                                f"no PKCS#11 token '{TOKEN}'", "a passphrase is needed")
        assert failed.startswith("strongroom: error: No usable key")
        hsm.cli("--vault", recovered, "restore", "docs", "--target", str(tmp_path / "out"),
                STRONGROOM_PASSPHRASE="office safe")
        assert _restored_digest(tmp_path / "out", src) == tree_digest(src)


class TestBadInput:
    """Each is one line on stderr, a stable exit code, no traceback."""

    def test_module_that_does_not_exist_or_is_no_pkcs11_module(self, hsm, tmp_path):
        for module, needle in ((str(tmp_path / "nope.so"), "does not exist"), ("/etc/hostname", "not a PKCS#11")):
            result = hsm.cli("vault", "create", str(tmp_path / "v"), "--key-provider", "pkcs11",
                             "--key-option", f"module={module}", "--key-option", f"token={TOKEN}",
                             "--key-option", "key=k", "--key-option", "pin-env=HSM_PIN", expect=None)
            one_line_error(result, 100, module, needle)

    def test_absent_token(self, hsm, tmp_path):
        result = hsm.cli("vault", "create", str(tmp_path / "v"), "--key-provider", "pkcs11",
                         *hsm.options("no-such-token", "k"), expect=None)
        one_line_error(result, 101, "no PKCS#11 token 'no-such-token'")

    def test_pin_variable_unset_or_pin_wrong(self, hsm, tmp_path):
        url = _create(hsm, tmp_path)
        one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None, HSM_PIN=None), 102,
                       "the PIN variable HSM_PIN is not set")
        one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None, HSM_PIN="9999"), 103,
                       "refused the PIN")
        one_line_error(hsm.cli("vault", "create", str(tmp_path / "v2"), "--key-provider", "pkcs11",
                               *hsm.options(TOKEN, "k"), expect=None, HSM_PIN="9999"), 103, "refused the PIN")
        hsm.cli("--vault", url, "vault", "info")  # wrong PINs did not lock the token

    def test_a_key_label_that_matches_two_keys(self, hsm, tmp_path):
        hsm.add_key(TOKEN, "twice")
        hsm.add_key(TOKEN, "twice")
        result = hsm.cli("vault", "create", str(tmp_path / "v"), "--key-provider", "pkcs11",
                         *hsm.options(TOKEN, "twice"), expect=None)
        one_line_error(result, 105, "2 keys", "labelled 'twice'")
        assert not (tmp_path / "v" / "keys").exists() or not list((tmp_path / "v" / "keys").iterdir())

    def test_no_such_key_when_opening(self, hsm, tmp_path):
        url = _create(hsm, tmp_path)
        assert hsm.destroy_keys(TOKEN, "cmk-1") == 1
        one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None), 104, "no key labelled 'cmk-1'")

    def test_options_the_provider_does_not_take_or_lacks(self, hsm, tmp_path):
        url = str(tmp_path / "v")
        one_line_error(hsm.cli("vault", "create", url, "--key-provider", "pkcs11", *hsm.options(TOKEN, "k"),
                               "--key-option", "colour=blue", expect=None), 3, "no option 'colour'")
        one_line_error(hsm.cli("vault", "create", url, "--key-provider", "pkcs11", "--key-option",
                               f"module={hsm.module}", expect=None), 3, "needs --key-option token=LABEL")
        one_line_error(hsm.cli("vault", "create", url, "--key-option", "token=x", expect=None), 3,
                       "key provider 'local' has no option 'token'")

    def test_a_wrong_pin_does_not_lock_the_vault_for_other_slots(self, hsm, tmp_path):
        url = _create(hsm, tmp_path)
        hsm.cli("--vault", url, "vault", "key", "add", "--new-passphrase-env", "RECOVERY", RECOVERY="pw")
        for _ in range(3):
            hsm.cli("--vault", url, "vault", "info", HSM_PIN="9999", STRONGROOM_PASSPHRASE="pw")
        both = one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None, HSM_PIN="9999"), 31,
                              "refused the PIN")
        assert "a passphrase is needed" in both
        hsm.cli("--vault", url, "vault", "info")  # the right PIN still opens it
