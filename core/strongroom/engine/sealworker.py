"""A worker process that reads and seals batches of small files for a backup (its :func:`main`).

Started by :class:`.sealprocs.SmallFileSealers`, it talks to it over its standard
input and output, in messages of two 64-bit lengths, a pickle and a payload of raw
bytes (:func:`send`, :func:`receive`):

1. it receives ``(writing state, id key, compression level)``
   (:meth:`~strongroom.repository.envelope.Envelope.writing_state`) and answers
   ``("ready", pid)``;
2. then, for each batch it receives (a list of ``(path, listed size)``), it answers
   ``("ok", results)`` with the sealed blobs as the message's payload
   (:func:`seal_files`), or ``("error", exception)``;
3. it ends when its input ends.

Anything else it would print goes to its standard error: its standard output carries
only messages.  It ignores SIGINT (the terminal sends it to every process of the job;
the backup's process handles it and ends its workers).  It imports only what sealing
needs: it starts in about 50 ms.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import Any, BinaryIO

from ..repository.blobid import blob_id
from ..repository.envelope import KIND_DATA, Envelope
from .smallread import read_small_file

__all__ = ["Placed", "main", "receive", "seal_files", "send"]

#: One file's result as sent: blob id, plaintext length, and where its sealed blob is in
#: the answer's payload (offset, size).  An empty file has no blob: ``(b"", 0, 0, 0)``.
Placed = tuple[bytes, int, int, int]
_EMPTY: Placed = (b"", 0, 0, 0)
_HEADER = struct.Struct("<QQ")  # the pickle's length, the payload's length


def send(fd: int, message: Any, payload: bytes | bytearray | memoryview = b"") -> None:
    """Write ``message`` (pickled) and ``payload`` (raw bytes, not pickled: no copy of
    a batch's sealed blobs) to file descriptor ``fd``, whole, after their lengths."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    with memoryview(payload).cast("B") as raw:
        parts = [memoryview(_HEADER.pack(len(data), raw.nbytes)), memoryview(data), raw]
        while parts:
            written = os.writev(fd, parts)
            while parts and written >= parts[0].nbytes:
                written -= parts.pop(0).nbytes
            if parts:
                parts[0] = parts[0][written:]


def receive(stream: BinaryIO, buffer: bytearray | None = None) -> tuple[Any, memoryview]:
    """The next message :func:`send` wrote to the other end of unbuffered ``stream``,
    and a view of its payload; EOFError if the stream ends first (at a message's start
    or inside one).  The payload is read into ``buffer`` if given (grown as needed: the
    view is valid until the buffer's next use), else into a buffer of its own."""
    header = _read_exactly(stream, memoryview(bytearray(_HEADER.size)))
    size, payload_size = _HEADER.unpack(header)
    message = pickle.loads(_read_exactly(stream, memoryview(bytearray(size))))
    if buffer is None:
        buffer = bytearray(payload_size)
    elif len(buffer) < payload_size:
        buffer.extend(bytes(payload_size - len(buffer)))
    return message, _read_exactly(stream, memoryview(buffer)[:payload_size])


def _read_exactly(stream: BinaryIO, view: memoryview) -> memoryview:
    """``view`` filled from ``stream``."""
    done, size = 0, view.nbytes
    while done < size:
        n = stream.readinto(view[done:])
        if not n:
            raise EOFError(f"the stream ended after {done} of {size} bytes")
        done += n
    return view


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


def _send_error(fd: int, error: Exception) -> None:
    try:
        send(fd, ("error", error))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
        send(fd, ("error", RuntimeError(f"{error!r} (not picklable: {exc})")))


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked from its start
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not mix with the messages
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        (state, id_key, level), _ = receive(requests)
    except EOFError:
        return 0
    envelope = Envelope.sealing_only(state)
    send(answers, ("ready", os.getpid()))
    while True:
        try:
            files, _ = receive(requests)
        except EOFError:
            return 0
        try:
            results, payload = seal_files(envelope, id_key, level, files)
        except Exception as exc:  # a bug, sent to the backup to raise
            _send_error(answers, exc)
        else:
            send(answers, ("ok", results), payload)


if __name__ == "__main__":
    sys.exit(main())
