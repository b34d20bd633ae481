"""Built-in key providers: ``local`` (vault-managed key) and ``passphrase``.

A key provider supplies the key-encryption key (KEK) of a key slot.  Providers are
registered by name through ``strongroom_register_key_providers``; this module is the
core's own (essential) plugin, loaded through the same entry-point group as any other.

``local``
    A random 256-bit key kept outside the vault storage, in the local key store:
    ``$STRONGROOM_HOME/keys/<vault-id>.key`` (``~/.config/strongroom`` by default),
    mode 0600.  Zero set-up; whoever has only the storage can decrypt nothing.  A key
    file that group or others may read or write is still used (a refusal would stop
    every scheduled backup), but every use logs one warning line naming the file and
    the ``chmod`` that fixes it (on stderr when nothing configured logging), as ssh
    warns of an unprotected private key.
``passphrase``
    scrypt(passphrase, salt) with the cost stored in the slot.  The passphrase comes
    from ``--passphrase-env VAR``, ``$STRONGROOM_PASSPHRASE`` or a prompt.  A slot's
    cost is checked before use (N a power of two from 2**10 to 2**20, r from 1 to 32,
    at most 2 GiB of memory, p from 1 to 16, a base64 salt): a damaged slot must not make scrypt allocate
    without bound; one outside that is a slot this key provider cannot open
    (KeyNotAvailable: the next slot is tried).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Callable, ClassVar

import attrs
import blake3

from ..errors import KeyNotAvailable, UsageError
from ..home import strongroom_home
from ..markers import hookimpl
from ..secrets import Secret

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "STRONGROOM_PASSPHRASE"
# Production scrypt cost (N=2**17, r=8, p=1: ~128 MiB, ~0.3 s).  Tests lower it through
# STRONGROOM_SCRYPT_N; the cost used is stored in each slot, so opening always works.
DEFAULT_SCRYPT_N = 2**17
MIN_SCRYPT_N = 2**10
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_MEMORY = 2**31
SCRYPT_R, SCRYPT_P = 8, 1


def scrypt_cost() -> int:
    """The scrypt N for new passphrase slots: a power of two, at least 1024."""
    text = os.environ.get("STRONGROOM_SCRYPT_N")
    if text is None:
        return DEFAULT_SCRYPT_N
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < MIN_SCRYPT_N or n > MAX_SCRYPT_N or n & (n - 1):
        raise UsageError(
            message=f"STRONGROOM_SCRYPT_N must be a power of two from {MIN_SCRYPT_N} to {MAX_SCRYPT_N}, not {text!r}"
        )
    return n


@attrs.frozen
class PassphraseSource:
    """Where a passphrase comes from: an environment variable, else a prompt.

    ``use_default_env`` (on by default) also accepts ``$STRONGROOM_PASSPHRASE``; a new
    key slot turns it off, so the passphrase that opened the vault is never taken
    silently for the new slot.
    """

    env_var: str | None = None
    prompt: Callable[[str, bool], str] | None = None
    use_default_env: bool = True

    def get(self, *, vault_id: str, confirm: bool = False) -> Secret:
        names = (self.env_var, PASSPHRASE_ENV) if self.use_default_env else (self.env_var,)
        for name in names:
            if name and os.environ.get(name) is not None:
                return Secret(os.environ[name].encode())
        if self.env_var:
            raise KeyNotAvailable(
                vault_id=vault_id, reason=f"environment variable {self.env_var} is not set"
            )
        if self.prompt is not None and sys.stdin.isatty():
            return Secret(self.prompt(f"Passphrase for vault {vault_id}", confirm).encode())
        hint = f"set {PASSPHRASE_ENV} or pass --passphrase-env VAR" if self.use_default_env else (
            "pass --new-passphrase-env VAR or run it on a terminal to be asked"
        )
        raise KeyNotAvailable(vault_id=vault_id, reason=f"a passphrase is needed: {hint}")


@attrs.frozen
class KeyContext:
    """What a key provider may use: the vault, the local key store, a passphrase source."""

    vault_id: str
    home: Path = attrs.field(factory=strongroom_home)
    passphrase: PassphraseSource = attrs.field(factory=PassphraseSource)


class LocalKeyProvider:
    """Vault-managed key in the local key store (the default)."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "random key in the local key store ($STRONGROOM_HOME/keys)"

    @staticmethod
    def key_path(ctx: KeyContext) -> Path:
        return ctx.home / "keys" / f"{ctx.vault_id}.key"

    @staticmethod
    def _fingerprint(kek: bytes) -> str:
        return blake3.blake3(kek).hexdigest()[:16]

    def create(self, ctx: KeyContext) -> tuple[Secret, dict]:
        path = self.key_path(ctx)
        if path.exists():
            kek = self._read(path, ctx)
        else:
            kek = os.urandom(32)
            self.store(ctx, kek)
        return Secret(kek), {"fingerprint": self._fingerprint(kek)}

    def store(self, ctx: KeyContext, kek: bytes) -> Path:
        path = self.key_path(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(kek) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @staticmethod
    def _warn_if_unprotected(path: Path, fd: int) -> None:
        """One warning line if group or others may read or write the key file."""
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if not mode & 0o066:
            return
        who = " and ".join(w for w, bits in (("group", 0o060), ("others", 0o006)) if mode & bits)
        how = " and ".join(w for w, bits in (("read", 0o044), ("written", 0o022)) if mode & bits)
        risk = "; with it and the vault storage anyone can decrypt the vault" if mode & 0o044 else ""
        log.warning("warning: UNPROTECTED KEY FILE: %s (mode %04o) can be %s by %s%s; fix it: chmod 600 %s",
                    path, mode, how, who, risk, path)

    def _read(self, path: Path, ctx: KeyContext) -> bytes:
        try:
            with open(path, "rb") as fh:
                self._warn_if_unprotected(path, fh.fileno())
                raw = fh.read()
            kek = base64.b64decode(raw.strip(), validate=True)
        except FileNotFoundError:
            raise KeyNotAvailable(
                vault_id=ctx.vault_id, reason=f"local key {path} not found"
            ) from None
        except (OSError, ValueError) as exc:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason=f"local key {path}: {exc}") from None
        if len(kek) != 32:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason=f"local key {path} is malformed")
        return kek

    def unlock(self, ctx: KeyContext, params: dict) -> Secret:
        path = self.key_path(ctx)
        kek = self._read(path, ctx)
        if params.get("fingerprint") not in (None, self._fingerprint(kek)):
            raise KeyNotAvailable(
                vault_id=ctx.vault_id, reason=f"local key {path} is not the key of this slot"
            )
        return Secret(kek)

    def describe(self, params: dict) -> str:
        return f"local key store, fingerprint {params.get('fingerprint', '?')}"


