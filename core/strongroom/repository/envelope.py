"""The envelope: how every encrypted object and every blob is sealed.

A sealed object is a 22-byte clear header followed by the AES-256-GCM ciphertext of the
(possibly zstd-compressed) plaintext and its 16-byte tag::

    offset size  field
    0      3     magic b"SRE"
    3      1     format version, 1
    4      1     kind (KIND_DATA, KIND_TREE, ...)
    5      1     compression: 0 none, 1 zstd
    6      4     key id of the master key whose data key sealed it
    10     12    nonce (random)
    22     n+16  AES-256-GCM(data key, nonce, body, associated data = header || name)

The associated data binds the ciphertext to its header and to the object's ``name`` (a
blob's raw 32-byte id, an object's storage name, ...), so a ciphertext moved to another
name or given another kind fails authentication.

Compression rule (``compress=True``): plaintext under 64 bytes is stored as is.  For
plaintext over 128 KiB, four 16 KiB slices spread evenly over it (64 KiB) are compressed
first as a sample; if the sample does not shrink below 97 % the plaintext is taken as
incompressible and stored as is.  Otherwise the whole plaintext is compressed (zstd,
``level``, content size written in the frame) and the compressed form is kept only if it
saves at least 3 %.

Limits: plaintext may be at most 256 MiB for KIND_INDEX and KIND_DOCUMENT and 64 MiB for
other kinds; ``seal`` refuses larger input and ``open`` refuses zstd frames that claim a
larger content size (or no content size), so damaged or hostile input cannot make a
reader allocate without bound.

``seal`` returns a ``bytearray``: the ciphertext is written straight into the one output
buffer with ``AESGCM.encrypt_into`` (a ``bytes`` result would need a second full copy,
which measured 8-10x slower than the encryption itself for 1-8 MiB blobs).
``seal_into`` writes into a buffer the caller reuses (the backup's reader threads keep
one each, so sealing allocates nothing per blob).  ``open`` returns ``bytes``, or with a
:class:`Scratch` the caller reuses, a view into it (restore keeps one per thread).  An
Envelope is safe to share between threads; zstd contexts are kept per thread.
"""

from __future__ import annotations

import os
import struct
import threading

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError

__all__ = [
    "COMPRESSION_NONE",
    "COMPRESSION_ZSTD",
    "Envelope",
    "KIND_DATA",
    "KIND_DOCUMENT",
    "KIND_INDEX",
    "KIND_KEY_CHECK",
    "KIND_PACK_TRAILER",
    "KIND_TREE",
    "KINDS",
    "Scratch",
    "max_plaintext",
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

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1

MAGIC = b"SRE"
VERSION = 1
_HEADER = struct.Struct("<3sBBB4s12s")
TAG_SIZE = 16
NONCE_SIZE = 12
KEY_ID_SIZE = 4

_MIB = 1024 * 1024
_LARGE_KINDS = frozenset({KIND_INDEX, KIND_DOCUMENT})

MIN_COMPRESS_SIZE = 64
SAMPLE_FROM = 128 * 1024
SAMPLE_SLICE = 16 * 1024
SAMPLE_SLICES = 4
MAX_RATIO = 0.97
_MAX_WINDOW = 1 << 27


def max_plaintext(kind: int) -> int:
    """The largest plaintext, in bytes, that an object of ``kind`` may hold."""
    return 256 * _MIB if kind in _LARGE_KINDS else 64 * _MIB


def _display(name: bytes | bytearray | memoryview) -> str:
    raw = bytes(name)
    if raw and all(0x21 <= b <= 0x7E for b in raw):
        return raw.decode("ascii")
    return raw.hex()


_local = threading.local()


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
    """Seals and opens objects with one data key (AES-256-GCM) and its 4-byte key id."""

    HEADER_SIZE = _HEADER.size
    TAG_SIZE = TAG_SIZE
    OVERHEAD = _HEADER.size + TAG_SIZE

    def __init__(self, data_key: bytes, key_id: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError(f"data key must be 32 bytes, got {len(data_key)}")
        if len(key_id) != KEY_ID_SIZE:
            raise ValueError(f"key id must be {KEY_ID_SIZE} bytes, got {len(key_id)}")
        self._aead = AESGCM(bytes(data_key))
        self.key_id = bytes(key_id)

    def __repr__(self) -> str:
        return f"Envelope(key_id={self.key_id.hex()})"

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
        out = bytearray(_HEADER.size + len(body) + TAG_SIZE)
        self._encrypt_into(kind, name, body, compression, memoryview(out))
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
        object in it.  ``buffer`` must hold ``len(plaintext) + OVERHEAD`` bytes."""
        body, compression = self._body(kind, plaintext, compress, level)
        size = _HEADER.size + len(body) + TAG_SIZE
        if len(buffer) < size:
            raise ValueError(f"buffer of {len(buffer)} bytes is too small for {size}")
        out = memoryview(buffer)[:size]
        self._encrypt_into(kind, name, body, compression, out)
        return out

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
        nonce = os.urandom(NONCE_SIZE)
        header = _HEADER.pack(MAGIC, VERSION, kind, compression, self.key_id, nonce)
        out[: _HEADER.size] = header
        self._aead.encrypt_into(nonce, body, header + bytes(name), out[_HEADER.size :])

    def open(
        self,
        sealed: bytes | bytearray | memoryview,
        name: bytes,
        *,
        kind: int | None = None,
        scratch: Scratch | None = None,
    ) -> bytes | memoryview:
        """Authenticate, decrypt and decompress an object sealed under ``name``.

        Raises IntegrityError on any failure; with ``kind`` given, an object of another
        kind is refused too.  With ``scratch`` (a buffer one thread reuses), the body is
        decrypted into it, and a stored (uncompressed) plaintext is returned as a
        memoryview of it, valid until the scratch is used again.
        """
        view = memoryview(sealed).cast("B")
        what = _display(name)
        if view.nbytes < self.OVERHEAD:
            raise IntegrityError(what=what, reason=f"too short to be sealed ({view.nbytes} bytes)")
        magic, version, got_kind, compression, key_id, nonce = _HEADER.unpack_from(view)
        if magic != MAGIC:
            raise IntegrityError(what=what, reason="not a sealed object (bad magic)")
        if version != VERSION:
            raise IntegrityError(what=what, reason=f"unsupported envelope version {version}")
        if kind is not None and got_kind != kind:
            raise IntegrityError(
                what=what, reason=f"kind {got_kind} where kind {kind} was expected"
            )
        if got_kind not in KINDS:
            raise IntegrityError(what=what, reason=f"unknown kind {got_kind}")
        if compression not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
            raise IntegrityError(what=what, reason=f"unknown compression {compression}")
        if key_id != self.key_id:
            raise IntegrityError(
                what=what, reason=f"sealed with another key (key id {key_id.hex()})"
            )
        aad = bytes(view[: _HEADER.size]) + bytes(name)
        try:
            if scratch is None:
                body: bytes | memoryview = self._aead.decrypt(nonce, view[_HEADER.size :], aad)
            else:
                body = scratch.view(view.nbytes - self.OVERHEAD)
                self._aead.decrypt_into(nonce, view[_HEADER.size :], aad, body)
        except InvalidTag:
            raise IntegrityError(what=what, reason="authentication failed") from None
        if compression == COMPRESSION_NONE:
            return body
        return _decompress(body, what, max_plaintext(got_kind))


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
