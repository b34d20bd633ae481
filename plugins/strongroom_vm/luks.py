"""LUKS1 and LUKS2 volumes unlocked read-only in memory, without device-mapper.

:func:`unlock` reads a LUKS header from a seekable reader, derives each active key slot's
key from the passphrase (PBKDF2, or Argon2id for LUKS2), decrypts the slot's key
material, merges its anti-forensic stripes and keeps the volume key whose digest
matches; :class:`DecryptedReader` then decrypts the data segment sector by sector as
it is read, so over a recovery point's reader only the chunks read are fetched.

Ciphers: ``aes-xts-plain64`` (cryptsetup's default), ``aes-cbc-essiv:sha256`` and
``aes-xts-plain``/``aes-cbc-plain64``; hashes sha1/sha256/sha512.  Everything is done
with the ``cryptography`` package strongroom already depends on: libyal's libluksde
(``libluksde-python``) reads LUKS1 only, and LUKS2 is cryptsetup's default.

Refusals (one line each; exit codes 124, 125, 95 and 36): no key given (:class:`LuksNeedsKey`), a
passphrase that opens no key slot (:class:`LuksWrongKey`), a layout or cipher not read
here (:class:`LuksUnsupported`: Argon2i slots, LUKS2 with several data segments, a
reencryption in progress or authenticated encryption), a key that cannot be had (:class:`LuksKeyUnavailable`).
The passphrase is never shown (its record redacts itself), never passed to child
processes (:func:`strongroom.keep_from_children`), and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from strongroom import SeekableReader, keep_from_children

from .errors import LuksKeyUnavailable, LuksNeedsKey, LuksUnsupported, LuksWrongKey

__all__ = ["DecryptedReader", "LuksSecret", "luks_version", "secret_from", "unlock"]

MAGIC = b"LUKS\xba\xbe"
SECTOR = 512
LUKS1_ACTIVE = 0x00AC71F3
PASSPHRASE_ENV = "STRONGROOM_LUKS_PASSPHRASE"
KEY_FILE_ENV = "STRONGROOM_LUKS_KEY_FILE"
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}


@attrs.frozen
class LuksSecret:
    """A passphrase (or a key file's bytes, which cryptsetup uses as one); ``source`` says
    where it came from, for messages."""

    value: bytes = attrs.field(repr=False)
    source: str


def secret_from(passphrase_env: str | None = None, key_file: str | None = None) -> LuksSecret | None:
    """The secret named by restore's options, else by ``STRONGROOM_LUKS_PASSPHRASE`` /
    ``STRONGROOM_LUKS_KEY_FILE``; None if nothing is given.  The passphrase variables are
    kept from the environment of every child process strongroom starts from now on."""
    keep_from_children(PASSPHRASE_ENV, passphrase_env)
    if key_file is None and passphrase_env is None:
        key_file = os.environ.get(KEY_FILE_ENV) or None
        if key_file is None and os.environ.get(PASSPHRASE_ENV) is not None:
            passphrase_env = PASSPHRASE_ENV
    if key_file is not None:
        try:
            with open(key_file, "rb") as fh:
                return LuksSecret(fh.read(), f"key file {key_file}")
        except OSError as exc:
            raise LuksKeyUnavailable(reason=f"key file {key_file}: {exc.strerror or exc}") from None
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise LuksKeyUnavailable(reason=f"environment variable {passphrase_env} is not set")
        return LuksSecret(os.fsencode(value), f"the passphrase in {passphrase_env}")
    return None


def luks_version(reader) -> int | None:
    """1 or 2 for a LUKS header at the reader's start, else None."""
    reader.seek(0)
    head = reader.read(8)
    if len(head) < 8 or head[:6] != MAGIC:
        return None
    return struct.unpack(">H", head[6:8])[0]


def _read(reader, offset: int, length: int) -> bytes:
    reader.seek(offset)
    data = reader.read(length)
    if len(data) != length:
        raise LuksUnsupported(where="a LUKS volume", reason="a volume shorter than its header")
    return data


class _Sectors:
    """Encrypt/decrypt 512-or-more-byte sectors with a dm-crypt cipher specification."""

    def __init__(self, spec: str, key: bytes, where: str) -> None:
        name, _, mode = spec.partition("-")
        if name != "aes" or mode not in ("xts-plain64", "xts-plain", "cbc-essiv:sha256", "cbc-plain64", "cbc-plain"):
            raise LuksUnsupported(where=where, reason=f"cipher {spec} (strongroom reads aes-xts-plain64 and "
                                  "aes-cbc-essiv:sha256)")
        self.mode, self.key, self._aes = mode, key, algorithms.AES(key)
        if mode == "cbc-essiv:sha256":
            self._essiv = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.ECB()).encryptor()

    def _iv(self, number: int) -> bytes:
        if self.mode.endswith("plain"):
            number &= 0xFFFFFFFF
        iv = number.to_bytes(16, "little")
        if self.mode == "cbc-essiv:sha256":
            return self._essiv.update(iv)
        return iv

    def decrypt(self, data: bytes, first: int, size: int) -> bytes:
        out = bytearray()
        for i in range(0, len(data), size):
            iv = self._iv(first + i // size)
            mode = modes.XTS(iv) if self.mode.startswith("xts") else modes.CBC(iv)
            d = Cipher(self._aes, mode).decryptor()
            out += d.update(data[i:i + size]) + d.finalize()
        return bytes(out)


def _diffuse(data: bytes, hash_name: str) -> bytes:
    h = hashlib.new(hash_name)
    size = h.digest_size
    out = bytearray()
    for i in range(0, len(data), size):
        block = data[i:i + size]
        out += hashlib.new(hash_name, struct.pack(">I", i // size) + block).digest()[: len(block)]
    return bytes(out)


def _af_merge(material: bytes, key_size: int, stripes: int, hash_name: str) -> bytes:
    d = bytes(key_size)
    for i in range(stripes - 1):
        block = material[i * key_size:(i + 1) * key_size]
        d = _diffuse(bytes(a ^ b for a, b in zip(d, block)), hash_name)
    last = material[(stripes - 1) * key_size: stripes * key_size]
    return bytes(a ^ b for a, b in zip(d, last))


def _pbkdf2(hash_name: str, secret: bytes, salt: bytes, iterations: int, length: int, where: str) -> bytes:
    if hash_name not in _HASHES:
        raise LuksUnsupported(where=where, reason=f"hash {hash_name}")
    return PBKDF2HMAC(_HASHES[hash_name](), length, salt, iterations).derive(secret)


@attrs.frozen
class Unlocked:
    """What :func:`unlock` found: the data segment and how to decrypt it."""

    version: int
    offset: int  # bytes from the volume's start
    size: int
    sector_size: int
    iv_tweak: int
    cipher: str
    key: bytes = attrs.field(repr=False)


def _luks1(reader, secret: LuksSecret, size: int, where: str) -> Unlocked:
    head = _read(reader, 0, 592)
    cipher = head[8:40].rstrip(b"\0").decode()
    mode = head[40:72].rstrip(b"\0").decode()
    hash_name = head[72:104].rstrip(b"\0").decode().lower()
    payload, key_bytes = struct.unpack(">II", head[104:112])
    digest, digest_salt = head[112:132], head[132:164]
    (digest_iter,) = struct.unpack(">I", head[164:168])
    spec = f"{cipher}-{mode}"
    for slot in range(8):
        active, iterations, = struct.unpack(">II", head[208 + slot * 48: 216 + slot * 48])
        if active != LUKS1_ACTIVE:
            continue
        salt = head[216 + slot * 48: 248 + slot * 48]
        km_offset, stripes = struct.unpack(">II", head[248 + slot * 48: 256 + slot * 48])
        derived = _pbkdf2(hash_name, secret.value, salt, iterations, key_bytes, where)
        material = _read(reader, km_offset * SECTOR, -(-key_bytes * stripes // SECTOR) * SECTOR)
        key = _af_merge(_Sectors(spec, derived, where).decrypt(material, 0, SECTOR), key_bytes, stripes, hash_name)
        if _pbkdf2(hash_name, key, digest_salt, digest_iter, 20, where) == digest:
            return Unlocked(1, payload * SECTOR, size - payload * SECTOR, SECTOR, 0, spec, key)
    raise LuksWrongKey(where=where, source=secret.source)


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _luks2(reader, secret: LuksSecret, size: int, where: str) -> Unlocked:
    (hdr_size,) = struct.unpack(">Q", _read(reader, 8, 8))
    if not 16384 <= hdr_size <= 4 << 20:
        raise LuksUnsupported(where=where, reason=f"a LUKS2 header of {hdr_size} bytes")
    try:
        meta = json.loads(_read(reader, 4096, hdr_size - 4096).rstrip(b"\0"))
    except ValueError:
        raise LuksUnsupported(where=where, reason="its LUKS2 metadata is not readable JSON") from None
    if meta.get("config", {}).get("requirements", {}).get("mandatory"):
        raise LuksUnsupported(where=where, reason="a reencryption is in progress (LUKS2 requirements "
                              f"{', '.join(meta['config']['requirements']['mandatory'])})")
    segments = meta.get("segments", {})
    if len(segments) != 1 or next(iter(segments.values())).get("type") != "crypt":
        raise LuksUnsupported(where=where, reason=f"{len(segments)} data segments (one encrypted segment is read)")
    segment_id, segment = next(iter(segments.items()))
    if segment.get("integrity"):
        raise LuksUnsupported(where=where, reason="authenticated encryption (LUKS2 with --integrity)")
    offset = int(segment["offset"])
    length = size - offset if segment["size"] == "dynamic" else int(segment["size"])
    for slot_id, slot in sorted(meta.get("keyslots", {}).items()):
        digests = [d for d in meta.get("digests", {}).values()
                   if slot_id in d.get("keyslots", []) and segment_id in d.get("segments", [])]
        if slot.get("type") != "luks2" or not digests:
            continue
        kdf, area, af = slot["kdf"], slot["area"], slot["af"]
        key_size = int(slot["key_size"])
        if kdf["type"] == "pbkdf2":
            derived = _pbkdf2(kdf["hash"], secret.value, _b64(kdf["salt"]), int(kdf["iterations"]),
                              int(area["key_size"]), where)
        elif kdf["type"] == "argon2id":
            derived = Argon2id(salt=_b64(kdf["salt"]), length=int(area["key_size"]), iterations=int(kdf["time"]),
                               lanes=int(kdf["cpus"]), memory_cost=int(kdf["memory"])).derive(secret.value)
        else:
            raise LuksUnsupported(where=where, reason=f"key slot {slot_id} uses {kdf['type']} (strongroom "
                                  "reads PBKDF2 and Argon2id slots)")
        stripes = int(af["stripes"])
        material = _read(reader, int(area["offset"]), -(-key_size * stripes // SECTOR) * SECTOR)
        plain = _Sectors(area["encryption"], derived, where).decrypt(material, 0, SECTOR)
        key = _af_merge(plain, key_size, stripes, af["hash"])
        for d in digests:
            if d["type"] == "pbkdf2" and _pbkdf2(d["hash"], key, _b64(d["salt"]), int(d["iterations"]),
                                                 len(_b64(d["digest"])), where) == _b64(d["digest"]):
                return Unlocked(2, offset, length, int(segment.get("sector_size", SECTOR)),
                                int(segment.get("iv_tweak", 0)), segment["encryption"], key)
    raise LuksWrongKey(where=where, source=secret.source)


def unlock(reader, size: int, secret: LuksSecret | None, where: str) -> "DecryptedReader":
    """The decrypted volume inside the LUKS volume read by ``reader`` (see the module doc)."""
    version = luks_version(reader)
    if secret is None:
        raise LuksNeedsKey(where=where, kind=f"LUKS{version}")
    if version == 1:
        found = _luks1(reader, secret, size, where)
    elif version == 2:
        found = _luks2(reader, secret, size, where)
    else:
        raise LuksUnsupported(where=where, reason=f"LUKS version {version}")
    return DecryptedReader(reader, found, where)


class DecryptedReader(SeekableReader):
    """The plaintext of an unlocked LUKS data segment, decrypted as it is read."""

    def __init__(self, reader, found: Unlocked, where: str) -> None:
        super().__init__()
        self._reader, self._found, self.size, self._pos = reader, found, found.size, 0
        self.version = found.version
        self._sectors = _Sectors(found.cipher, found.key, where)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if not n:
            return 0
        unit = self._found.sector_size
        first = self._pos // unit
        last = -(-(self._pos + n) // unit)
        self._reader.seek(self._found.offset + first * unit)
        raw = self._reader.read((last - first) * unit)
        # 512-byte sectors count the IV in 512-byte units; larger ones in their own (iv_large_sectors)
        plain = self._sectors.decrypt(raw, first + self._found.iv_tweak, unit)
        start = self._pos - first * unit
        data = plain[start:start + n]
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