class PassphraseKeyProvider:
    """A key derived from a passphrase with scrypt."""

    name: ClassVar[str] = "passphrase"
    description: ClassVar[str] = "key derived from a passphrase (scrypt)"

    @staticmethod
    def _cost(params: dict) -> tuple[int, int, int, bytes]:
        """(N, r, p, salt) of a slot; ValueError if they are not a cost this opens."""
        n, r, p, salt = (params.get(k) for k in ("n", "r", "p", "salt"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
            raise ValueError("its scrypt cost is not three whole numbers")
        if not (MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
                and 128 * n * r <= MAX_SCRYPT_MEMORY):
            raise ValueError(f"its scrypt cost N={n}, r={r}, p={p} is out of bounds")
        if not isinstance(salt, str):
            raise ValueError("its salt is not base64 text")
        return n, r, p, base64.b64decode(salt, validate=True)  # binascii.Error is a ValueError

    @classmethod
    def _derive(cls, passphrase: Secret, params: dict) -> Secret:
        n, r, p, salt = cls._cost(params)
        key = hashlib.scrypt(
            passphrase.value, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32
        )
        return Secret(key)

    def create(self, ctx: KeyContext) -> tuple[Secret, dict]:
        passphrase = ctx.passphrase.get(vault_id=ctx.vault_id, confirm=True)
        if not passphrase.value:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason="the passphrase is empty")
        params = {
            "kdf": "scrypt",
            "n": scrypt_cost(),
            "r": SCRYPT_R,
            "p": SCRYPT_P,
            "salt": base64.b64encode(os.urandom(16)).decode(),
        }
        return self._derive(passphrase, params), params

    def unlock(self, ctx: KeyContext, params: dict) -> Secret:
        try:
            self._cost(params)
        except ValueError as exc:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason=f"the passphrase slot is damaged: {exc}") from None
        return self._derive(ctx.passphrase.get(vault_id=ctx.vault_id), params)

    def describe(self, params: dict) -> str:
        return f"passphrase (scrypt N={params.get('n')})"


@hookimpl
def strongroom_register_key_providers(registry) -> None:
    registry.add("local", LocalKeyProvider())
    registry.add("passphrase", PassphraseKeyProvider())
