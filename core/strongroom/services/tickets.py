"""Guard keys and tickets: multi-user authorization for a vault's critical operations.

A *guard* is an Ed25519 key pair.  Its private key stays with a security admin, away from
the backup admins; a vault is linked to its public key (:mod:`strongroom.policy.security`).
A critical operation (:data:`~strongroom.policy.security.OPERATIONS`) on a linked vault
needs a **ticket**: a document signed by the guard's private key, made offline by
``strongroom guard sign``::

    strongroom-ticket-1.<base64url payload>.<base64url signature>

The payload is JSON: ``vault_id``, ``operation``, ``params`` (string to string), ``issued``
and ``not_after`` (ISO 8601 UTC) and a random ``nonce``.  The signature covers
:data:`DOMAIN` followed by the payload bytes exactly as carried.  :func:`verify_ticket`
accepts a ticket only if the signature is the linked guard's, and the vault, the operation
and every parameter are the ones asked for, and (``now`` given) it has not expired; that it
is used once is the journal's to check (a ticket's nonce is recorded when it is used).

Key files: the private key is PKCS#8 PEM, written with mode 0600; the public key file is
one line, ``strongroom-guard-ed25519 <base64 of the 32 raw bytes>``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import secrets
from pathlib import Path

import attrs

from ..errors import TicketInvalid, UsageError
from ..models import iso, parse_iso

__all__ = [
    "DOMAIN", "PUBLIC_PREFIX", "TICKET_PREFIX", "Ticket", "load_private_key", "load_public_key",
    "new_guard_key", "public_key_text", "sign_ticket", "verify_ticket",
]

DOMAIN = b"strongroom guard ticket v1\n"
TICKET_PREFIX = "strongroom-ticket-1"
PUBLIC_PREFIX = "strongroom-guard-ed25519"
#: A ticket file larger than this is not one (a real one has some hundred bytes).
TICKET_MAX = 64 * 1024
#: The longest a ticket may be valid: a guard's tickets are for one operation, now.
LONGEST_VALIDITY = dt.timedelta(days=30)


@attrs.frozen
class Ticket:
    """A ticket's payload, once its signature is checked."""

    vault_id: str
    operation: str
    params: dict[str, str]
    issued: str
    not_after: str
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_guard_key(out: Path) -> str:
    """Write a new private key to ``out`` (0600, refusing to overwrite) and its public
    key to ``out`` + ``.pub``; the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = public_key_text(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    pub_path = Path(f"{out}.pub")
    for path in (out, pub_path):
        if path.exists() or path.is_symlink():
            raise UsageError(message=f"{path} exists; not overwritten")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UsageError(message=f"cannot write {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(public + "\n")
    return public


def public_key_text(raw: bytes) -> str:
    return f"{PUBLIC_PREFIX} {base64.b64encode(raw).decode()}"


def load_public_key(path: Path) -> str:
    """The base64 raw public key in the file at ``path`` (UsageError if it is not one)."""
    try:
        text = Path(path).read_text(errors="replace")[:4096].strip()
    except OSError as exc:
        raise UsageError(message=f"cannot read {path}: {exc.strerror}") from None
    prefix, _, value = text.partition(" ")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if prefix != PUBLIC_PREFIX or len(raw) != 32:
        raise UsageError(message=f"{path} is not a guard public key (made by strongroom guard keygen)")
    return base64.b64encode(raw).decode()


def load_private_key(path: Path):
    """The Ed25519 private key in the PEM file at ``path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = Path(path).read_bytes()[:65536]
    except OSError as exc:
        raise UsageError(message=f"cannot read {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(message=f"{path} is not a guard private key (made by strongroom guard keygen)")
    return key


def sign_ticket(private_key, vault_id: str, operation: str, params: dict[str, str],
                valid: dt.timedelta, now: dt.datetime) -> str:
    """A ticket for ``operation`` with ``params`` on vault ``vault_id``, valid for ``valid``."""
    if not dt.timedelta(seconds=1) <= valid <= LONGEST_VALIDITY:
        raise UsageError(message=f"a ticket is valid for 1 second to {LONGEST_VALIDITY.days} days")
    payload = json.dumps({
        "vault_id": vault_id, "operation": operation, "params": {str(k): str(v) for k, v in sorted(params.items())},
        "issued": iso(now), "not_after": iso(now + valid), "nonce": secrets.token_hex(16),
    }, sort_keys=True, separators=(",", ":")).encode()
    signature = private_key.sign(DOMAIN + payload)
    return f"{TICKET_PREFIX}.{_b64(payload)}.{_b64(signature)}"


def verify_ticket(text: str, public_key: bytes, *, vault_id: str, operation: str, params: dict[str, str],
                  now: dt.datetime | None) -> Ticket:
    """The ticket in ``text`` if it authorizes ``operation`` with ``params`` on ``vault_id``
    (see the module docstring); TicketInvalid naming the first reason it does not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def refuse(reason: str) -> TicketInvalid:
        return TicketInvalid(operation=operation, reason=reason)

    text = text.strip()
    parts = text.split(".")
    if len(text) > TICKET_MAX or len(parts) != 3 or parts[0] != TICKET_PREFIX:
        raise refuse("it is not a strongroom guard ticket")
    try:
        payload, signature = _unb64(parts[1]), _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise refuse("it is not a strongroom guard ticket") from None
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, DOMAIN + payload)
    except (InvalidSignature, ValueError):
        raise refuse("it is not signed by this vault's guard") from None
    try:
        doc = json.loads(payload)
        ticket = Ticket(vault_id=str(doc["vault_id"]), operation=str(doc["operation"]),
                        params={str(k): str(v) for k, v in dict(doc["params"]).items()},
                        issued=str(doc["issued"]), not_after=str(doc["not_after"]), nonce=str(doc["nonce"]))
        not_after = parse_iso(ticket.not_after)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise refuse("its content is malformed") from None
    if ticket.vault_id != vault_id:
        raise refuse(f"it was signed for vault {ticket.vault_id}, not this one ({vault_id})")
    if ticket.operation != operation:
        raise refuse(f"it was signed for {ticket.operation}")
    wanted = {str(k): str(v) for k, v in params.items()}
    if ticket.params != wanted:
        shown = " ".join(f"{k}={v}" for k, v in sorted(wanted.items())) or "no parameters"
        raise refuse(f"it was signed for other parameters (this operation has {shown})")
    if now is not None and now > not_after:
        raise refuse(f"it expired at {ticket.not_after[:19]}")
    return ticket
