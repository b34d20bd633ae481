"""A worker process that reads and seals batches of small files for a backup (its :func:`main`).

Started by :class:`.sealprocs.SmallFileSealers`, it talks to it as every worker does
(:mod:`.workerpipe`):

1. its first message is ``(writing state, id key, compression level)``
   (:meth:`~strongroom.repository.envelope.Envelope.writing_state`);
2. each task is a batch, a list of ``(path, listed size)``; it answers with the
   results of :func:`seal_files` and the sealed blobs as the answer's payload.

It imports only what sealing needs: it starts in about 50 ms.
"""

from __future__ import annotations

import sys

from ..repository.blobid import blob_id
from ..repository.envelope import KIND_DATA, Envelope
from .smallread import read_small_file
from .workerpipe import Handler, receive, send, serve

__all__ = ["Placed", "main", "receive", "seal_files", "send"]

#: One file's result as sent: blob id, plaintext length, and where its sealed blob is in
#: the answer's payload (offset, size).  An empty file has no blob: ``(b"", 0, 0, 0)``.
Placed = tuple[bytes, int, int, int]
_EMPTY: Placed = (b"", 0, 0, 0)


def seal_files(
    envelope: Envelope, id_key: bytes, level: int, files: list[tuple[str, int]]
) -> tuple[list[Placed | None], bytearray]:
    """Each file of ``files`` (path, listed size) read and sealed as a data blob, and
    the sealed blobs one after the other: ``(blob id, length, offset, size)`` of its
    sealed blob in them, ``(b"", 0, 0, 0)`` for an empty file, ``None`` for one that
    cannot be read as listed (gone, unreadable, grown)."""
    prepared: list[tuple[bytes, int, bytes | memoryview, int, int] | None] = []
    total = 0
    for path, size in files:
        data = read_small_file(path, size)
        if not data:
            prepared.append(None if data is None else (b"", 0, b"", 0, 0))
            continue
        blob = blob_id(id_key, data, threaded=False)
        body, compression = envelope.prepare(KIND_DATA, data, level=level)
        sealed_size = envelope.prepared_size(KIND_DATA, len(body))
        prepared.append((blob, len(data), body, compression, sealed_size))
        total += sealed_size
    payload = bytearray(total)
    results: list[Placed | None] = []
    offset = 0
    with memoryview(payload) as view:
        for item in prepared:
            if item is None or not item[1]:
                results.append(None if item is None else _EMPTY)
                continue
            blob, length, body, compression, sealed_size = item
            envelope.seal_prepared_into(view[offset:offset + sealed_size], KIND_DATA, blob, body, compression)
            results.append((blob, length, offset, sealed_size))
            offset += sealed_size
    return results, payload


def _setup(first: tuple[tuple[bytes, bytes, int], bytes, int]) -> Handler:
    state, id_key, level = first
    envelope = Envelope.sealing_only(state)

    def handle(files: list[tuple[str, int]], _: memoryview) -> tuple[list[Placed | None], bytearray]:
        return seal_files(envelope, id_key, level, files)

    return handle


def main() -> int:
    return serve(_setup)


if __name__ == "__main__":
    sys.exit(main())
