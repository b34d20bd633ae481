"""vault key rewrap of a pkcs11 slot: the master key under a new key in the token, crash-safe."""

from __future__ import annotations

import json
import signal

import pytest

from hsmkit import TOKEN, one_line_error

#: The test-only seams of a rewrap where ``STRONGROOM_TEST_KILL_AT`` SIGKILLs the command.
SEAMS = ("key.rewrap.written", "key.rewrap.activated")


def _create(hsm, tmp_path):
    url = str(tmp_path / "vault")
    hsm.cli("vault", "create", url, "--key-provider", "pkcs11", *hsm.options(TOKEN, "cmk-1"))
    return url


def _slots(hsm, url):
    return json.loads(hsm.cli("--vault", url, "vault", "key", "list", "--json").stdout)


def test_rewrap_moves_the_slot_to_a_new_token_key(hsm, tmp_path):
    """After the rewrap only the new key opens: with the old key still in the token and the new
    one removed, the vault does not open (exit 104)."""
    url = _create(hsm, tmp_path)
    [old] = _slots(hsm, url)
    out = json.loads(hsm.cli("--vault", url, "vault", "key", "rewrap", old["slot"], "--key-option", "key=cmk-2",
                             "--json").stdout)
    [new] = _slots(hsm, url)
    assert new["slot"] == out["slot"] != old["slot"] and new["label"] == "initial"
    params = json.loads((tmp_path / "vault" / "keys" / new["slot"]).read_text())["params"]
    assert params == {"module": hsm.module, "token": TOKEN, "key": "cmk-2", "pin-env": "HSM_PIN"}
    hsm.cli("--vault", url, "vault", "info")
    assert hsm.destroy_keys(TOKEN, "cmk-2") == 1
    assert hsm.key_facts(TOKEN, "cmk-1")["token"]  # the old key is still there, and opens nothing
    one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None), 104, "no key labelled 'cmk-2'")


def test_rewrap_needs_another_key(hsm, tmp_path):
    url = _create(hsm, tmp_path)
    [old] = _slots(hsm, url)
    one_line_error(hsm.cli("--vault", url, "vault", "key", "rewrap", old["slot"], expect=None), 3,
                   "needs another key than 'cmk-1'", "key=NEWLABEL")
    assert [s["slot"] for s in _slots(hsm, url)] == [old["slot"]]


@pytest.mark.parametrize("seam", SEAMS)
def test_a_rewrap_killed_at_the_seam_leaves_a_vault_both_keys_open(hsm, tmp_path, seam):
    """SIGKILL between writing the new slot and removing the old: the vault opens with either key."""
    url = _create(hsm, tmp_path)
    [old] = _slots(hsm, url)
    killed = hsm.cli("--vault", url, "vault", "key", "rewrap", old["slot"], "--key-option", "key=cmk-2",
                     expect=None, STRONGROOM_TEST_KILL_AT=seam)
    assert killed.code == -signal.SIGKILL
    slots = _slots(hsm, url)
    assert len(slots) == 2
    assert hsm.destroy_keys(TOKEN, "cmk-2") == 1
    hsm.cli("--vault", url, "vault", "info")  # the old slot and key
    hsm.add_key(TOKEN, "cmk-2")  # a new key under the label: not the one that wrapped the new slot
    assert hsm.destroy_keys(TOKEN, "cmk-1") == 1
    one_line_error(hsm.cli("--vault", url, "vault", "info", expect=None), 31, "does not open it")
