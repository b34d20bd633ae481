"""Key material kept where it belongs: the recovery kit, the vault id, the local key file,
the environment of child processes, and the KDF cost of new passphrase slots.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import stat
import subprocess
import sys

import pytest

import strongroom
from strongroom.errors import KeyNotAvailable
from strongroom.repository import keyproviders
from strongroom.repository.keyproviders import KeyContext, LocalKeyProvider
from strongroom.vault import Vault
from vaultkit import run_strongroom

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
KIT_PW = "kit passphrase, written on the envelope"


def vault_id_of(cli) -> str:
    with open(os.path.join(cli.vault_url, "strongroom.json")) as fh:
        return json.load(fh)["vault_id"]


def run_on_terminal(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    """Run strongroom with its standard output on a pseudo-terminal: (exit code, terminal text, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([STRONGROOM, *args], stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    stderr = proc.stderr.read().decode()
    proc.wait(30)
    os.close(master)
    return proc.returncode, shown.decode(errors="replace"), stderr


@pytest.fixture
def made(cli):
    cli("vault", "create", cli.vault_url)
    return cli


class TestRecoveryKit:
    def test_a_terminal_gets_no_kit_without_print(self, made):
        """export with standard output on a terminal refuses (exit 34) and shows no key;
        with --print it shows the kit."""
        code, shown, stderr = run_on_terminal("--vault", made.vault_url, "vault", "key", "export")
        assert code == 34, stderr
        assert "BEGIN" not in shown and "BEGIN" not in stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "standard output is a terminal" in lines[0] and "--output FILE" in lines[0]
        code, shown, _ = run_on_terminal("--vault", made.vault_url, "vault", "key", "export", "--print")
        assert code == 0 and "-----BEGIN STRONGROOM RECOVERY KIT-----" in shown

    def test_a_pipe_still_gets_the_kit(self, made):
        """Scripts keep working: with standard output not a terminal the kit is printed."""
        assert "-----BEGIN STRONGROOM RECOVERY KIT-----" in made("vault", "key", "export").stdout

    def test_output_is_a_new_private_file_never_written_over(self, made, tmp_path):
        """--output FILE writes a new file of mode 0600; an existing file or a symbolic link
        at FILE is left alone (exit 34)."""
        kit = tmp_path / "kit.txt"
        out = made("vault", "key", "export", "--output", kit)
        assert f"to {kit} (mode 0600)" in out.stdout and "BEGIN" not in out.stdout
        assert stat.S_IMODE(kit.stat().st_mode) == 0o600
        assert "-----BEGIN STRONGROOM RECOVERY KIT-----" in kit.read_text()
        first = kit.read_text()
        refused = made("vault", "key", "export", "--output", kit, expect=34)
        assert "exists" in refused.stderr and kit.read_text() == first
        victim = tmp_path / "victim"
        victim.write_text("someone else's file\n")
        link = tmp_path / "link.txt"
        link.symlink_to(victim)
        made("vault", "key", "export", "--output", link, expect=34)
        assert victim.read_text() == "someone else's file\n"

    def test_a_kit_protected_by_a_passphrase(self, made, tmp_path, strongroom_home):
        """A protected kit holds no clear key; import needs its passphrase (a wrong one is
        exit 32, none without a terminal exit 31) and then regains access."""
        kit = tmp_path / "kit.txt"
        made("vault", "key", "export", "--passphrase-env", "KITPW", "--output", kit, env={"KITPW": KIT_PW})
        text = kit.read_text()
        assert "kdf: scrypt n=" in text and "protected by a passphrase" in text
        clear = made("vault", "key", "export").stdout
        payload = "".join(line for line in clear.splitlines()[4:-1])
        assert payload[:40] not in text.replace("\n", "")
        for key in (strongroom_home / "keys").glob("*.key"):
            key.unlink()
        made("points", expect=31)
        made("vault", "key", "import", kit, "--passphrase-env", "KITPW", env={"KITPW": "wrong"}, expect=32)
        assert "Wrong passphrase for the recovery kit" in made(
            "vault", "key", "import", kit, "--passphrase-env", "KITPW", env={"KITPW": "wrong"}, expect=32).stderr
        assert "--passphrase-env VAR" in made("vault", "key", "import", kit, expect=31).stderr
        made("vault", "key", "import", kit, "--passphrase-env", "KITPW", env={"KITPW": KIT_PW})
        made("points")

    def test_a_clear_kit_of_the_old_layout_still_imports(self, made, strongroom_home):
        """A clear kit as earlier versions wrote it (comments, BEGIN, vault, base64, END) imports."""
        vault = Vault.open(made.vault_url)
        payload = base64.b64encode(vault.keys.master.to_json()).decode()
        text = "\n".join(["# strongroom recovery kit", "-----BEGIN STRONGROOM RECOVERY KIT-----",
                          f"vault: {vault.vault_id}", payload[:64], payload[64:],
                          "-----END STRONGROOM RECOVERY KIT-----", ""])
        for key in (strongroom_home / "keys").glob("*.key"):
            key.unlink()
        made("vault", "key", "import", "-", input=text)
        made("points")

    @pytest.mark.parametrize("bad", ["../../../etc/x", "AB" * 16, "ab" * 15])
    def test_a_kit_whose_vault_id_is_not_one_is_refused(self, made, bad):
        """A kit naming a vault id that is not 32 lowercase hex digits is no kit (exit 33)."""
        text = made("vault", "key", "export").stdout.replace(f"vault: {vault_id_of(made)}", f"vault: {bad}")
        out = made("vault", "key", "import", "-", input=text, expect=33)
        assert "not a recovery kit: its vault id is not 32 lowercase hex digits" in out.stderr

    def test_a_kit_with_a_planted_cost_is_refused_before_scrypt(self, made, tmp_path, monkeypatch):
        """A protected kit whose kdf line asks for 2**40 work is refused (exit 33), scrypt unrun."""
        kit = tmp_path / "kit.txt"
        made("vault", "key", "export", "--passphrase-env", "KITPW", "--output", kit, env={"KITPW": KIT_PW})
        text = kit.read_text()
        start = text.index("kdf: scrypt n=") + len("kdf: scrypt n=")
        text = text[:start] + "1099511627776" + text[text.index(" ", start):]
        calls = []
        monkeypatch.setattr("hashlib.scrypt", lambda *a, **k: calls.append(k))
        out = made("vault", "key", "import", "-", "--passphrase-env", "KITPW", input=text,
                   env={"KITPW": KIT_PW}, expect=33)
        assert "not a recovery kit" in out.stderr and calls == []


class TestVaultId:
    @pytest.mark.parametrize("bad", ["AB" * 16, "ab" * 15, "../../keys/x", "a" * 64])
    def test_strongroom_json_with_another_vault_id_is_damaged(self, made, bad):
        """A vault id that is not 32 lowercase hex digits in the clear strongroom.json is
        damage (exit 50), not a name for a local key file."""
        path = os.path.join(made.vault_url, "strongroom.json")
        with open(path) as fh:
            doc = json.load(fh)
        with open(path, "w") as fh:
            json.dump({**doc, "vault_id": bad}, fh)
        out = made("points", expect=50)
        assert "vault_id" in out.stderr and "32 lowercase hex digits" in out.stderr

    @pytest.mark.parametrize("bad", ["../../etc/passwd", "../" + "ab" * 16, "ab" * 16 + "/../x", ""])
    def test_the_local_key_path_never_leaves_the_key_store(self, tmp_path, bad):
        """The local key provider makes no path for a vault id that is not one."""
        with pytest.raises(KeyNotAvailable, match="not a vault id"):
            LocalKeyProvider.key_path(KeyContext(vault_id=bad, home=tmp_path))


class TestLocalKeyFile:
    def test_a_symbolic_link_planted_at_the_old_temporary_name_is_not_followed(self, made, strongroom_home, tmp_path):
        """key import writes the key through a fresh temporary file: a symbolic link planted at
        keys/<vault id>.tmp (the name earlier versions used) leaves its target untouched."""
        vid = vault_id_of(made)
        kit = made("vault", "key", "export").stdout
        (strongroom_home / "keys" / f"{vid}.key").unlink()
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        (strongroom_home / "keys" / f"{vid}.tmp").symlink_to(victim)
        made("vault", "key", "import", "-", input=kit)
        assert victim.read_text() == "precious\n"
        key = strongroom_home / "keys" / f"{vid}.key"
        assert not key.is_symlink() and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert [p.name for p in (strongroom_home / "keys").iterdir() if p.name.endswith(".tmp")
                and not p.is_symlink()] == []
        made("points")

    def test_a_planted_temporary_name_is_refused_not_followed(self, tmp_path, monkeypatch):
        """Were the temporary name known in advance, a link planted there is refused
        (O_EXCL|O_NOFOLLOW): KeyNotAvailable, the link's target untouched."""
        ctx = KeyContext(vault_id="ab" * 16, home=tmp_path)
        (tmp_path / "keys").mkdir()
        planted = tmp_path / "keys" / "planted.tmp"
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        planted.symlink_to(victim)
        monkeypatch.setattr(keyproviders, "_temp_path", lambda path: planted)
        with pytest.raises(KeyNotAvailable, match="temporary file"):
            LocalKeyProvider().store(ctx, os.urandom(32))
        assert victim.read_text() == "precious\n" and not (tmp_path / "keys" / f"{'ab' * 16}.key").exists()


class TestChildEnvironment:
    def test_children_do_not_inherit_passphrases(self, monkeypatch):
        """run_child and start_child give a child neither STRONGROOM_PASSPHRASE nor a variable
        named as a passphrase source, whether they pass env= or not."""
        monkeypatch.setenv("STRONGROOM_PASSPHRASE", "opens-the-vault")
        monkeypatch.setenv("MY_VAULT_PW", "also-opens-it")
        monkeypatch.setenv("HARMLESS", "kept")
        keyproviders.PassphraseSource(env_var="MY_VAULT_PW")
        for env in (None, dict(os.environ)):
            shown = strongroom.run_child(["env"], capture_output=True, text=True, env=env).stdout
            assert "HARMLESS=kept" in shown
            assert "opens-the-vault" not in shown and "also-opens-it" not in shown
        proc = strongroom.start_child(["env"], stdout=subprocess.PIPE, text=True)
        shown = proc.communicate()[0]
        assert "HARMLESS=kept" in shown and "opens-the" not in shown

    def test_qemu_img_started_by_the_vm_plugin_gets_no_passphrase(self, tmp_path, cli):
        """strongroom protect vm (which runs qemu-img info) in a child process, with the vault's
        passphrase in STRONGROOM_PASSPHRASE and in --passphrase-env VAR: the qemu-img it
        starts sees neither (a wrapper on PATH records its environment)."""
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": "the vault passphrase"})
        bindir = tmp_path / "bin"
        bindir.mkdir()
        wrapper = bindir / "qemu-img"
        wrapper.write_text(f'#!/bin/sh\nenv > "{tmp_path}/qemu-img.env.$$"\nexec /usr/bin/qemu-img "$@"\n')
        wrapper.chmod(0o755)
        disk = tmp_path / "web.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
        env = {"PATH": f"{bindir}:{os.environ['PATH']}", "STRONGROOM_PASSPHRASE": "the vault passphrase",
               "MY_VAULT_PW": "the vault passphrase", "HARMLESS": "kept"}
        proc = run_strongroom("--vault", cli.vault_url, "--passphrase-env", "MY_VAULT_PW",
                              "protect", "vm", "web", "--disk", disk, env=env)
        assert proc.returncode == 0, proc.stderr
        dumps = [p.read_text() for p in tmp_path.glob("qemu-img.env.*")]
        assert dumps, "qemu-img was not run through the wrapper"
        for shown in dumps:
            assert "HARMLESS=kept" in shown
            assert "the vault passphrase" not in shown


class TestKdfFloor:
    def test_a_cost_below_the_floor_is_refused_outside_tests(self, cli, monkeypatch):
        """STRONGROOM_SCRYPT_N=1024 without the test-only setting stops vault create (exit 3,
        one line) before anything is written; with it, the slot is made at 1024."""
        monkeypatch.delenv("STRONGROOM_INSECURE_TEST_KDF", raising=False)
        out = cli("vault", "create", cli.vault_url, "--passphrase-env", "PW",
                  env={"PW": "pw", "STRONGROOM_SCRYPT_N": "1024"}, expect=3)
        assert out.stderr.count("\n") == 1 and "below the production floor 131072" in out.stderr
        assert not os.path.exists(os.path.join(cli.vault_url, "strongroom.json"))
        monkeypatch.setenv("STRONGROOM_INSECURE_TEST_KDF", "1")
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": "pw", "STRONGROOM_SCRYPT_N": "1024"})
        slot = next(iter(os.listdir(os.path.join(cli.vault_url, "keys"))))
        with open(os.path.join(cli.vault_url, "keys", slot)) as fh:
            assert json.load(fh)["params"]["n"] == 1024

    def test_the_production_cost_is_the_default(self, cli, monkeypatch):
        """Without STRONGROOM_SCRYPT_N a new passphrase slot costs N = 2**17."""
        monkeypatch.delenv("STRONGROOM_SCRYPT_N", raising=False)
        monkeypatch.delenv("STRONGROOM_INSECURE_TEST_KDF", raising=False)
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": "pw"})
        slot = next(iter(os.listdir(os.path.join(cli.vault_url, "keys"))))
        with open(os.path.join(cli.vault_url, "keys", slot)) as fh:
            assert json.load(fh)["params"]["n"] == 2**17

    def test_a_weak_slot_opens_with_a_warning_outside_tests(self, cli):
        """A slot made at a low cost (in a test) still opens outside tests, with one warning line."""
        cli("vault", "create", cli.vault_url, "--passphrase-env", "PW", env={"PW": "pw"})
        env = {k: v for k, v in os.environ.items() if k != "STRONGROOM_INSECURE_TEST_KDF"}
        proc = subprocess.run([STRONGROOM, "--vault", cli.vault_url, "items"], capture_output=True, text=True,
                              env={**env, "STRONGROOM_PASSPHRASE": "pw"})
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "weak scrypt cost (N=1024, below 131072)" in lines[0]
