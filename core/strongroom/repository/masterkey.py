"""The master key set of a vault and the key slots that wrap it.

The master key never changes.  It is stored only inside key slots (``keys/<slot-id>``),
each wrapping it with a key-encryption key (KEK) that a key provider supplies: a random
key in the local key store (``local``), a passphrase (``passphrase``), or a plugin's.

A key slot is a clear JSON document (``docs/formats.md``, "Key slots")::

    {"version": 2, "vault": "<vault-id>", "slot": "<slot-id>", "provider": "local",
     "label": "...", "created": "<iso time>", "params": {...provider's public parameters...},
     "nonce": "<base64>", "wrapped": "<base64 AES-256-GCM(kek, master key JSON)>"}

What it promises:

- **A slot is bound to its name, its vault and everything it says.**  In version 2 the
  wrapped ciphertext's associated data is ``b"strongroom-key-slot/2\\n"`` and the
  canonical JSON of the slot's header (version, vault, slot, provider, label, created,
  params: :func:`slot_associated_data`), so changing any of them - the KDF cost, the
  salt, the fingerprint, the label, the provider - makes the slot fail to open.  The
  slot id is its object's name: a slot is read only from ``keys/<its id>``; an object
  under ``keys/`` with another name, or naming another slot or vault, is *foreign*
  (:class:`~strongroom.errors.ForeignKeySlot`) and is never tried.
- **Version 1 slots still open.**  They bound only the vault id and slot id
  (``"strongroom-key-slot:" + vault_id + ":" + slot_id``); :attr:`KeySlot.is_old` says so
  and ``strongroom vault key upgrade`` rewrites them in version 2.
- **Reading is bounded and refuses malformed input with one error each**, never another
  exception: a slot object larger than :data:`MAX_SLOT_BYTES`, not JSON, of another
  version, with a field of the wrong type or too long, an id that is not a slot id,
  base64 that is not, a nonce that is not 12 bytes: KeySlotError.  A master key JSON that
  is malformed, found inside a slot that opened, raises IntegrityError.
"""

from __future__ import annotations

import base64
import json
import os
import re

import attrs
import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ForeignKeySlot, IntegrityError, KeySlotError
from ..models import VAULT_ID
from ..secrets import Secret
from .keyproviders import WrappingKey

#: The version of new key slots; :data:`OLD_SLOT_VERSIONS` are still read.
SLOT_VERSION = 2
OLD_SLOT_VERSIONS = (1,)
SLOT_PREFIX = "keys/"
#: A slot object is read only up to this size: a larger one is damaged.
MAX_SLOT_BYTES = 64 * 1024
#: The most a slot's label may hold (characters) and its params (bytes of canonical JSON).
MAX_LABEL = 1000
MAX_PARAMS_BYTES = 4096
#: A version 2 slot id: 8 random bytes as lowercase hex.  Version 1 ids were made the same
#: way, but any safe name is read.
SLOT_ID = re.compile(r"[0-9a-f]{16}")
_OLD_SLOT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_AD_V2 = b"strongroom-key-slot/2\n"


@attrs.frozen
class MasterKey:
    """The vault's keys: ``data_key`` for AES-256-GCM, ``id_key`` for keyed blob ids."""

    data_key: Secret
    id_key: Secret

    @classmethod
    def generate(cls) -> "MasterKey":
        return cls(Secret(os.urandom(32)), Secret(os.urandom(32)))

    @property
    def key_id(self) -> bytes:
        """Four bytes naming this master key in every envelope header."""
        return blake3.blake3(self.data_key.value, key=self.id_key.value).digest()[:4]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "data_key": base64.b64encode(self.data_key.value).decode(),
                "id_key": base64.b64encode(self.id_key.value).decode(),
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "MasterKey":
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("data_key", "id_key")):
                raise ValueError("not an object of two base64 keys")
            data_key = base64.b64decode(doc["data_key"], validate=True)
            id_key = base64.b64decode(doc["id_key"], validate=True)
        except (ValueError, RecursionError) as exc:
            raise IntegrityError(what="master key", reason=f"malformed ({exc})") from None
        if len(data_key) != 32 or len(id_key) != 32:
            raise IntegrityError(what="master key", reason="wrong key length")
        return cls(Secret(data_key), Secret(id_key))


