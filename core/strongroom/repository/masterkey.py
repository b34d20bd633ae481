"""The master key set of a vault and the key slots that wrap it.

The master key never changes.  It is stored only inside key slots (``keys/<slot-id>``),
each wrapping it with a key-encryption key (KEK) that a key provider supplies: a random
key in the local key store (``local``), a passphrase (``passphrase``), or a plugin's.

A key slot is a clear JSON document::

    {"version": 1, "slot": "<slot-id>", "provider": "local", "label": "...",
     "created": "<iso time>", "params": {...provider's public parameters...},
     "nonce": "<base64>", "wrapped": "<base64 AES-256-GCM(kek, master key JSON)>"}

The wrapped ciphertext's associated data is ``b"strongroom-key-slot:" + vault_id + ":" +
slot_id``, so a slot cannot be moved to another vault or renamed.

Reading refuses malformed input with one error each, never another exception: a slot
that is not such a document (not JSON, another version, a field of the wrong type, a
slot id that is not its object's name, base64 that is not) raises KeySlotError; a
master key JSON that is malformed, found inside a slot that opened, raises
IntegrityError.
"""

from __future__ import annotations

import base64
import json
import os

import attrs
import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, KeySlotError
from ..secrets import Secret

SLOT_VERSION = 1


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
    """One wrapped copy of the master key."""

    slot_id: str
    provider: str
    label: str
    created: str
    params: dict = attrs.field(eq=False)
    nonce: bytes = attrs.field(repr=False)
    wrapped: bytes = attrs.field(repr=False)

    @property
    def object_name(self) -> str:
        return f"keys/{self.slot_id}"

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "version": SLOT_VERSION,
                "slot": self.slot_id,
                "provider": self.provider,
                "label": self.label,
                "created": self.created,
                "params": self.params,
                "nonce": base64.b64encode(self.nonce).decode(),
                "wrapped": base64.b64encode(self.wrapped).decode(),
            },
            indent=1,
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, name: str) -> "KeySlot":
        """The slot stored at ``name``; KeySlotError if it is malformed."""
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("version") != SLOT_VERSION:
                raise ValueError(f"unknown key slot version {doc.get('version')!r}")
            for key, kind in _SLOT_FIELDS.items():
                if not isinstance(doc.get(key, _SLOT_DEFAULTS.get(key)), kind):
                    raise ValueError(f"field {key!r} is missing or of the wrong type")
            if doc["slot"] != name.rpartition("/")[2]:
                raise ValueError(f"it names another slot ({doc['slot']!r})")
            return cls(
                slot_id=doc["slot"],
                provider=doc["provider"],
                label=doc.get("label", ""),
                created=doc.get("created", ""),
                params=dict(doc.get("params", {})),
                nonce=base64.b64decode(doc["nonce"], validate=True),
                wrapped=base64.b64decode(doc["wrapped"], validate=True),
            )
        except (ValueError, RecursionError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
            raise KeySlotError(message=f"key slot {name} is malformed: {exc}") from None


#: The JSON type of each field of a stored key slot.
_SLOT_FIELDS: dict[str, type] = {"slot": str, "provider": str, "label": str, "created": str,
                                 "params": dict, "nonce": str, "wrapped": str}
_SLOT_DEFAULTS: dict[str, object] = {"label": "", "created": "", "params": {}}


def _slot_ad(vault_id: str, slot_id: str) -> bytes:
    return f"strongroom-key-slot:{vault_id}:{slot_id}".encode()


def wrap_master_key(
    master: MasterKey, kek: Secret, *, vault_id: str, slot_id: str, provider: str,
    label: str, created: str, params: dict,
) -> KeySlot:
    nonce = os.urandom(12)
    wrapped = AESGCM(kek.value).encrypt(nonce, master.to_json(), _slot_ad(vault_id, slot_id))
    return KeySlot(slot_id, provider, label, created, params, nonce, wrapped)


def unwrap_master_key(slot: KeySlot, kek: Secret, *, vault_id: str) -> MasterKey | None:
    """The master key, or None when ``kek`` is not this slot's key."""
    try:
        raw = AESGCM(kek.value).decrypt(slot.nonce, slot.wrapped, _slot_ad(vault_id, slot.slot_id))
    except (InvalidTag, ValueError):
        return None
    return MasterKey.from_json(raw)
