"""Reaching a key in a PKCS#11 token: the module, the token by label, a session with the
user PIN, and a secret key by label.

What it promises: every failure is one of :mod:`.errors` (one line, its own exit code),
never a PKCS#11 exception or a traceback - a module path that does not exist or is no
PKCS#11 module, no token of that label, the PIN source unset or unreadable, a wrong or
locked PIN, no key or two keys of that label.  A session is always closed (the user is
logged out with the last one).  The PIN is read from the environment variable or file the
slot names each time, held as a :class:`strongroom.Secret` and never stored; the PIN
variable is kept from the programs strongroom starts (``strongroom.keep_from_children``).  Nothing is
written to the token but :func:`find_key` with ``create=True`` generating a missing key:
AES-256, sensitive, not extractable, a token object, usable only to encrypt, decrypt,
wrap and unwrap.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import attrs

from strongroom import Secret, UsageError, keep_from_children

from .errors import AmbiguousTokenKey, Pkcs11ModuleError, PinNotGiven, TokenError, TokenKeyNotFound, TokenNotFound, WrongPin

if TYPE_CHECKING:
    import pkcs11

# python-pkcs11 (and asn1crypto under it) is imported by the functions that reach a token,
# not here: registering the plugin at every command's start-up does not load it.

#: The ``--key-option`` names the provider takes; they are also the keys of its slot params.
OPTIONS = ("module", "token", "key", "pin-env", "pin-file")
#: The longest PIN file read.
MAX_PIN_FILE = 4096


@attrs.frozen
class TokenRef:
    """Where a slot's key is: the PKCS#11 module, the token's label, the key's label, and
    where its PIN comes from (an environment variable or a file)."""

    module: str
    token: str
    key: str
    pin_env: str | None = None
    pin_file: str | None = None

    @classmethod
    def from_options(cls, options: dict) -> "TokenRef":
        """From ``--key-option`` values (or a slot's params); UsageError for a missing or bad one."""
        for name in ("module", "token", "key"):
            if not str(options.get(name) or "").strip():
                raise UsageError(message=f"key provider 'pkcs11' needs --key-option {name}="
                                         + {"module": "PATH", "token": "LABEL", "key": "LABEL"}[name])
        pin_env, pin_file = options.get("pin-env") or None, options.get("pin-file") or None
        if pin_env and pin_file:
            raise UsageError(message="key provider 'pkcs11': give pin-env=VAR or pin-file=PATH, not both")
        if not (pin_env or pin_file):
            raise UsageError(message="key provider 'pkcs11' needs --key-option pin-env=VAR (or pin-file=PATH):"
                                     " where the token's user PIN is read from")
        return cls(str(options["module"]), str(options["token"]), str(options["key"]), pin_env, pin_file)

    def params(self) -> dict:
        """The slot's public params: the options, never the PIN."""
        found = {"module": self.module, "token": self.token, "key": self.key}
        found.update({"pin-env": self.pin_env} if self.pin_env else {"pin-file": self.pin_file})
        return found

    def where(self) -> str:
        return f"PKCS#11 token '{self.token}'"


def read_pin(ref: TokenRef, vault_id: str) -> Secret:
    """The user PIN from the slot's variable or file; PinNotGiven if it is unset or unreadable."""
    if ref.pin_env:
        keep_from_children(ref.pin_env)  # never handed on to a program strongroom starts
        value = os.environ.get(ref.pin_env)
        if not value:
            raise PinNotGiven(vault_id=vault_id, reason=f"{ref.where()}: the PIN variable {ref.pin_env} is not set")
        return Secret(value.encode())
    try:
        with open(ref.pin_file or "", "rb") as fh:
            raw = fh.read(MAX_PIN_FILE + 1)
    except OSError as exc:
        raise PinNotGiven(vault_id=vault_id,
                          reason=f"{ref.where()}: cannot read the PIN file {ref.pin_file}: {exc.strerror or exc}"
                          ) from None
    pin = raw[:MAX_PIN_FILE].rstrip(b"\r\n")
    if not pin:
        raise PinNotGiven(vault_id=vault_id, reason=f"{ref.where()}: the PIN file {ref.pin_file} is empty")
    return Secret(pin)


@functools.lru_cache(maxsize=None)
def _load(path: str) -> pkcs11.lib:
    import pkcs11

    return pkcs11.lib(path)


def load_module(path: str, vault_id: str) -> pkcs11.lib:
    """The PKCS#11 module at ``path`` (loaded once per process); Pkcs11ModuleError if it is none."""
    from pkcs11 import exceptions as px

    if not Path(path).is_file():
        raise Pkcs11ModuleError(vault_id=vault_id, reason=f"PKCS#11 module {path} does not exist")
    try:
        return _load(path)
    except (px.PKCS11Error, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Pkcs11ModuleError(vault_id=vault_id,
                                reason=f"{path} is not a PKCS#11 module that loads here ({detail})") from None


@contextlib.contextmanager
def session(ref: TokenRef, pin: Secret, vault_id: str, *, rw: bool = False) -> Iterator[pkcs11.Session]:
    """A logged-in session on the token; closed (and logged out) afterwards."""
    from pkcs11 import exceptions as px

    lib = load_module(ref.module, vault_id)
    try:
        token = lib.get_token(token_label=ref.token)
    except px.NoSuchToken:
        raise TokenNotFound(vault_id=vault_id, reason=f"no {ref.where()} in module {ref.module}"
                                                      " (deleted, not plugged in, or another configuration)") from None
    except px.MultipleTokensReturned:
        raise TokenError(vault_id=vault_id, reason=f"two tokens are labelled '{ref.token}' in module {ref.module}"
                         ) from None
    except px.PKCS11Error as exc:
        raise TokenError(vault_id=vault_id, reason=f"{ref.where()}: {_name(exc)}") from None
    try:
        opened = token.open(user_pin=pin.value.decode(errors="replace"), rw=rw)
    except (px.PinIncorrect, px.PinInvalid, px.PinLenRange) as exc:
        raise WrongPin(vault_id=vault_id, reason=f"{ref.where()} refused the PIN ({_name(exc)})") from None
    except px.PinLocked:
        raise WrongPin(vault_id=vault_id, reason=f"{ref.where()}: the user PIN is locked") from None
    except px.PKCS11Error as exc:
        raise TokenError(vault_id=vault_id, reason=f"{ref.where()}: cannot log in ({_name(exc)})") from None
    with opened as s:
        yield s


def find_key(s: pkcs11.Session, ref: TokenRef, vault_id: str, *, create: bool = False) -> pkcs11.SecretKey:
    """The one secret key labelled ``ref.key`` (generated when missing and ``create``)."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11 import exceptions as px

    try:
        found = list(s.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: ref.key}))
    except px.PKCS11Error as exc:
        raise TokenError(vault_id=vault_id, reason=f"{ref.where()}: cannot list keys ({_name(exc)})") from None
    if len(found) > 1:
        raise AmbiguousTokenKey(vault_id=vault_id, reason=f"{len(found)} keys in {ref.where()} are labelled"
                                                          f" '{ref.key}': give each key its own label")
    if found:
        return found[0]
    if not create:
        raise TokenKeyNotFound(vault_id=vault_id, reason=f"{ref.where()} has no key labelled '{ref.key}'")
    try:
        return s.generate_key(KeyType.AES, 256, label=ref.key, store=True, template={
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True,
            Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.WRAP: True, Attribute.UNWRAP: True})
    except px.PKCS11Error as exc:
        raise TokenError(vault_id=vault_id, reason=f"{ref.where()}: cannot generate key '{ref.key}' ({_name(exc)})"
                         ) from None


def _name(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
