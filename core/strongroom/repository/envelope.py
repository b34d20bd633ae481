"""The envelope: how every encrypted object and every blob is sealed, in formats 1 to 3.

An :class:`Envelope` holds the vault's data keys, each named by its 4-byte key id: it
*writes* with one of them (:attr:`Envelope.key_id`, the current data key) in one object
format (``format``: 1, 2 or 3, the vault's, see ``docs/formats.md``) and *reads* every
format under any of its keys.  Format 3 seals objects exactly as format 2 does; what it
adds is that a vault may have several data keys (``vault key rotate``), so packs and
index files record which key sealed their blobs (:mod:`.pack`, :mod:`.indexfile`).

Which key opens an object: the key id in its header; for a headerless blob, the key id
the caller gives (from the pack trailer or index entry; none given: the vault's first
data key, :attr:`Envelope.base_key_id`, the only one formats 1 and 2 have).  A key id
this envelope does not hold is asked of its ``resolve`` callback (the repository loads
``datakeys/<key id>``); with none, or when it has none either, the object is refused.

**Format 1** (every object and every blob): a 22-byte clear header followed by the
AES-256-GCM ciphertext of the (possibly zstd-compressed) plaintext and its 16-byte tag::

    offset size  field
    0      3     magic b"SRE"
    3      1     envelope version, 1
    4      1     kind (KIND_DATA, KIND_TREE, ...)
    5      1     compression: 0 none, 1 zstd
    6      4     key id of the master key whose data key sealed it
    10     12    nonce (random)
    22     n+16  AES-256-GCM(data key, nonce, body, associated data = header || name)

**Format 2** hides what format 1 shows in clear, and pads sizes into buckets.  The
plaintext is first framed and padded (the *inner* form)::

    compression u8 | body length u32 | body | zero bytes up to padded_size(kind, 5 + len(body))

Blobs (KIND_DATA, KIND_TREE) then carry no header at all::

    offset size  field
    0      12    nonce (random, never starting with b"SRE")
    12     m+16  AES-256-GCM(data key, nonce, inner,
                             associated data = b"SRB" || 2 || kind || key id || name)

so a pack shows neither where its blobs begin and end nor their kinds, compression or
exact sizes; the kind comes from the (encrypted) pack trailer and index.  Every other
object keeps the 22-byte header, with envelope version 2 and compression byte 0 (its
kind is the one its storage name implies anyway), around the padded inner form::

    header (b"SRE", 2, kind, 0, key id, nonce) | AES-256-GCM(inner, header || name)

Padding (:func:`padded_size`) is Padmé (Nikitin et al., "Reducing Metadata Leakage from
Encrypted Files and Communication with PURBs", PETS 2019) of the inner length, raised to
a floor per kind first (128 bytes for blobs, 512 for documents, 4 KiB for trailers and
index files, whose sizes would otherwise count their entries): a length L of E+1 bits is
rounded up to a multiple of 2**(E - S), S = bitlength(E), which leaves S + 1 bits of the
size visible (6 of the 21 bits format 1 shows of a 1 MiB chunk) at an
overhead below 2**-S < 1/log2(L): under 6.25 % from 256 bytes, under 3.125 % from
64 KiB (most blobs).  Padding never takes an object past the kind's limit.

A reader tells the forms apart by the first bytes: b"SRE" and version 1 or 2 is a
header; anything else, where a blob kind is expected, is a format-2 blob (a format-2
writer draws nonces until the first three bytes are not b"SRE").  Packs of both
formats can therefore sit side by side in one vault, and blobs move between packs
sealed as they are.

The associated data binds the ciphertext to its header (or, for a headerless blob, to
its kind and key id) and to the object's ``name`` (a blob's raw 32-byte id, an object's
storage name, ...), so a ciphertext moved to another name or given another kind fails
authentication.

Compression rule (``compress=True``): plaintext under 64 bytes is stored as is.  For
plaintext over 128 KiB, four 16 KiB slices spread evenly over it (64 KiB) are compressed
first as a sample; if the sample does not shrink below 97 % the plaintext is taken as
incompressible and stored as is.  Otherwise the whole plaintext is compressed (zstd,
``level``, content size written in the frame) and the compressed form is kept only if it
saves at least 3 %.

Limits: plaintext may be at most 256 MiB for KIND_INDEX and KIND_DOCUMENT and 64 MiB for
other kinds; ``seal`` refuses larger input and ``open`` refuses zstd frames that claim a
larger content size (or no content size), so damaged or hostile input cannot make a
reader allocate without bound.  :func:`max_sealed` is the largest sealed object of a
kind in either format.

``seal`` returns a ``bytearray``: the ciphertext is written straight into the one output
buffer with ``AESGCM.encrypt_into`` (a ``bytes`` result would need a second full copy,
which measured 8-10x slower than the encryption itself for 1-8 MiB blobs).
``seal_into`` writes into a buffer the caller reuses; :meth:`Envelope.prepare` and
:meth:`Envelope.seal_prepared_into` split sealing in two, so that a caller can learn the
exact sealed size (:meth:`Envelope.prepared_size`) before it picks where the object goes
(the backup's blob writer encrypts straight into its open pack).  Format 2 frames the
plaintext in a per-thread buffer.  ``open`` returns ``bytes``, or with a
:class:`Scratch` the caller reuses, a view into it (restore keeps one per thread).  An
Envelope is safe to share between threads; zstd contexts are kept per thread.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
from typing import Callable

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError
from ..bulkcopy import copy_into

__all__ = [
    "BLOB_KINDS",
    "COMPRESSION_NONE",
    "COMPRESSION_ZSTD",
    "Envelope",
    "FORMATS",
    "KIND_DATA",
    "KIND_DOCUMENT",
    "KIND_INDEX",
    "KIND_KEY_CHECK",
    "KIND_PACK_TRAILER",
    "KIND_TREE",
    "KINDS",
    "Scratch",
    "max_plaintext",
    "max_sealed",
    "padded_size",
    "padme",
]

KIND_DATA = 1
KIND_TREE = 2
KIND_PACK_TRAILER = 3
KIND_INDEX = 4
KIND_DOCUMENT = 5
KIND_KEY_CHECK = 6
KINDS = frozenset(
    {KIND_DATA, KIND_TREE, KIND_PACK_TRAILER, KIND_INDEX, KIND_DOCUMENT, KIND_KEY_CHECK}
)
#: Kinds stored inside packs: headerless in format 2.
BLOB_KINDS = frozenset({KIND_DATA, KIND_TREE})

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1

#: The object formats an Envelope writes (and reads): see the module docstring.
FORMATS = (1, 2, 3)
#: The envelope versions found in headers (format 3 writes version 2, as format 2 does).
_HEADER_VERSIONS = (1, 2)

MAGIC = b"SRE"
BLOB_MAGIC = b"SRB"  # only in the associated data of format-2 blobs
VERSION = 1
_HEADER = struct.Struct("<3sBBB4s12s")
_INNER = struct.Struct("<BI")  # compression, body length
TAG_SIZE = 16
NONCE_SIZE = 12
KEY_ID_SIZE = 4

_MIB = 1024 * 1024
_LARGE_KINDS = frozenset({KIND_INDEX, KIND_DOCUMENT})
#: Format 2 pads an object's inner form to at least this many bytes.
PAD_FLOOR = {
    KIND_DATA: 128,
    KIND_TREE: 128,
    KIND_PACK_TRAILER: 4096,
    KIND_INDEX: 4096,
    KIND_DOCUMENT: 512,
    KIND_KEY_CHECK: 64,
}
#: The most bytes format 2 adds around an inner form (header and tag); a blob has 28.
V2_OVERHEAD = _HEADER.size + TAG_SIZE
_BLOB_OVERHEAD = NONCE_SIZE + TAG_SIZE
#: Inner forms up to this size are framed in a per-thread buffer that is kept.
_KEPT_INNER = 16 * _MIB

MIN_COMPRESS_SIZE = 64
SAMPLE_FROM = 128 * 1024
SAMPLE_SLICE = 16 * 1024
SAMPLE_SLICES = 4
MAX_RATIO = 0.97
_MAX_WINDOW = 1 << 27


def max_plaintext(kind: int) -> int:
    """The largest plaintext, in bytes, that an object of ``kind`` may hold."""
    return 256 * _MIB if kind in _LARGE_KINDS else 64 * _MIB


def max_sealed(kind: int) -> int:
    """The largest sealed object of ``kind`` in any format (the limit plus the most a
    format adds: format 2's inner frame, header and tag)."""
    return max_plaintext(kind) + _INNER.size + V2_OVERHEAD


def padme(length: int) -> int:
    """Padmé: ``length`` rounded up so that only its top ``bitlength(E) + 1`` bits may
    be non-zero, E being ``floor(log2(length))``."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    mask = (1 << (exponent - exponent.bit_length())) - 1
    return (length + mask) & ~mask


@functools.lru_cache(maxsize=8192)  # three calls per blob sealed; small blobs repeat lengths
def padded_size(kind: int, length: int) -> int:
    """The padded size of an inner form of ``length`` bytes (format 2): Padmé of at
    least the kind's floor, never beyond the kind's limit."""
    size = padme(max(length, PAD_FLOOR[kind]))
    return min(size, max(length, max_plaintext(kind) + _INNER.size))


def _display(name: bytes | bytearray | memoryview) -> str:
    """``name`` as text if it is printable ASCII without spaces (0x21-0x7E), else in hex
    (blob ids: made for every blob opened, so tested with C-speed string methods)."""
    raw = bytes(name)
    if raw and raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and " " not in text:
            return text
    return raw.hex()


_local = threading.local()

#: Nonces are drawn from the operating system this many at a time, per thread: one
#: system call (each hands the GIL over) per 256 objects sealed instead of one each.
NONCES_PER_DRAW = 256


def _nonce() -> bytes:
    """A fresh random nonce: :data:`NONCE_SIZE` bytes of ``os.urandom``, drawn
    :data:`NONCES_PER_DRAW` at a time by each thread.  A forked child forgets the
    nonces its parent drew (:func:`_forget_nonces`): it never uses one of them too."""
    nonces = getattr(_local, "nonces", None)
    if not nonces:
        drawn = os.urandom(NONCE_SIZE * NONCES_PER_DRAW)
        nonces = _local.nonces = [drawn[i:i + NONCE_SIZE] for i in range(0, len(drawn), NONCE_SIZE)]
    return nonces.pop()


def _forget_nonces() -> None:
    _local.nonces = None


os.register_at_fork(after_in_child=_forget_nonces)


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor(max_window_size=_MAX_WINDOW)
    return dctx


def _inner_buffer(size: int) -> memoryview:
    """``size`` bytes to frame an inner form in: a buffer kept per thread when small."""
    if size > _KEPT_INNER:
        return memoryview(bytearray(size))
    buffer = getattr(_local, "inner", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.inner = bytearray(max(size, 1 << 20))
    return memoryview(buffer)[:size]


def _looks_compressible(view: memoryview, level: int) -> bool:
    n = view.nbytes
    if n < MIN_COMPRESS_SIZE:
        return False
    if n <= SAMPLE_FROM:
        return True
    step = n // SAMPLE_SLICES
    sample = b"".join(view[i * step : i * step + SAMPLE_SLICE] for i in range(SAMPLE_SLICES))
    return len(_compressor(level).compress(sample)) <= len(sample) * MAX_RATIO


class Envelope:
    """Seals objects with the current data key (AES-256-GCM) and its 4-byte key id in
    ``format`` (1, 2 or 3); opens every format under any data key it holds or resolves."""

    HEADER_SIZE = _HEADER.size
    TAG_SIZE = TAG_SIZE
    #: Format 1's overhead, also the size of the smallest sealed object of any format.
    OVERHEAD = _HEADER.size + TAG_SIZE

    def __init__(
        self, data_key: bytes, key_id: bytes, *, format: int = 1,
        resolve: Callable[[bytes], bytes] | None = None,
    ) -> None:
        if len(data_key) != 32:
            raise ValueError(f"data key must be 32 bytes, got {len(data_key)}")
        if len(key_id) != KEY_ID_SIZE:
            raise ValueError(f"key id must be {KEY_ID_SIZE} bytes, got {len(key_id)}")
        if format not in FORMATS:
            raise ValueError(f"unknown object format {format!r}")
        self._aead = AESGCM(bytes(data_key))
        self.key_id = bytes(key_id)
        #: the vault's first data key (the master key's): what formats 1 and 2 seal with
        self.base_key_id = self.key_id
        # the bytes of the data key it writes with, and of the first one: for writing_state
        self._writing_key = self._base_key = bytes(data_key)
        self._keys: dict[bytes, AESGCM] = {self.key_id: self._aead}
        self._raw: dict[bytes, bytes] = {self.key_id: self._writing_key}  # the bytes of each key held
        #: ``resolve(key_id)``: the data key of that id (raising IntegrityError naming what
        #: is missing), for ids this envelope does not hold yet
        self._resolve = resolve
        self.format = format

    def __repr__(self) -> str:
        return f"Envelope(key_id={self.key_id.hex()}, format={self.format})"

    def _copy(self) -> Envelope:
        other = object.__new__(Envelope)
        other.__dict__.update(self.__dict__)
        return other

    def writing(self, format: int) -> Envelope:
        """An envelope with the same keys that writes ``format``."""
        if format not in FORMATS:
            raise ValueError(f"unknown object format {format!r}")
        other = self._copy()
        other.format = format
        return other

    def with_key(self, data_key: bytes, key_id: bytes) -> Envelope:
        """An envelope with the same keys, writing with ``data_key`` (named ``key_id``)."""
        if len(data_key) != 32 or len(key_id) != KEY_ID_SIZE:
            raise ValueError("a data key of 32 bytes and a key id of 4 bytes are needed")
        other = self._copy()
        other._aead = AESGCM(bytes(data_key))
        other.key_id = bytes(key_id)
        other._writing_key = bytes(data_key)
        other._keys = {**self._keys, other.key_id: other._aead}
        other._raw = {**self._raw, other.key_id: other._writing_key}
        return other

    def with_resolver(self, resolve: Callable[[bytes], bytes] | None) -> Envelope:
        """An envelope with the same keys that asks ``resolve`` for the data keys it lacks."""
        other = self._copy()
        other._resolve = resolve
        return other

    def base(self) -> Envelope:
        """An envelope that writes with the vault's first data key (key documents, settings)."""
        other = self._copy()
        other.key_id = self.base_key_id
        other._aead = self._keys[self.base_key_id]
        other._writing_key = self._base_key
        return other

    def writing_state(self) -> tuple[bytes, bytes, int]:
        """The data key this envelope writes with, its key id and the format it writes:
        what :meth:`sealing_only` needs to seal exactly as this envelope does (in another
        process, given them through a pipe; they are secrets)."""
        return self._writing_key, self.key_id, self.format

    @classmethod
    def sealing_only(cls, state: tuple[bytes, bytes, int]) -> Envelope:
        """An envelope that seals as the one whose :meth:`writing_state` is ``state``
        (and opens only what is sealed with that one key)."""
        data_key, key_id, format = state
        return cls(data_key, key_id, format=format)

    def _aead_for(self, key_id: bytes, what: str) -> AESGCM:
        """The AEAD of data key ``key_id``: held, resolved, or IntegrityError."""
        aead = self._keys.get(key_id)
        if aead is not None:
            return aead
        if self._resolve is None:
            raise IntegrityError(what=what, reason=f"sealed with another key (key id {key_id.hex()})")
        raw = bytes(self._resolve(key_id))
        aead = AESGCM(raw)
        self._raw[key_id] = raw
        self._keys[key_id] = aead  # a dict item set: safe between threads
        return aead

    def sealed_key_id(self, sealed: bytes | memoryview, key_id: bytes = b"") -> bytes:
        """The id of the data key that opens ``sealed`` (as :meth:`open` would use it):
        its header's for an object with a header, else ``key_id`` (empty: the vault's
        first data key)."""
        view = memoryview(sealed)
        if view.nbytes >= _HEADER.size and view[:3] == MAGIC:
            return bytes(_HEADER.unpack_from(view)[4])
        return key_id or self.base_key_id

    def data_key(self, key_id: bytes = b"") -> bytes:
        """The bytes of data key ``key_id`` (empty: the vault's first), resolved if not
        held: what a worker process that opens blobs for this one is given (through a
        pipe; they are secrets).  IntegrityError if it cannot be had."""
        key_id = key_id or self.base_key_id
        self._aead_for(key_id, f"key id {key_id.hex()}")
        return self._raw[key_id]

    def held_key_ids(self) -> list[bytes]:
        """The ids of the data keys this envelope holds now (no key is resolved)."""
        return list(self._raw)

    def sealed_size_bound(self, kind: int, length: int) -> int:
        """The most bytes :meth:`seal` writes for ``length`` bytes of plaintext."""
        if self.format == 1:
            return length + self.OVERHEAD
        inner = padded_size(kind, _INNER.size + length)
        return inner + (_BLOB_OVERHEAD if kind in BLOB_KINDS else V2_OVERHEAD)

    def seal(
        self,
        kind: int,
        name: bytes,
        plaintext: bytes | bytearray | memoryview,
        *,
        compress: bool = True,
        level: int = 3,
    ) -> bytearray:
        """Compress (when it pays), encrypt and authenticate ``plaintext`` as ``kind``/``name``."""
        body, compression = self._body(kind, plaintext, compress, level)
        if self.format == 1:
            out = bytearray(_HEADER.size + len(body) + TAG_SIZE)
            self._encrypt_into(kind, name, body, compression, memoryview(out))
            return out
        out = bytearray(self.sealed_size_bound(kind, len(body)))
        size = self._encrypt_padded_into(kind, name, body, compression, memoryview(out))
        del out[size:]
        return out

    def seal_into(
        self,
        buffer: bytearray,
        kind: int,
        name: bytes,
        plaintext: bytes | bytearray | memoryview,
        *,
        compress: bool = True,
        level: int = 3,
    ) -> memoryview:
        """As :meth:`seal`, written at the start of ``buffer``; the view of the sealed
        object in it.  ``buffer`` must hold ``sealed_size_bound(kind, len(plaintext))``
        bytes."""
        body, compression = self._body(kind, plaintext, compress, level)
        size = self.sealed_size_bound(kind, len(body))
        if len(buffer) < size:
            raise ValueError(f"buffer of {len(buffer)} bytes is too small for {size}")
        if self.format == 1:
            out = memoryview(buffer)[:size]
            self._encrypt_into(kind, name, body, compression, out)
            return out
        size = self._encrypt_padded_into(kind, name, body, compression, memoryview(buffer))
        return memoryview(buffer)[:size]

    def prepare(
        self, kind: int, plaintext: bytes | bytearray | memoryview, *, compress: bool = True, level: int = 3
    ) -> tuple[bytes | memoryview, int]:
        """The first half of :meth:`seal`: the body (compressed when it pays, else a view
        of ``plaintext``) and its compression.  :meth:`prepared_size` is the exact size
        :meth:`seal_prepared_into` then writes."""
        return self._body(kind, plaintext, compress, level)

    def prepared_size(self, kind: int, body_length: int) -> int:
        """The size of the sealed object of a prepared body of ``body_length`` bytes."""
        return self.sealed_size_bound(kind, body_length)

    def seal_prepared_into(
        self, out: memoryview, kind: int, name: bytes, body: bytes | memoryview, compression: int
    ) -> int:
        """The second half of :meth:`seal`: encrypt a prepared body into the start of
        ``out`` (which holds at least :meth:`prepared_size` bytes); the bytes written."""
        size = self.sealed_size_bound(kind, len(body))
        if out.nbytes < size:
            raise ValueError(f"buffer of {out.nbytes} bytes is too small for {size}")
        if self.format == 1:
            self._encrypt_into(kind, name, body, compression, out[:size])
            return size
        return self._encrypt_padded_into(kind, name, body, compression, out)

    def _body(
        self, kind: int, plaintext: bytes | bytearray | memoryview, compress: bool, level: int
    ) -> tuple[bytes | memoryview, int]:
        if kind not in KINDS:
            raise ValueError(f"unknown object kind {kind!r}")
        view = memoryview(plaintext).cast("B")
        if view.nbytes > max_plaintext(kind):
            raise ValueError(
                f"plaintext of {view.nbytes} bytes exceeds the limit of {max_plaintext(kind)} "
                f"for kind {kind}"
            )
        if compress and _looks_compressible(view, level):
            packed = _compressor(level).compress(view)
            if len(packed) <= view.nbytes * MAX_RATIO:
                return packed, COMPRESSION_ZSTD
        return view, COMPRESSION_NONE

    def _encrypt_into(
        self, kind: int, name: bytes, body: bytes | memoryview, compression: int, out: memoryview
    ) -> None:
        nonce = _nonce()
        header = _HEADER.pack(MAGIC, VERSION, kind, compression, self.key_id, nonce)
        out[: _HEADER.size] = header
        self._aead.encrypt_into(nonce, body, header + bytes(name), out[_HEADER.size :])

    def _encrypt_padded_into(
        self, kind: int, name: bytes, body: bytes | memoryview, compression: int, out: memoryview
    ) -> int:
        """Format 2: frame and pad ``body``, encrypt it into ``out``; the sealed size."""
        length = len(body)
        inner = _inner_buffer(padded_size(kind, _INNER.size + length))
        _INNER.pack_into(inner, 0, compression, length)
        copy_into(inner, _INNER.size, body)  # a large body: without the GIL
        inner[_INNER.size + length :] = bytes(inner.nbytes - _INNER.size - length)
        if kind in BLOB_KINDS:
            nonce = _nonce()
            while nonce[:3] == MAGIC:  # a reader takes b"SRE" for a header
                nonce = _nonce()
            out[:NONCE_SIZE] = nonce
            aad = BLOB_MAGIC + bytes((2, kind)) + self.key_id + bytes(name)
            start = NONCE_SIZE
        else:
            nonce = _nonce()
            header = _HEADER.pack(MAGIC, 2, kind, COMPRESSION_NONE, self.key_id, nonce)
            out[: _HEADER.size] = header
            aad = header + bytes(name)
            start = _HEADER.size
        end = start + inner.nbytes + TAG_SIZE
        self._aead.encrypt_into(nonce, inner, aad, out[start:end])
        return end

    def open(
        self,
        sealed: bytes | bytearray | memoryview,
        name: bytes,
        *,
        kind: int | None = None,
        scratch: Scratch | None = None,
        key_id: bytes = b"",
    ) -> bytes | memoryview:
        """Authenticate, decrypt and decompress an object sealed under ``name``, in
        any format (a headerless blob only when ``kind`` is a blob kind, opened with
        data key ``key_id``; empty: the vault's first, :attr:`base_key_id`).

        Raises IntegrityError on any failure; with ``kind`` given, an object of another
        kind is refused too.  With ``scratch`` (a buffer one thread reuses), the body is
        decrypted into it, and a stored (uncompressed) plaintext is returned as a
        memoryview of it, valid until the scratch is used again.
        """
        view = memoryview(sealed).cast("B")
        what = _display(name)
        if view.nbytes < self.OVERHEAD:
            raise IntegrityError(what=what, reason=f"too short to be sealed ({view.nbytes} bytes)")
        if view[:3] != MAGIC:
            if kind in BLOB_KINDS:
                return self._open_blob(view, name, kind, what, scratch, key_id or self.base_key_id)  # type: ignore[arg-type]
            raise IntegrityError(what=what, reason="not a sealed object (bad magic)")
        magic, version, got_kind, compression, key_id, nonce = _HEADER.unpack_from(view)
        if version not in _HEADER_VERSIONS:
            raise IntegrityError(what=what, reason=f"unsupported envelope version {version}")
        if kind is not None and got_kind != kind:
            raise IntegrityError(
                what=what, reason=f"kind {got_kind} where kind {kind} was expected"
            )
        if got_kind not in KINDS:
            raise IntegrityError(what=what, reason=f"unknown kind {got_kind}")
        if compression not in ((COMPRESSION_NONE, COMPRESSION_ZSTD) if version == 1 else (COMPRESSION_NONE,)):
            raise IntegrityError(what=what, reason=f"unknown compression {compression}")
        aead = self._aead_for(bytes(key_id), what)
        aad = bytes(view[: _HEADER.size]) + bytes(name)
        body = self._decrypt(aead, nonce, view[_HEADER.size :], aad, what, scratch)
        if version == 2:
            return _unframe(body, what, got_kind, scratch is not None)
        if compression == COMPRESSION_NONE:
            return body
        return _decompress(body, what, max_plaintext(got_kind))

    def _open_blob(
        self, view: memoryview, name: bytes, kind: int, what: str, scratch: Scratch | None, key_id: bytes
    ) -> bytes | memoryview:
        aead = self._aead_for(key_id, what)
        aad = BLOB_MAGIC + bytes((2, kind)) + key_id + bytes(name)
        inner = self._decrypt(aead, bytes(view[:NONCE_SIZE]), view[NONCE_SIZE:], aad, what, scratch)
        return _unframe(inner, what, kind, scratch is not None)

    @staticmethod
    def _decrypt(
        aead: AESGCM, nonce: bytes, ciphertext: memoryview, aad: bytes, what: str, scratch: Scratch | None
    ) -> bytes | memoryview:
        try:
            if scratch is None:
                return aead.decrypt(nonce, ciphertext, aad)
            out = scratch.view(ciphertext.nbytes - TAG_SIZE)
            aead.decrypt_into(nonce, ciphertext, aad, out)
            return out
        except InvalidTag:
            raise IntegrityError(what=what, reason="authentication failed") from None


def _unframe(inner: bytes | memoryview, what: str, kind: int, keep_view: bool) -> bytes | memoryview:
    """The plaintext of an authenticated format-2 inner form (a view of it with
    ``keep_view``, else bytes)."""
    view = memoryview(inner)
    if view.nbytes < _INNER.size:
        raise IntegrityError(what=what, reason="sealed body too short for its frame")
    compression, length = _INNER.unpack_from(view)
    if length > view.nbytes - _INNER.size:
        raise IntegrityError(what=what, reason=f"body length {length} beyond the sealed body")
    body = view[_INNER.size : _INNER.size + length]
    if compression == COMPRESSION_ZSTD:
        return _decompress(body, what, max_plaintext(kind))
    if compression != COMPRESSION_NONE:
        raise IntegrityError(what=what, reason=f"unknown compression {compression}")
    if length > max_plaintext(kind):
        raise IntegrityError(what=what, reason=f"body of {length} bytes beyond the limit")
    return body if keep_view else bytes(body)


class Scratch:
    """A growing buffer for :meth:`Envelope.open`, reused by one thread at a time, so
    that opening many large objects does not allocate (and fault in) memory for each."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def view(self, size: int) -> memoryview:
        """``size`` bytes of the buffer (earlier views may still be held: a larger
        buffer replaces it rather than resizing it)."""
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        return memoryview(self._buffer)[:size]


def _decompress(body: bytes | memoryview, what: str, limit: int) -> bytes:
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError:
        raise IntegrityError(what=what, reason="bad zstd frame header") from None
    if size < 0:
        raise IntegrityError(what=what, reason="zstd frame without content size")
    if size > limit:
        raise IntegrityError(what=what, reason=f"zstd frame claims {size} bytes (limit {limit})")
    try:
        out = _decompressor().decompress(body, max_output_size=size, allow_extra_data=False)
    except (zstandard.ZstdError, MemoryError, ValueError) as exc:
        raise IntegrityError(what=what, reason=f"decompression failed ({exc})") from None
    if len(out) != size:
        raise IntegrityError(what=what, reason="decompressed size differs from the frame's")
    return out
