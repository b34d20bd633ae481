"""A worker process that reads and seals batches of small files for a backup (``python -m strongroom.engine.sealworker``).

Started by :class:`.sealprocs.SmallFileSealers`, it talks to it over its standard
input and output, in messages of a 64-bit length and a pickle (:func:`send`,
:func:`receive`):

1. it receives ``(writing state, id key, compression level)``
   (:meth:`~strongroom.repository.envelope.Envelope.writing_state`) and answers
   ``("ready", pid)``;
2. then, for each batch it receives (a list of ``(path, listed size)``), it answers
   ``("ok", results)`` (:func:`seal_files`) or ``("error", exception)``;
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

__all__ = ["Sealed", "main", "receive", "seal_files", "send"]

#: One file's result: blob id, plaintext length, sealed blob.  An empty file has no blob.
Sealed = tuple[bytes, int, bytes | bytearray]
_EMPTY: Sealed = (b"", 0, b"")
_LENGTH = struct.Struct("<Q")


def send(fd: int, message: Any) -> None:
    """Write ``message`` (pickled, after its length) to file descriptor ``fd``, whole."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    header = _LENGTH.pack(len(data))
    with memoryview(data) as view:
        written = os.writev(fd, [header, view])  # no copy of a batch's pickle to join them
        if written < len(header):
            header_left = header[written:]
            while header_left:
                header_left = header_left[os.write(fd, header_left):]
            written = len(header)
        rest = view[written - len(header):]
        while rest:
            rest = rest[os.write(fd, rest):]


def receive(stream: BinaryIO, buffer: bytearray | None = None) -> Any:
    """The next message :func:`send` wrote to the other end of unbuffered ``stream``;
    EOFError if it ends first (at a message's start or inside one).  ``buffer``, if
    given, is where it is read (grown as needed, kept for the next message: a batch's
    answer is a few MiB, each new buffer of that size a few hundred page faults)."""
    header = _read_exactly(stream, bytearray(_LENGTH.size), _LENGTH.size)
    size = _LENGTH.unpack(header)[0]
    if buffer is None:
        buffer = bytearray(size)
    elif len(buffer) < size:
        buffer.extend(bytes(size - len(buffer)))
    with memoryview(buffer)[:size] as view:
        return pickle.loads(_read_exactly(stream, view, size))


def _read_exactly(stream: BinaryIO, buffer, size: int):
    """``buffer`` (a bytearray or a view of ``size`` bytes) filled from ``stream``."""
    with memoryview(buffer) as view:
        done = 0
        while done < size:
            n = stream.readinto(view[done:size])
            if not n:
                raise EOFError(f"the stream ended after {done} of {size} bytes")
            done += n
    return buffer


def seal_files(envelope: Envelope, id_key: bytes, level: int, files: list[tuple[str, int]]) -> list[Sealed | None]:
    """Each file of ``files`` (path, listed size) read and sealed as a data blob:
    ``(blob id, length, sealed blob)``, ``(b"", 0, b"")`` for an empty file, ``None``
    for one that cannot be read as listed (gone, unreadable, grown)."""
    results: list[Sealed | None] = []
    for path, size in files:
        data = read_small_file(path, size)
        if not data:
            results.append(None if data is None else _EMPTY)
            continue
        blob = blob_id(id_key, data, threaded=False)
        body, compression = envelope.prepare(KIND_DATA, data, level=level)
        sealed = bytearray(envelope.prepared_size(KIND_DATA, len(body)))
        envelope.seal_prepared_into(memoryview(sealed), KIND_DATA, blob, body, compression)
        results.append((blob, len(data), sealed))
    return results


def _answer(fd: int, result: Any) -> None:
    try:
        send(fd, result)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
        send(fd, ("error", RuntimeError(f"{result[1]!r} (not picklable: {exc})")))


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
        state, id_key, level = receive(requests)
    except EOFError:
        return 0
    envelope = Envelope.sealing_only(state)
    send(answers, ("ready", os.getpid()))
    while True:
        try:
            files = receive(requests)
        except EOFError:
            return 0
        try:
            result: tuple[str, Any] = ("ok", seal_files(envelope, id_key, level, files))
        except Exception as exc:  # a bug, sent to the backup to raise
            result = ("error", exc)
        _answer(answers, result)


if __name__ == "__main__":
    sys.exit(main())
