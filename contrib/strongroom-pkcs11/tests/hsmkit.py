"""SoftHSM2 for the tests: a token folder and configuration of the test's own, the CLI in a child process.

Every PKCS#11 call runs in a child process (the ``strongroom`` command, or :meth:`Hsm.python`):
SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the module is initialized, so a test process
that loaded it would keep the first test's tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "1234"
#: The token every test's SoftHSM2 starts with (the `hsm` fixture).
TOKEN = "backup-token"
STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


def softhsm_module() -> str | None:
    found = [m for m in MODULES if os.path.isfile(m)]
    return found[0] if found and shutil.which("softhsm2-util") else None


def require_softhsm() -> str:
    """The SoftHSM2 module; skipped without it, failed under CI (which must run these tests)."""
    module = softhsm_module()
    if module is None:
        reason = "SoftHSM2 is not installed (Debian: apt-get install softhsm2; scripts/apt/keys.txt lists it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PKCS#11 tests")
        pytest.skip(reason)
    return module


@attrs.frozen
class Result:
    code: int
    stdout: str
    stderr: str


@attrs.frozen
class Hsm:
    """A SoftHSM2 configuration with its own token folder (``conf`` is in ``SOFTHSM2_CONF``)."""

    module: str
    conf: Path
    tokens: Path

    def init_token(self, label: str, pin: str = PIN) -> None:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "12345678",
                        "--pin", pin], check=True, capture_output=True, env=self.env())

    def delete_token(self, label: str) -> None:
        subprocess.run(["softhsm2-util", "--delete-token", "--token", label], check=True, capture_output=True,
                       env=self.env())

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf)}
        for name, value in extra.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def options(self, token: str, key: str, pin_env: str = "HSM_PIN") -> list[str]:
        """``--key-option`` arguments for a pkcs11 slot."""
        out = []
        for value in (f"module={self.module}", f"token={token}", f"key={key}", f"pin-env={pin_env}"):
            out += ["--key-option", value]
        return out

    def cli(self, *args: str, expect: int | None = 0, **env: str | None) -> Result:
        """``strongroom ARGS`` in a child process; ``expect`` its exit code (None: any)."""
        proc = subprocess.run([STRONGROOM, *args], capture_output=True, text=True, env=self.env(**env), timeout=120)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert proc.returncode == expect, (args, result)
        return result

    def python(self, code: str, **env: str | None) -> str:
        """Run ``code`` with ``lib`` (the module, python-pkcs11) in a child process; its stdout."""
        head = f"import pkcs11\nfrom pkcs11 import Attribute, KeyType, ObjectClass\nlib = pkcs11.lib({self.module!r})\n"
        proc = subprocess.run([sys.executable, "-c", head + textwrap.dedent(code)], capture_output=True, text=True,
                              env=self.env(**env), timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def add_key(self, token: str, label: str) -> None:
        """One more AES key labelled ``label`` in the token (even if one is there)."""
        self.python(f"""
            with lib.get_token(token_label={token!r}).open(user_pin={PIN!r}, rw=True) as s:
                s.generate_key(KeyType.AES, 256, label={label!r}, store=True,
                               template={{Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}})
        """)

    def destroy_keys(self, token: str, label: str) -> int:
        """Remove every secret key labelled ``label``; how many there were."""
        return int(self.python(f"""
            with lib.get_token(token_label={token!r}).open(user_pin={PIN!r}, rw=True) as s:
                found = list(s.get_objects({{Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: {label!r}}}))
                for key in found:
                    key.destroy()
                print(len(found))
        """))

    def key_facts(self, token: str, label: str) -> dict:
        """What the token says of the key labelled ``label``: sensitive, extractable, a token object."""
        return json.loads(self.python(f"""
            import json
            with lib.get_token(token_label={token!r}).open(user_pin={PIN!r}) as s:
                key = s.get_key(label={label!r}, key_type=KeyType.AES)
                print(json.dumps({{"sensitive": key[Attribute.SENSITIVE], "extractable": key[Attribute.EXTRACTABLE],
                                  "token": key[Attribute.TOKEN], "bits": key[Attribute.VALUE_LEN] * 8}}))
        """))


def make_hsm(tmp_path: Path) -> Hsm:
    module = require_softhsm()
    folder = tmp_path / "softhsm"
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return Hsm(module, conf, tokens)


def one_line_error(result: Result, code: int, *needles: str) -> str:
    """The single stderr line of a failed command with exit ``code``, holding every needle."""
    assert result.code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
