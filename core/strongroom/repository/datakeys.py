"""Data keys after a rotation: ``datakeys/<key id>``, each sealed under the vault's first data key.

A vault starts with the data key of its master key (:class:`~.masterkey.MasterKey`);
``strongroom vault key rotate`` (format 3) adds a new data key for everything written
from then on.  Nothing is re-encrypted: every object says which data key sealed it (its
header's key id; a blob's key id is recorded in its pack's trailer and index entry), and
the id key, which names blobs, never changes, so deduplication goes on across rotations.

Each data key is one object, written once and never changed::

    datakeys/<key id: 8 hex digits>   KIND_DOCUMENT sealed with the vault's FIRST data key,
                                      under its own name:
    {"key_id": "<8 hex digits>", "data_key": "<base64 of 32 bytes>", "created": "<iso time>"}

What it promises:

- **Key slots are never rewritten.**  A data key is sealed with the master key's data key,
  which every slot already wraps, so a slot this client cannot open (another person's
  passphrase, a token elsewhere) still opens the vault and every key in it.
- **A data key is bound to its name and to the vault's id key**: the object's name is
  authenticated (a key object copied under another name fails to open), and its key id
  must equal ``BLAKE3(data key, key = id key)[:4]``, the derivation the master key's own
  id uses.  Storage write access without the master key cannot forge one.
- **Which key is current is the settings' word** (``data_keys`` in the authenticated
  settings, the newest last): an object under ``datakeys/`` that the settings do not
  name is never written with (:func:`check` reports it).  The settings are sealed with
  the first data key, so deleting a data key cannot make a client fall back to older
  settings that name an older current key: opening fails, naming the missing object.
- **A missing or replaced data key is never silent**: :func:`load` raises an
  IntegrityError naming ``datakeys/<key id>``; reading an object sealed under it says
  which object is missing; ``vault verify`` lists it (:func:`check`).

Writes: only :func:`write`, one object under ``datakeys/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import TYPE_CHECKING, Any

import attrs
import blake3

from ..errors import IntegrityError, ObjectNotFound
from ..secrets import Secret
from .envelope import KIND_DOCUMENT

if TYPE_CHECKING:
    from .envelope import Envelope
    from .masterkey import MasterKey

#: A :class:`~.repository.Repository` (its ``store``, ``envelope``, ``master``,
#: ``read_whole`` and ``list_names``); not imported: the repository imports this module.
Repository = Any

__all__ = ["DATAKEY_PREFIX", "DataKey", "check", "datakey_name", "derive_key_id", "generate", "load", "write"]

DATAKEY_PREFIX = "datakeys/"
#: The vault format that has data keys beyond the master key's.
DATAKEY_FORMAT = 3
KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


def datakey_name(key_id: bytes | str) -> str:
    """``datakeys/<key id as 8 hex digits>``."""
    text = key_id.hex() if isinstance(key_id, bytes) else key_id
    if not KEY_ID_HEX.fullmatch(text):
        raise ValueError(f"not a data key id: {text!r}")
    return f"{DATAKEY_PREFIX}{text}"


def derive_key_id(data_key: bytes, id_key: bytes) -> bytes:
    """The 4-byte id of ``data_key`` in a vault whose id key is ``id_key``."""
    return blake3.blake3(data_key, key=id_key).digest()[:4]


@attrs.frozen
class DataKey:
    """One data key: its id (4 bytes), the key, and when it was made."""

    key_id: bytes
    data_key: Secret = attrs.field(repr=False)
    created: str = ""

    @property
    def name(self) -> str:
        return datakey_name(self.key_id)

    def to_json(self) -> bytes:
        return json.dumps({"key_id": self.key_id.hex(), "created": self.created,
                           "data_key": base64.b64encode(self.data_key.value).decode()}).encode()


def generate(master: MasterKey, taken: set[bytes], created: str) -> DataKey:
    """A new random data key whose id is none of ``taken`` (nor the master key's)."""
    while True:
        raw = os.urandom(32)
        key_id = derive_key_id(raw, master.id_key.value)
        if key_id not in taken and key_id != master.key_id:
            return DataKey(key_id, Secret(raw), created)


def write(repo: Repository, key: DataKey) -> None:
    """Store ``key`` as ``datakeys/<id>``, sealed with the vault's first data key."""
    base = repo.envelope.base()
    repo.store.put(key.name, base.seal(KIND_DOCUMENT, key.name.encode(), key.to_json(), compress=False))


def load(repo: Repository, key_id: bytes) -> DataKey:
    """The data key ``key_id`` from ``datakeys/<id>``: IntegrityError naming the object
    when it is missing, fails to open (replaced, damaged) or is not that key."""
    name = datakey_name(key_id)
    try:
        sealed = repo.read_whole(name, "document")
    except ObjectNotFound:
        raise IntegrityError(what=name, reason=f"data key {name} is missing from storage: what it sealed cannot be"
                                              " read (put the object back from a copy of the vault)") from None
    base = repo.envelope.base()
    try:
        raw = base.open(sealed, name.encode(), kind=KIND_DOCUMENT)
    except IntegrityError as exc:
        raise IntegrityError(what=name, reason=f"data key {name} does not open ({exc.fields.get('reason', exc)}):"
                                              " it was replaced or damaged") from None
    try:
        doc = json.loads(raw)
        data_key = base64.b64decode(doc["data_key"], validate=True)
        created = doc.get("created", "")
        if doc["key_id"] != key_id.hex() or len(data_key) != 32 or not isinstance(created, str):
            raise ValueError("it names another key")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise IntegrityError(what=name, reason=f"data key {name} is malformed ({exc})") from None
    if derive_key_id(data_key, repo.master.id_key.value) != key_id:
        raise IntegrityError(what=name, reason=f"data key {name} does not match its id")
    return DataKey(key_id, Secret(data_key), created)


def listed(repo: Repository) -> list[str]:
    """The key ids (hex) of the objects under ``datakeys/``, sorted."""
    return sorted(name[len(DATAKEY_PREFIX):] for name in repo.list_names(DATAKEY_PREFIX))


def check(repo: Repository, named: tuple[str, ...]) -> list[str]:
    """Problems with the data keys, for ``vault verify``: every key the settings name
    (``named``) must load; an object the settings do not name is reported too."""
    problems = []
    for key_hex in named:
        try:
            load(repo, bytes.fromhex(key_hex))
        except (IntegrityError, ValueError) as exc:
            problems.append(f"data keys: {exc}")
    for key_hex in listed(repo):
        if key_hex not in named:
            problems.append(f"data keys: {datakey_name(key_hex)} is not named by the vault's settings:"
                            " never written with (an interrupted rotation, or planted)")
    return problems


def resolver(repo: Repository):
    """The ``resolve`` callback of the repository's envelope: a data key by id.  A key that
    cannot be loaded is asked for once: every object sealed under it gets the same error."""
    failed: dict[bytes, dict] = {}

    def resolve(key_id: bytes) -> bytes:
        if key_id in failed:
            raise IntegrityError(**failed[key_id])
        try:
            return load(repo, key_id).data_key.value
        except IntegrityError as exc:
            failed[key_id] = dict(exc.fields)
            raise
    return resolve


def envelope_with_current(envelope: Envelope, key: DataKey) -> Envelope:
    """``envelope`` writing with ``key`` from now on."""
    return envelope.with_key(key.data_key.value, key.key_id)
