"""Key slots planted or changed by whoever can write the storage without the key.

A slot's KDF cost is bounded before scrypt runs; every field a slot states (its cost,
salt, fingerprint, label, provider, vault and id) is authenticated; a slot is its object
name, so a copy under another name or from another vault is foreign and never opens the
vault; old-format slots still open, with a notice, until ``vault key upgrade`` rewrites
them; ``vault verify`` checks the slots.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.vault import Vault
from vaultkit import run_strongroom

PW = "a passphrase for the slot"


#: Runs argv[1:] and writes its exit code and peak RSS (KiB) to argv[0].  A child forked from
#: this (large) test process would count the test's memory as its own, so a small Python
#: starts and measures it.
_MEASURE = ("import os, subprocess, sys\n"
            "proc = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(proc.pid, 0)\n"
            "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n")


def run_measured(tmp_path, *args: str) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak RSS in KiB) of the strongroom command run as a child."""
    out, err, measured = tmp_path / "measured.out", tmp_path / "measured.err", tmp_path / "measured"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        subprocess.run([sys.executable, "-c", _MEASURE, str(measured),
                        os.path.join(os.path.dirname(sys.executable), "strongroom"), *args],
                       stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, check=True)
    code, peak = measured.read_text().split()
    return int(code), out.read_text(), err.read_text(), int(peak)


def keys_dir(cli) -> str:
    return os.path.join(cli.vault_url, "keys")


def slot_ids(cli, **env) -> dict[str, str]:
    """provider -> slot id of every slot key list shows."""
    listed = json.loads(cli("vault", "key", "list", "--json", env=env or None).stdout)
    return {s["provider"]: s["slot"] for s in listed if not s.get("foreign")}


def read_slot(cli, slot_id: str) -> dict:
    with open(os.path.join(keys_dir(cli), slot_id)) as fh:
        return json.load(fh)


