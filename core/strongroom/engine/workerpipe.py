"""The messages between strongroom and its worker processes, and a worker's main loop.

A worker (:mod:`.sealworker`, :mod:`.restoreworker`) talks to the process that started
it (:class:`.workerpool.WorkerPool`) over its standard input and output, in messages of
two 64-bit lengths, a pickle and a payload of raw bytes (:func:`send`, :func:`receive`):

1. it receives its first message (what it needs for all its tasks: keys, a folder...)
   and answers ``("ready", pid)``;
2. then, for each task it receives (a message and a payload), it answers
   ``("ok", value)`` with a payload, or ``("error", exception)``;
3. it ends when its input ends.

:func:`serve` runs that loop.  Anything else a worker would print goes to its standard
error: its standard output carries only messages.  It ignores SIGINT (the terminal sends
it to every process of the job; strongroom's process handles it and ends its workers).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
from typing import Any, BinaryIO, Callable

__all__ = ["Handler", "receive", "send", "serve"]

_HEADER = struct.Struct("<QQ")  # the pickle's length, the payload's length

#: What a worker does with each task: ``handle(message, payload)`` -> ``(value, payload)``.
Handler = Callable[[Any, memoryview], tuple[Any, bytes | bytearray | memoryview]]


def send(fd: int, message: Any, payload: bytes | bytearray | memoryview = b"") -> None:
    """Write ``message`` (pickled) and ``payload`` (raw bytes, not pickled: no copy of
    a large payload) to file descriptor ``fd``, whole, after their lengths."""
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
        try:
            buffer.extend(bytes(payload_size - len(buffer)))
        except BufferError:  # a view of its last payload is still held: not resized
            buffer = bytearray(payload_size)
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


def _send_error(fd: int, error: Exception) -> None:
    try:
        send(fd, ("error", error))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
        send(fd, ("error", RuntimeError(f"{error!r} (not picklable: {exc})")))


def serve(setup: Callable[[Any], Handler]) -> int:
    """A worker's main loop (see the module documentation): ``setup(first message)``
    gives the handler of every task that follows.  Returns the exit status (0) when the
    input ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked from its start
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not mix with the messages
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        first, _ = receive(requests)
    except EOFError:
        return 0
    handle = setup(first)
    send(answers, ("ready", os.getpid()))
    buffer = bytearray()
    while True:
        try:
            message, payload = receive(requests, buffer)
        except EOFError:
            return 0
        try:
            value, out = handle(message, payload)
        except Exception as exc:  # a bug, sent to the caller to raise
            payload.release()
            _send_error(answers, exc)
        else:
            payload.release()
            send(answers, ("ok", value), out)
