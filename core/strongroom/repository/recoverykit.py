"""Recovery kits: the vault's master key as text, in clear or under a passphrase.

A kit (``docs/formats.md``, "Recovery kit") is lines of text; lines starting with ``#``
are comments.  In clear::

    -----BEGIN STRONGROOM RECOVERY KIT-----
    vault: <vault id>
    <base64 of the master key JSON, in lines of 64>
    -----END STRONGROOM RECOVERY KIT-----

Protected by a passphrase, a ``kdf:`` line follows the vault line and the base64 is of
a 12-byte nonce and ``AES-256-GCM(scrypt(passphrase, salt, N, r, p), master key JSON)``,
whose associated data is ``"strongroom-recovery-kit/2\\n"`` followed by the vault and kdf
lines, each with its newline: the kit opens only for its vault and cost.

What it promises: :func:`read_recovery_kit` reads both kinds, and refuses with one error
each, never another exception: text that is no kit or a vault id that is not 32 hex
digits (KeySlotError), a ``kdf:`` line out of the bounds of :mod:`.kdf` (KeySlotError,
before scrypt runs), a wrong passphrase (WrongKitPassphrase).  :func:`write_kit` creates
a new file of mode 0600 (``O_CREAT|O_EXCL|O_NOFOLLOW``): it never writes over a file or
through a symbolic link (KitNotWritten).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, KeySlotError, KitNotWritten, WrongKitPassphrase
from ..models import VAULT_ID
from ..secrets import Secret
from .kdf import check_scrypt, derive_scrypt, new_scrypt_params, warn_if_weak
from .masterkey import MasterKey

KIT_BEGIN = "-----BEGIN STRONGROOM RECOVERY KIT-----"
KIT_END = "-----END STRONGROOM RECOVERY KIT-----"
#: A kit is at most this long (characters): a longer text is no kit.
MAX_KIT_CHARS = 64 * 1024

_AD = "strongroom-recovery-kit/2\n"
_KDF_LINE = re.compile(r"kdf: scrypt n=(\d{1,8}) r=(\d{1,3}) p=(\d{1,3}) salt=([A-Za-z0-9+/=]{1,256})")


def recovery_kit(vault_id: str, master: MasterKey, passphrase: Secret | None = None) -> str:
    """The kit of ``master`` (protected by ``passphrase`` if given), comments not included."""
    head = [f"vault: {vault_id}"]
    if passphrase is None:
        payload = master.to_json()
    else:
        params = new_scrypt_params()
        head.append(f"kdf: scrypt n={params['n']} r={params['r']} p={params['p']} salt={params['salt']}")
        nonce = os.urandom(12)
        payload = nonce + AESGCM(derive_scrypt(passphrase, params).value).encrypt(nonce, master.to_json(), _ad(head))
    text = base64.b64encode(payload).decode()
    return "\n".join([KIT_BEGIN, *head, *(text[i:i + 64] for i in range(0, len(text), 64)), KIT_END, ""])


def is_protected(text: str) -> bool:
    """Whether the kit ``text`` is protected by a passphrase."""
    return any(line.strip().startswith("kdf:") for line in text[:MAX_KIT_CHARS].splitlines())


def read_recovery_kit(text: str, passphrase: Callable[[str], Secret] | None = None) -> tuple[str, MasterKey]:
    """(vault id, master key) of a kit; ``passphrase(vault_id)`` is asked only for a protected one."""
    try:
        if len(text) > MAX_KIT_CHARS:
            raise ValueError("it is too long")
        lines = [line.strip() for line in text.strip().splitlines() if not line.strip().startswith("#")]
        if len(lines) < 3 or not lines[0].startswith("-----BEGIN") or not lines[-1].startswith("-----END"):
            raise ValueError("missing BEGIN/END lines")
        if not lines[1].startswith("vault:"):
            raise ValueError("no vault line")
        vault_id = lines[1].split(":", 1)[1].strip()
        if not VAULT_ID.fullmatch(vault_id):
            raise ValueError("its vault id is not 32 lowercase hex digits")
        head, body = lines[1:2], lines[2:-1]
        params = None
        if body and body[0].startswith("kdf:"):
            head.append(body.pop(0))
            params = _kdf_params(head[1])
        payload = base64.b64decode("".join(body), validate=True)
        if params is not None and len(payload) < 12 + 16:
            raise ValueError("its encrypted key is too short")
    except ValueError as exc:  # binascii.Error is a ValueError
        raise KeySlotError(message=f"not a recovery kit: {exc}") from None
    if params is not None:
        if passphrase is None:
            raise KeySlotError(message=f"the recovery kit of vault {vault_id} is protected by a passphrase")
        secret = passphrase(vault_id)
        try:
            key = derive_scrypt(secret, params)
        except ValueError as exc:
            raise KeySlotError(message=f"not a recovery kit: {exc}") from None
        try:
            payload = AESGCM(key.value).decrypt(payload[:12], payload[12:], _ad(head))
        except (InvalidTag, ValueError):
            raise WrongKitPassphrase(vault_id=vault_id) from None
        warn_if_weak(params, f"the recovery kit of vault {vault_id}")
    try:
        return vault_id, MasterKey.from_json(payload)
    except IntegrityError as exc:
        raise KeySlotError(message=f"not a recovery kit: {exc}") from None


def write_kit(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a new file ``path``, mode 0600; KitNotWritten if it exists or cannot be made."""
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise KitNotWritten(reason=f"{target} exists (a kit is never written over a file; choose a new name)") from None
    except OSError as exc:
        raise KitNotWritten(reason=f"cannot create {target} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise KitNotWritten(reason=f"cannot write {target} ({exc.strerror or exc})") from None
    return target


def _ad(head: list[str]) -> bytes:
    return (_AD + "".join(line + "\n" for line in head)).encode()


def _kdf_params(line: str) -> dict:
    match = _KDF_LINE.fullmatch(line)
    if match is None:
        raise ValueError("its kdf line is malformed")
    n, r, p, salt = match.groups()
    params = {"kdf": "scrypt", "n": int(n), "r": int(r), "p": int(p), "salt": salt}
    check_scrypt(params)  # bounds, before anything is derived
    return params