def write_object(cli, name: str, doc: dict | bytes) -> None:
    path = os.path.join(cli.vault_url, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


def drop_local_keys(home) -> None:
    for key in (home / "keys").glob("*.key"):
        key.unlink()


@pytest.fixture
def two_slots(cli):
    """A vault with its local slot and a passphrase slot (``PW``)."""
    cli("vault", "create", cli.vault_url)
    cli("vault", "key", "add", "--new-passphrase-env", "NEWPW", env={"NEWPW": PW})
    return cli


@pytest.fixture
def passphrase_only(cli):
    """A vault whose only slot is a passphrase slot (``PW``)."""
    cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": PW})
    return cli


@pytest.fixture
def scrypt_calls(monkeypatch):
    """Every call of hashlib.scrypt in this process, (n, r, p, salt length), still made."""
    calls = []
    real = hashlib.scrypt

    def counting(password, *, salt, n, r, p, **kwargs):
        calls.append((n, r, p, len(salt)))
        return real(password, salt=salt, n=n, r=r, p=p, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


class TestBoundedCost:
    @pytest.mark.parametrize("change", [
        {"n": 2**20, "p": 16},          # 1 GiB sixteen times over: minutes of work
        {"p": 2000},
        {"n": 2**40},
        {"n": 3000},                    # not a power of two
        {"n": "1024"},
        {"salt": ""},                   # no salt at all
        {"salt": base64.b64encode(b"s" * 1024).decode()},
        {"salt": "not base64!"},
        {"kdf": "argon2id"},
        {"n": 2**16, "r": 1},           # N must be below 2**(16 r) (RFC 7914): OpenSSL refuses it
    ], ids=["1GiB-x16", "p2000", "n2^40", "n3000", "n-text", "salt-empty", "salt-1KiB", "salt-not-base64",
            "other-kdf", "n-too-big-for-r"])
    def test_a_planted_cost_is_refused_in_one_line_without_running_scrypt(self, passphrase_only, scrypt_calls,
                                                                         change):
        """A passphrase slot whose cost or salt is out of bounds is refused, naming what is
        wrong, before scrypt runs (and before any passphrase is asked for)."""
        cli = passphrase_only
        slot_id = next(iter(os.listdir(keys_dir(cli))))
        doc = read_slot(cli, slot_id)
        doc["params"].update(change)
        write_object(cli, f"keys/{slot_id}", doc)
        scrypt_calls.clear()
        out = cli("points", env={"STRONGROOM_PASSPHRASE": PW}, expect=31)
        assert scrypt_calls == []
        line = out.stderr.strip()
        assert "\n" not in line and line.startswith("strongroom: error: ") and "slot is damaged" in line, line

    def test_the_highest_cost_allowed_is_one_scrypt_derives(self, cli):
        """STRONGROOM_SCRYPT_N=1048576 (N = 2**20, r = 8: 1 GiB, the most a slot may ask for)
        makes a slot that opens, instead of failing on scrypt's memory limit (exit 99)."""
        env = {"PW": PW, "STRONGROOM_SCRYPT_N": str(2**20)}
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env=env)
        slot_id = next(iter(os.listdir(keys_dir(cli))))
        assert read_slot(cli, slot_id)["params"]["n"] == 2**20
        cli("items", env={"STRONGROOM_PASSPHRASE": PW})

    def test_a_slot_object_of_a_gigabyte_costs_no_memory(self, two_slots, tmp_path):
        """A 600 MiB object under keys/ (sparse) is damaged, read no further than 64 KiB:
        key list runs in a child process under 200 MB of peak memory and lists the rest."""
        cli = two_slots
        with open(os.path.join(keys_dir(cli), "0123456789abcdef"), "wb") as fh:
            fh.truncate(600 * 2**20)
        code, stdout, stderr, peak_kib = run_measured(tmp_path, "--vault", cli.vault_url, "vault", "key", "list",
                                                      "--json")
        assert code == 0, stderr
        assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"
        assert sorted(s["provider"] for s in json.loads(stdout)) == ["local", "passphrase"]
        assert "keys/0123456789abcdef is malformed: it is larger than 65536 bytes" in stderr


class TestAuthenticatedFields:
    @pytest.mark.parametrize("change", [
        lambda d: d.update(label="office safe"),
        lambda d: d.update(created="2001-01-01T00:00:00+00:00"),
        lambda d: d["params"].pop("fingerprint"),
        lambda d: d["params"].update(extra="planted"),
    ], ids=["label", "created", "fingerprint-removed", "params-added"])
    def test_a_changed_field_makes_the_slot_refuse_to_open(self, cli, change):
        """Changing any field a local slot states (label, creation time, its provider's
        parameters) makes it not open: the vault's only slot then gives exit 31."""
        cli("vault", "create", cli.vault_url)
        slot_id = next(iter(os.listdir(keys_dir(cli))))
        doc = read_slot(cli, slot_id)
        change(doc)
        write_object(cli, f"keys/{slot_id}", doc)
        out = cli("points", expect=31)
        assert f"slot {slot_id}: the local key does not open it" in out.stderr

    def test_a_changed_salt_or_cost_makes_the_passphrase_wrong(self, passphrase_only, scrypt_calls):
        """A passphrase slot's cost and salt are its own: another valid cost or salt does not open it."""
        cli = passphrase_only
        slot_id = next(iter(os.listdir(keys_dir(cli))))
        doc = read_slot(cli, slot_id)
        for change in ({"n": doc["params"]["n"] * 2}, {"salt": base64.b64encode(os.urandom(16)).decode()}):
            write_object(cli, f"keys/{slot_id}", {**doc, "params": {**doc["params"], **change}})
            cli("points", env={"STRONGROOM_PASSPHRASE": PW}, expect=32)


class TestSlotIdentity:
    def test_a_copy_under_another_name_never_opens_the_vault(self, two_slots, strongroom_home):
        """Copies of the local slot under keys/backup/<id>, under another id, and under another
        id with its body renamed too are foreign: key list marks them, key remove removes the
        slot, and the copies do not open the vault afterwards."""
        cli = two_slots
        local = slot_ids(cli)["local"]
        doc = read_slot(cli, local)
        other = "f" * 16
        write_object(cli, f"keys/backup/{local}", doc)
        write_object(cli, f"keys/{other}", doc)
        write_object(cli, f"keys/{'e' * 16}", {**doc, "slot": "e" * 16})
        assert f"Removed key slot {local} (local)" in cli("vault", "key", "remove", local).stdout
        out = cli("points", expect=31)  # only the passphrase slot is left, and no passphrase is given
        assert "a passphrase is needed" in out.stderr
        assert "e" * 16 in out.stderr and "does not open it" in out.stderr  # the renamed body was tried, in vain
        cli("points", env={"STRONGROOM_PASSPHRASE": PW})
        listed = cli("vault", "key", "list", "--json", env={"STRONGROOM_PASSPHRASE": PW})
        foreign = {s["object"] for s in json.loads(listed.stdout) if s["foreign"]}
        assert foreign == {f"keys/backup/{local}", f"keys/{other}"}
        assert f"keys/backup/{local} is not a key slot of this vault" in listed.stderr
        table = cli("vault", "key", "list", env={"STRONGROOM_PASSPHRASE": PW}).stdout
        assert f"keys/{other}" in table and "FOREIGN" in table

    def test_a_slot_of_another_vault_is_foreign(self, cli, tmp_path):
        """A slot copied from another vault (same local key store) is foreign here, never tried."""
        cli("vault", "create", cli.vault_url)
        other = tmp_path / "other"
        cli("vault", "create", str(other))
        name = next(iter(os.listdir(other / "keys")))
        shutil.copy(other / "keys" / name, os.path.join(keys_dir(cli), name))
        listed = json.loads(cli("vault", "key", "list", "--json").stdout)
        assert [s["object"] for s in listed if s["foreign"]] == [f"keys/{name}"]
        assert "belongs to vault" in next(s["reason"] for s in listed if s["foreign"])


def _v1_slot(vault_id: str, slot_id: str, master_json: bytes, kek: bytes, provider: str, params: dict) -> dict:
    """A key slot in the format of strongroom 1 (docs/formats.md: version 1), made by hand."""
    nonce = os.urandom(12)
    ad = f"strongroom-key-slot:{vault_id}:{slot_id}".encode()
    wrapped = AESGCM(kek).encrypt(nonce, master_json, ad)
    return {"version": 1, "slot": slot_id, "provider": provider, "label": "old", "created": "2025-01-01T00:00:00",
            "params": params, "nonce": base64.b64encode(nonce).decode(),
            "wrapped": base64.b64encode(wrapped).decode()}


@pytest.fixture
def old_slots(cli, strongroom_home):
    """A vault whose slots are a local and a passphrase slot of format 1 (ids 1111... and 2222...)."""
    cli("vault", "create", cli.vault_url)
    vault = Vault.open(cli.vault_url)
    vid, master_json = vault.vault_id, vault.keys.master.to_json()
    kek = base64.b64decode((strongroom_home / "keys" / f"{vid}.key").read_text().strip())
    for name in os.listdir(keys_dir(cli)):
        os.unlink(os.path.join(keys_dir(cli), name))
    import blake3

    local = _v1_slot(vid, "1" * 16, master_json, kek, "local", {"fingerprint": blake3.blake3(kek).hexdigest()[:16]})
    salt = os.urandom(16)
    pkek = hashlib.scrypt(PW.encode(), salt=salt, n=1024, r=8, p=1, dklen=32)
    params = {"kdf": "scrypt", "n": 1024, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode()}
    write_object(cli, "keys/" + "1" * 16, local)
    write_object(cli, "keys/" + "2" * 16, _v1_slot(vid, "2" * 16, master_json, pkek, "passphrase", params))
    return cli


class TestOldFormat:
    def test_an_old_slot_opens_with_one_notice(self, old_slots):
        """A format 1 slot opens the vault, with one notice line on stderr naming the upgrade command."""
        proc = run_strongroom("--vault", old_slots.vault_url, "items")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("note: key slot 1111111111111111 is in the old format")
        assert "strongroom vault key upgrade" in lines[0]
        listed = json.loads(old_slots("vault", "key", "list", "--json").stdout)
        assert sorted(s["format"] for s in listed) == [1, 1]

    def test_upgrade_rewrites_the_slots_it_can_open(self, old_slots, strongroom_home):
        """key upgrade rewrites the local slot, and the passphrase slot when its passphrase is
        given (fresh salt); both then open without a notice, the passphrase one alone too."""
        cli = old_slots
        old_salt = read_slot(cli, "2" * 16)["params"]["salt"]
        left = cli("vault", "key", "upgrade")
        assert "Upgraded key slot 1111111111111111 (local)" in left.stdout
        assert "2222222222222222 (passphrase) left in the old format: a passphrase is needed" in left.stderr
        done = cli("vault", "key", "upgrade", env={"STRONGROOM_PASSPHRASE": PW})
        assert "Upgraded key slot 2222222222222222 (passphrase)" in done.stdout
        for slot_id in ("1" * 16, "2" * 16):
            assert read_slot(cli, slot_id)["version"] == 2
        assert read_slot(cli, "2" * 16)["params"]["salt"] != old_salt
        assert run_strongroom("--vault", cli.vault_url, "items").stderr == ""
        assert "Every key slot is in the current format." in cli("vault", "key", "upgrade").stdout
        drop_local_keys(strongroom_home)
        cli("items", env={"STRONGROOM_PASSPHRASE": PW})
        cli("items", env={"STRONGROOM_PASSPHRASE": "not it"}, expect=32)


class TestVerifyChecksSlots:
    def test_foreign_and_malformed_slot_objects_are_problems(self, two_slots):
        """verify names a copy under another name and a malformed slot object, and fails (51)."""
        cli = two_slots
        local = slot_ids(cli)["local"]
        write_object(cli, f"keys/backup/{local}", read_slot(cli, local))
        write_object(cli, f"keys/{'0' * 16}", b"{not json")
        out = cli("vault", "verify", expect=51)
        assert f"keys/backup/{local} is not a key slot of this vault" in out.stderr
        assert f"keys/{'0' * 16} is malformed" in out.stderr

    def test_a_slot_whose_key_is_here_but_does_not_open_it_is_a_problem(self, two_slots):
        """With the local slot's ciphertext changed, the vault opens with the passphrase and
        verify reports the local slot as damaged (its key is on this machine)."""
        cli = two_slots
        local = slot_ids(cli)["local"]
        doc = read_slot(cli, local)
        wrapped = bytearray(base64.b64decode(doc["wrapped"]))
        wrapped[5] ^= 1
        write_object(cli, f"keys/{local}", {**doc, "wrapped": base64.b64encode(bytes(wrapped)).decode()})
        out = cli("vault", "verify", env={"STRONGROOM_PASSPHRASE": PW}, expect=51)
        assert f"key slot {local} (local) is damaged or was changed" in out.stderr

    def test_a_slot_it_cannot_check_is_a_note(self, two_slots):
        """Without the passphrase, verify opens with the local slot, says the passphrase slot
        was not checked, and passes; with it, both are checked silently."""
        cli = two_slots
        passphrase = slot_ids(cli)["passphrase"]
        out = cli("vault", "verify")
        assert f"note: key slot {passphrase} (passphrase) not checked: a passphrase is needed" in out.stdout
        quiet = cli("vault", "verify", env={"STRONGROOM_PASSPHRASE": PW})
        assert "key slot" not in quiet.stdout + quiet.stderr

    def test_a_slot_with_a_planted_cost_is_a_problem(self, two_slots, scrypt_calls):
        """A passphrase slot with an unbounded cost is a verify problem, and scrypt never sees it."""
        cli = two_slots
        passphrase = slot_ids(cli)["passphrase"]
        doc = read_slot(cli, passphrase)
        write_object(cli, f"keys/{passphrase}", {**doc, "params": {**doc["params"], "p": 2000}})
        scrypt_calls.clear()
        out = cli("vault", "verify", env={"STRONGROOM_PASSPHRASE": PW}, expect=51)
        assert f"key slot {passphrase} (passphrase) is damaged: its scrypt cost" in out.stderr
        assert all(p < 2000 for _, _, p, _ in scrypt_calls)
