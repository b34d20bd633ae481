"""Built-in key providers: ``local`` (vault-managed key) and ``passphrase``.

A key provider supplies the key-encryption key (KEK) of a key slot.  Providers are
registered by name through ``strongroom_register_key_providers``; this module is the
core's own (essential) plugin, loaded through the same entry-point group as any other.

``local``
    A random 256-bit key kept outside the vault storage, in the local key store:
    ``$STRONGROOM_HOME/keys/<vault-id>.key`` (``~/.config/strongroom`` by default),
    mode 0600.  Zero set-up; whoever has only the storage can decrypt nothing.  The vault
    id must be 32 lowercase hex digits (it comes from the clear ``strongroom.json``): any
    other is refused before a path is made, so no id reaches outside the key store.  The
    key is written to a fresh temporary file in the same folder, opened with
    ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600, synced, and renamed into place: nothing
    planted in the folder (a symbolic link, a file of another mode) is followed or
    reused.  A key file that group or others may read or write is still used (a refusal
    would stop every scheduled backup), but every use logs one warning line naming the
    file and the ``chmod`` that fixes it (on stderr when nothing configured logging), as
    ssh warns of an unprotected private key.
``passphrase``
    scrypt(passphrase, salt) with the cost stored in the slot (:mod:`.kdf`: the cost of
    new slots, its floor outside tests, and the bounds a stored cost is checked against
    before anything is derived; one outside them is a slot this provider cannot open:
    KeyNotAvailable, and the next slot is tried).  The passphrase comes from
    ``--passphrase-env VAR``, ``$STRONGROOM_PASSPHRASE`` or a prompt; a variable named as
    a passphrase source is never passed to a child process
    (:func:`strongroom.processes.keep_from_children`).

The provider API (``docs/plugins.md``, "Key providers"): ``create(ctx)`` returns the new
slot's key-encryption key and the slot's public ``params``; ``unlock(ctx, params)`` gives
the key again from those params; ``describe(params)`` says in a few words what the slot
is.  The key is a :class:`~strongroom.secrets.Secret` (32 bytes: the core does the
AES-256-GCM) or a :class:`WrappingKey`, a key that never leaves where it lives (an HSM):
the provider does the AES-256-GCM there.  A provider takes the ``--key-option K=V``
named in its ``options`` (none by default; :func:`check_options` refuses any other with
one line) from ``ctx.options`` when a slot is made, and must keep in ``params`` what it
needs to find its key again, never a secret.  ``ctx.previous`` holds the params of the
slot being re-wrapped (``vault key rewrap``), None otherwise: a provider that must not
reuse the old key says so; an optional ``activate(ctx, key, params)`` is called once the
re-wrapped slot is on storage, before the old one is removed (``local`` replaces its key
file there).
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Callable, ClassVar

import attrs
import blake3

from ..converters import to_dict
from ..errors import KeyNotAvailable, UsageError
from ..home import strongroom_home
from ..markers import hookimpl
from ..models import VAULT_ID
from ..processes import keep_from_children
from ..secrets import Secret
# The keys plugin also registers the built-in secret providers, env: and file: (see strongroom.secrets).
from ..secrets import strongroom_register_secret_providers  # noqa: F401
from .kdf import check_scrypt, derive_scrypt, new_scrypt_params

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "STRONGROOM_PASSPHRASE"


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
    #: A passphrase already known (the one just checked): given without asking.
    known: Secret | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        keep_from_children(self.env_var)

    def get(self, *, vault_id: str, confirm: bool = False) -> Secret:
        if self.known is not None:
            return self.known
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
    """What a key provider may use: the vault, the local key store, a passphrase source,
    the ``--key-option K=V`` given for a new slot (``options``) and, on a re-wrap, the
    params of the slot being re-wrapped (``previous``)."""

    vault_id: str
    home: Path = attrs.field(factory=strongroom_home)
    passphrase: PassphraseSource = attrs.field(factory=PassphraseSource)
    options: dict = attrs.field(factory=dict, converter=to_dict, hash=False)
    previous: dict | None = attrs.field(default=None, hash=False)


class WrappingKey:
    """A key-encryption key that stays where it lives (an HSM, a KMS): its provider's
    :meth:`create` or :meth:`unlock` returns one instead of a :class:`Secret`, and the
    master key is wrapped by AES-256-GCM done there.

    Subclasses implement both methods: ``nonce`` is 12 bytes, the ciphertext is the
    AES-GCM ciphertext followed by its 16-byte tag (the same bytes AES-256-GCM with the
    key would give, so a slot looks the same whoever wrapped it).
    """

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        """``data`` sealed with ``nonce`` and ``associated_data``; a KeyNotAvailable subclass if the key cannot be used."""
        raise NotImplementedError

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes | None:
        """The plaintext, or None when ``data`` was not sealed by this key with this associated data."""
        raise NotImplementedError


def check_options(name: str, provider: object, options: dict) -> None:
    """UsageError (one line) for an option ``provider`` does not take (those in its ``options``)."""
    takes = tuple(getattr(provider, "options", ()) or ())
    unknown = sorted(set(options) - set(takes))
    if unknown:
        offer = f"it takes: {', '.join(takes)}" if takes else "it takes no --key-option"
        raise UsageError(message=f"key provider '{name}' has no option '{unknown[0]}' ({offer})")


class LocalKeyProvider:
    """Vault-managed key in the local key store (the default)."""

    name: ClassVar[str] = "local"
    description: ClassVar[str] = "random key in the local key store ($STRONGROOM_HOME/keys)"

    @staticmethod
    def key_path(ctx: KeyContext) -> Path:
        """The key file of the vault; KeyNotAvailable for a vault id that is not 32 hex digits."""
        if not isinstance(ctx.vault_id, str) or not VAULT_ID.fullmatch(ctx.vault_id):
            raise KeyNotAvailable(vault_id=repr(ctx.vault_id)[:80],
                                  reason="that is not a vault id (32 lowercase hex digits): no local key file is used")
        return ctx.home / "keys" / f"{ctx.vault_id}.key"

    @staticmethod
    def _fingerprint(kek: bytes) -> str:
        return blake3.blake3(kek).hexdigest()[:16]

    def create(self, ctx: KeyContext) -> tuple[Secret, dict]:
        path = self.key_path(ctx)
        if ctx.previous is not None:  # a re-wrap: a new key, stored by activate() once the new slot is written
            kek = os.urandom(32)
            return Secret(kek), {"fingerprint": self._fingerprint(kek)}
        if path.exists():
            kek = self._read(path, ctx)
        else:
            kek = os.urandom(32)
            self.store(ctx, kek)
        return Secret(kek), {"fingerprint": self._fingerprint(kek)}

    def activate(self, ctx: KeyContext, kek: Secret, params: dict) -> None:
        """After a re-wrapped slot is written: its key replaces the key file (atomically)."""
        if ctx.previous is not None:
            self.store(ctx, kek.value)

    def store(self, ctx: KeyContext, kek: bytes) -> Path:
        path = self.key_path(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = _temp_path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
        except OSError as exc:  # something planted under that name: never followed, never reused
            raise KeyNotAvailable(vault_id=ctx.vault_id,
                                  reason=f"cannot create the local key's temporary file {tmp}: {exc.strerror or exc}"
                                  ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64encode(kek) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _sync_folder(path.parent)
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
                raw = fh.read(4096)
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

    def create(self, ctx: KeyContext) -> tuple[Secret, dict]:
        params = new_scrypt_params()  # a cost below the floor is refused before anyone is asked
        passphrase = ctx.passphrase.get(vault_id=ctx.vault_id, confirm=True)
        if not passphrase.value:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason="the passphrase is empty")
        return derive_scrypt(passphrase, params), params

    def unlock(self, ctx: KeyContext, params: dict) -> Secret:
        try:
            check_scrypt(params)  # before the passphrase is asked for and before scrypt runs
            passphrase = ctx.passphrase.get(vault_id=ctx.vault_id)
            return derive_scrypt(passphrase, params)
        except ValueError as exc:
            raise KeyNotAvailable(vault_id=ctx.vault_id, reason=f"the passphrase slot is damaged: {exc}") from None

    def describe(self, params: dict) -> str:
        return f"passphrase (scrypt N={params.get('n')})"


def _temp_path(path: Path) -> Path:
    """A new temporary name next to ``path`` (64 random bits: no one can plant it in advance)."""
    return path.parent / f".{path.name}.{os.urandom(8).hex()}.tmp"


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@hookimpl
def strongroom_register_key_providers(registry) -> None:
    registry.add("local", LocalKeyProvider())
    registry.add("passphrase", PassphraseKeyProvider())
