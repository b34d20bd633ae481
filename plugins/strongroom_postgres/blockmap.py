"""Where each data block of a dump lies, found while the dump streams into the vault.

A custom-format archive written to a pipe (``pg_dump -Fc -Z0`` into strongroom) has no
data offsets in its table of contents: ``pg_restore`` can only read it from the start.
:class:`BlockMapper` passes the dump through unchanged while it notes, after the TOC,
each data block's dump id, kind and byte range (the layout of ``pg_backup_custom.c``):
a block is a type byte (1: table data, 3: large objects) and the dump id as an int, then
length-prefixed chunks ending with a zero length; a large-object block repeats (oid,
chunks) and ends with a zero oid.  Ints are as in :mod:`.toc`.  pg_dump writes one chunk
per row without compression; the rows of a table are skipped with numpy
(:meth:`BlockMapper._rows`, about 0.06 s per 100 MiB), anything else is walked chunk by
chunk.

The map is stored beside the dump as ``databases/<db>.blocks`` (:func:`blocks_path`),
JSON::

    {"format": 1, "size": dump size, "toc_end": offset of the first block,
     "blocks": [[dump_id, kind, start, end, [cut, ...]], ...]}

``start`` is the block's type byte, ``end`` one past its last byte; the ``cuts`` of a
table-data block are offsets of chunk headers inside it, about every :data:`CUT_BYTES`:
a restore may load a large table as pieces cut there, in parallel (a piece is the
block's header, the chunks from one cut to the next, and a zero length).  A dump the scan
does not understand gets ``{"format": 1, "error": reason}``: its restore takes the old,
sequential path; so do points made before maps existed (they have no such entry).
Nothing here ever fails a backup.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from typing import BinaryIO

import attrs
from strongroom import import_numpy

from .toc import DumpFormatError, TocTruncated, read_toc

__all__ = ["BLOCK_BLOBS", "BLOCK_DATA", "BlockMap", "BlockMapper", "MappedDump", "blocks_path", "parse_map"]

MAP_FORMAT = 1
BLOCKS_SUFFIX = ".blocks"
BLOCK_DATA = 1
BLOCK_BLOBS = 3
_HEAD_LIMIT = 1 << 30  # a TOC larger than this is not mapped
#: A cut is noted inside a table's block about every this many bytes.
CUT_BYTES = 4 << 20
FAST_MIN = 16 * 1024  # buffers at least this large skip rows with numpy (:meth:`BlockMapper._rows`)

_BLOCK, _CHUNK, _BLOB_OID, _DONE, _FAILED = range(5)


def blocks_path(dump_entry: str) -> str:
    """``databases/<db>.dump`` -> ``databases/<db>.blocks`` (never another database's dump)."""
    base = dump_entry[: -len(".dump")] if dump_entry.endswith(".dump") else dump_entry
    return base + BLOCKS_SUFFIX


@attrs.frozen
class BlockMap:
    """A dump's block map (see the module docstring)."""

    size: int
    toc_end: int
    blocks: tuple[tuple[int, int, int, int], ...]  # (dump_id, kind, start, end)
    cuts: dict[int, tuple[int, ...]] = attrs.field(factory=dict)  # dump_id -> offsets inside its block

    def by_id(self) -> dict[int, tuple[int, int, int, int]]:
        return {b[0]: b for b in self.blocks}


def parse_map(data: bytes) -> BlockMap | None:
    """The map stored beside a dump, or None when it is unusable (an ``error`` map,
    an unknown format, malformed JSON)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != MAP_FORMAT or doc.get("error"):
            return None
        blocks = tuple((int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in doc["blocks"])
        cuts = {int(b[0]): tuple(int(c) for c in b[4]) for b in doc["blocks"] if len(b) > 4 and b[4]}
        size, toc_end = int(doc["size"]), int(doc["toc_end"])
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    last = toc_end
    for dump_id, kind, start, end in blocks:
        if kind not in (BLOCK_DATA, BLOCK_BLOBS) or start != last or end <= start:
            return None
        inside = cuts.get(dump_id, ())
        if inside and (kind != BLOCK_DATA or list(inside) != sorted(set(inside))
                       or inside[0] <= start + 6 or inside[-1] >= end - 5):
            return None
        last = end
    if last != size:
        return None
    return BlockMap(size, toc_end, blocks, cuts)


class MappedDump:
    """One dump's stream and its map: ``open(raw_opener)`` is the dump entry's opener,
    :meth:`map_bytes` the map entry's content, which waits for the dump to be read (the
    backup reads the map entry after the dump: its reader threads take entries in order)."""

    OPEN_WAIT = 600.0  # seconds the map waits for the dump's stream to be opened

    def __init__(self) -> None:
        self._opened = threading.Event()
        self._mapper: BlockMapper | None = None

    def open(self, raw_opener) -> BinaryIO:
        try:
            self._mapper = BlockMapper(raw_opener())
            return self._mapper  # type: ignore[return-value]
        finally:
            self._opened.set()

    def map_bytes(self) -> bytes:
        if not self._opened.wait(self.OPEN_WAIT) or self._mapper is None:
            return json.dumps({"format": MAP_FORMAT, "error": "the dump was not read"}).encode()
        return self._mapper.wait()


class BlockMapper(io.RawIOBase):
    """A dump stream read through unchanged, mapping its blocks on the way.

    :meth:`wait` blocks until the stream has been read to its end or closed, and returns
    the map as JSON bytes (an ``error`` map when the stream did not end cleanly or the
    scan did not understand it)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._done = threading.Event()
        self._head: bytearray | None = bytearray()
        self._attempt = 64 * 1024
        self._offset = 0  # bytes scanned so far
        self._state = _BLOCK
        self._partial = b""
        self._skip = 0
        self._hs = 5  # the size of an int: sign byte + int_size bytes
        self._unpack = struct.Struct("<I").unpack_from
        self._kind = 0
        self._block: list | None = None
        self._last_cut = 0
        self._blocks: list[list[int]] = []
        self._toc_end = 0
        self._error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            try:
                self._scan(memoryview(buffer)[:n])
            except Exception as exc:  # never fail the backup: the map is just not used
                self._fail(f"scan failed ({exc})")
        elif n == 0:
            self._finish()
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                if not self._done.is_set():
                    self._fail("the dump stream was closed before its end")
                super().close()

    def wait(self, timeout: float | None = None) -> bytes:
        self._done.wait(timeout)
        if not self._done.is_set():
            return json.dumps({"format": MAP_FORMAT, "error": "the dump was not read"}).encode()
        if self._error is not None:
            return json.dumps({"format": MAP_FORMAT, "error": self._error}).encode()
        return json.dumps({"format": MAP_FORMAT, "size": self._offset, "toc_end": self._toc_end,
                           "blocks": self._blocks}, separators=(",", ":")).encode()

    # --- scanning ------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = reason
        self._state = _FAILED
        self._head = None
        self._done.set()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        if self._head is not None:  # a dump smaller than the first attempt: parse it now
            self._attempt = 0
            self._scan(memoryview(b""))
        if self._state == _FAILED:
            return
        if self._head is not None:
            self._fail("the dump ends inside its table of contents")
        elif self._state != _BLOCK or self._partial or self._skip:
            self._fail("the dump ends inside a data block")
        self._done.set()

    def _scan(self, view: memoryview) -> None:
        if self._state == _FAILED:
            return
        if self._head is not None:
            self._head += view
            if len(self._head) < self._attempt:
                return
            self._attempt = len(self._head) * 2
            fh = io.BytesIO(self._head)
            try:
                toc = read_toc(fh)
            except TocTruncated:
                if len(self._head) > _HEAD_LIMIT:
                    self._fail("the table of contents is too large to map")
                return
            except DumpFormatError as exc:
                self._fail(str(exc))
                return
            if toc.int_size != 4:
                self._fail(f"unexpected int size {toc.int_size}")
                return
            self._toc_end = fh.tell()
            rest = bytes(self._head[self._toc_end:])
            self._head = None
            self._offset = self._toc_end
            view = memoryview(rest)
        self._walk(view)

    def _walk(self, view: memoryview) -> None:
        n = len(view)
        pos = 0
        hs = self._hs
        unpack = self._unpack
        fast = n >= FAST_MIN
        while pos < n:
            if self._skip:
                take = min(self._skip, n - pos)
                pos += take
                self._skip -= take
                continue
            state = self._state
            if fast and state == _CHUNK and self._kind == BLOCK_DATA and not self._partial and n - pos >= FAST_MIN:
                ahead = self._rows(view, pos, n)
                fast = ahead > pos  # no progress: the rows do not end in newlines, walk them one by one
                pos = ahead
            need = hs + 1 if state == _BLOCK else hs
            if self._partial:
                take = min(need - len(self._partial), n - pos)
                self._partial += bytes(view[pos:pos + take])
                pos += take
                if len(self._partial) < need:
                    break
                head, base = self._partial, 0
                self._partial = b""
            elif n - pos < need:
                self._partial = bytes(view[pos:])
                pos = n
                break
            else:
                head, base = view, pos
                pos += need
            if state == _CHUNK:
                length = unpack(head, base + 1)[0]
                if length:
                    # the hot path: skip this chunk, then as many whole ones as this buffer holds
                    if pos + length > n:
                        self._skip = pos + length - n
                        pos = n
                        break
                    pos += length
                    while pos + hs <= n:
                        length = unpack(view, pos + 1)[0]
                        if not length:
                            break
                        if pos + hs + length > n:
                            # a chunk (not the block's end) starts here: a place to cut
                            if self._kind == BLOCK_DATA and self._offset + pos - self._last_cut >= CUT_BYTES:
                                self._last_cut = self._offset + pos
                                self._block[4].append(self._last_cut)  # type: ignore[index]
                            break
                        pos += hs + length
                    continue
                if self._kind == BLOCK_BLOBS:
                    self._state = _BLOB_OID
                else:
                    self._close_block(self._offset + pos)
            elif state == _BLOB_OID:
                if unpack(head, base + 1)[0]:
                    self._state = _CHUNK
                else:
                    self._close_block(self._offset + pos)
            else:  # _BLOCK
                kind = head[base]
                if kind not in (BLOCK_DATA, BLOCK_BLOBS):
                    self._fail(f"unknown block type {kind}")
                    return
                self._kind = kind
                self._block = [unpack(head, base + 2)[0], kind, self._offset + pos - need, 0, []]
                self._last_cut = self._offset + pos
                self._state = _CHUNK if kind == BLOCK_DATA else _BLOB_OID
        self._offset += n

    def _rows(self, view: memoryview, pos: int, n: int) -> int:
        """Skip the rows of a table's block from the chunk header at ``pos`` at C speed;
        returns the offset of a chunk header at least as far (where the walk goes on).

        pg_dump writes one chunk per row in COPY text format, so every chunk ends with a
        newline, and a newline is never inside a row: the chunk headers are among the
        positions that follow a newline.  Those candidates are checked in one pass: a
        header is proven by the one before it (its length leads exactly there), starting
        from ``pos``, which the walk knows is a header.  A candidate the chain does not
        reach (a newline byte inside a length) is stepped over; where the chain cannot be
        followed (the buffer's end, the block's end) the byte-by-byte walk takes over."""
        np = import_numpy()  # a backup's scan needs it; a restore reading the map does not

        arr = np.frombuffer(view, dtype=np.uint8, count=n)
        cand = np.flatnonzero(arr[pos:n - 5] == 10)
        cand += pos + 1
        cand = np.concatenate((np.array([pos], dtype=cand.dtype), cand))
        cand = cand[cand + 5 <= n]
        if len(cand) < 2:
            return pos
        lengths = (arr[cand + 1].astype(np.int64) | arr[cand + 2].astype(np.int64) << 8
                   | arr[cand + 3].astype(np.int64) << 16 | arr[cand + 4].astype(np.int64) << 24)
        nxt = cand + 5 + lengths
        good = (nxt[:-1] == cand[1:]) & (lengths[:-1] > 0) & (arr[cand[:-1]] == 0)
        bad = np.flatnonzero(~good)
        i, last = 0, len(cand) - 1
        while True:
            k = int(bad[np.searchsorted(bad, i)]) if len(bad) and bad[-1] >= i else last
            # cand[i..k] is a chain of chunk headers (k: where it stops being proven); cuts
            # go at those of them that start a chunk (not the block's end)
            while True:
                x = int(np.searchsorted(cand, self._last_cut + CUT_BYTES - self._offset, "left"))
                if x < i:
                    x = i
                if x > k or lengths[x] == 0 or arr[cand[x]] != 0:
                    break
                self._last_cut = self._offset + int(cand[x])
                self._block[4].append(self._last_cut)  # type: ignore[index]
            if k == last or lengths[k] == 0 or arr[cand[k]] != 0:
                break
            j = int(np.searchsorted(cand, nxt[k]))
            if j > last or cand[j] != nxt[k]:
                break
            i = j  # stepped over candidates that were no header
        return int(cand[k])

    def _close_block(self, end: int) -> None:
        assert self._block is not None
        self._block[3] = end
        self._blocks.append(self._block)
        self._block = None
        self._state = _BLOCK