@attrs.frozen
class KeySlot:
    """One wrapped copy of the master key (``vault_id`` is ``""`` in a version 1 slot)."""

    slot_id: str
    provider: str
    label: str
    created: str
    params: dict = attrs.field(eq=False)
    nonce: bytes = attrs.field(repr=False)
    wrapped: bytes = attrs.field(repr=False)
    version: int = SLOT_VERSION
    vault_id: str = ""

    @property
    def object_name(self) -> str:
        return f"{SLOT_PREFIX}{self.slot_id}"

    @property
    def is_old(self) -> bool:
        """A slot of an older format (its header is not authenticated)."""
        return self.version != SLOT_VERSION

    def header(self) -> dict:
        """What the slot says about itself, as stored (without the nonce and ciphertext)."""
        head: dict = {"version": self.version}
        if self.version >= 2:
            head["vault"] = self.vault_id
        head.update(slot=self.slot_id, provider=self.provider, label=self.label, created=self.created,
                    params=self.params)
        return head

    def to_bytes(self) -> bytes:
        return json.dumps(
            {**self.header(), "nonce": base64.b64encode(self.nonce).decode(),
             "wrapped": base64.b64encode(self.wrapped).decode()},
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, name: str) -> "KeySlot":
        """The slot stored at ``name``: KeySlotError if it is malformed, ForeignKeySlot if it
        is not stored under its own name (``keys/<slot id>``)."""
        try:
            if len(raw) > MAX_SLOT_BYTES:
                raise ValueError(f"it is larger than {MAX_SLOT_BYTES} bytes")
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            version = doc.get("version")
            if version != SLOT_VERSION and version not in OLD_SLOT_VERSIONS:
                raise ValueError(f"unknown key slot version {version!r}")
            fields = _SLOT_FIELDS if version == SLOT_VERSION else _OLD_SLOT_FIELDS
            for key, kind in fields.items():
                if not isinstance(doc.get(key, _SLOT_DEFAULTS.get(key)), kind):
                    raise ValueError(f"field {key!r} is missing or of the wrong type")
            slot_id = doc["slot"]
            if not (SLOT_ID if version == SLOT_VERSION else _OLD_SLOT_ID).fullmatch(slot_id):
                raise ValueError("field 'slot' is not a slot id")
            label, params = doc.get("label", ""), doc.get("params", {})
            if len(label) > MAX_LABEL or len(_canonical(params)) > MAX_PARAMS_BYTES:
                raise ValueError("its label or params are too long")
            if version == SLOT_VERSION and not VAULT_ID.fullmatch(doc["vault"]):
                raise ValueError("field 'vault' is not a vault id")
            nonce = base64.b64decode(doc["nonce"], validate=True)
            wrapped = base64.b64decode(doc["wrapped"], validate=True)
            if len(nonce) != 12 or not 16 < len(wrapped) <= 1024:
                raise ValueError("its nonce or ciphertext has the wrong length")
        except (ValueError, TypeError, RecursionError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
            raise KeySlotError(message=f"key slot {name} is malformed: {exc}") from None
        if name != f"{SLOT_PREFIX}{slot_id}":
            raise ForeignKeySlot(message=f"{name} is not a key slot of this vault: it holds slot {slot_id}"
                                      " (a copy under another name never opens the vault)")
        return cls(slot_id=slot_id, provider=doc["provider"], label=label, created=doc.get("created", ""),
                   params=dict(params), nonce=nonce, wrapped=wrapped, version=version,
                   vault_id=doc.get("vault", ""))


#: The JSON type of each field of a stored key slot, by version.
_OLD_SLOT_FIELDS: dict[str, type] = {"slot": str, "provider": str, "label": str, "created": str,
                                     "params": dict, "nonce": str, "wrapped": str}
_SLOT_FIELDS: dict[str, type] = {"vault": str, **_OLD_SLOT_FIELDS}
_SLOT_DEFAULTS: dict[str, object] = {"label": "", "created": "", "params": {}}


def slot_name_id(name: str) -> str | None:
    """The slot id that object ``name`` may hold (``keys/<id>``), None for a name that is no slot's."""
    if not name.startswith(SLOT_PREFIX):
        return None
    rest = name[len(SLOT_PREFIX):]
    return rest if _OLD_SLOT_ID.fullmatch(rest) else None


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _slot_ad(vault_id: str, slot_id: str) -> bytes:
    """The associated data of a version 1 slot."""
    return f"strongroom-key-slot:{vault_id}:{slot_id}".encode()


def slot_associated_data(slot: KeySlot | dict, vault_id: str) -> bytes:
    """The associated data of ``slot`` (a slot, or its stored JSON object) in vault ``vault_id``.

    Version 2: ``b"strongroom-key-slot/2\\n"`` + the canonical JSON (keys sorted, no
    spaces, ASCII) of ``{"version", "vault", "slot", "provider", "label", "created",
    "params"}``, with ``vault`` the vault being opened; version 1: the vault id and slot id.
    """
    head = slot.header() if isinstance(slot, KeySlot) else {
        k: slot.get(k, _SLOT_DEFAULTS.get(k)) for k in ("version", "slot", "provider", "label", "created", "params")}
    if head.get("version") in OLD_SLOT_VERSIONS:
        return _slot_ad(vault_id, str(head["slot"]))
    return _AD_V2 + _canonical({**head, "vault": vault_id})


def wrap_master_key(
    master: MasterKey, kek: Secret | WrappingKey, *, vault_id: str, slot_id: str, provider: str,
    label: str, created: str, params: dict,
) -> KeySlot:
    """A new (version 2) slot wrapping ``master`` with ``kek`` (AES-256-GCM, done by the
    :class:`~.keyproviders.WrappingKey` itself when the key stays in an HSM)."""
    if not VAULT_ID.fullmatch(vault_id) or not SLOT_ID.fullmatch(slot_id):
        raise ValueError(f"not a vault id and slot id: {vault_id!r}, {slot_id!r}")
    slot = KeySlot(slot_id, provider, label[:MAX_LABEL], created, params, b"", b"", SLOT_VERSION, vault_id)
    nonce = os.urandom(12)
    ad = slot_associated_data(slot, vault_id)
    if isinstance(kek, WrappingKey):
        wrapped = kek.encrypt(nonce, master.to_json(), ad)
    else:
        wrapped = AESGCM(kek.value).encrypt(nonce, master.to_json(), ad)
    return attrs.evolve(slot, nonce=nonce, wrapped=wrapped)


def unwrap_master_key(slot: KeySlot, kek: Secret | WrappingKey, *, vault_id: str) -> MasterKey | None:
    """The master key, or None when ``kek`` is not this slot's key (or the slot was changed,
    or belongs to another vault)."""
    if slot.version == SLOT_VERSION and slot.vault_id != vault_id:
        return None
    ad = slot_associated_data(slot, vault_id)
    if isinstance(kek, WrappingKey):
        raw = kek.decrypt(slot.nonce, slot.wrapped, ad)
        return None if raw is None else MasterKey.from_json(raw)
    try:
        raw = AESGCM(kek.value).decrypt(slot.nonce, slot.wrapped, ad)
    except (InvalidTag, ValueError):
        return None
    return MasterKey.from_json(raw)
