"""A small NBD client: read-only access to a disk exported by QEMU or ``qemu-nbd``.

It speaks the fixed-newstyle handshake over a unix socket, negotiates structured replies
(so holes come back as ``OFFSET_HOLE`` chunks: reading zeros costs no transfer) and
optional metadata contexts, then serves :meth:`NbdClient.pread` and
:meth:`NbdClient.block_status`.  One request is in flight at a time; a client is used by
one thread.  :class:`NbdReader` wraps a client as a seekable binary file object, which is
what the backup engine and the partition readers take.

Contexts used by strongroom: ``base:allocation`` (bit 0 hole, bit 1 zero) and
``qemu:dirty-bitmap:NAME`` (bit 0 dirty), which QEMU offers when an export is created
with that bitmap.  Every protocol failure raises :class:`NbdError` with one line.

A connection is never left half-open behind the server's back: when the handshake fails
or is interrupted (Ctrl-C, SIGTERM), and when a client is closed, the client shuts down
its sending side and waits (at most :data:`HANG_UP_WAIT` seconds) until the server has
closed its end, then closes.  QEMU's ``nbd-server-stop`` (which libvirt sends when a
backup job is aborted) waits until every connection has ended, and with QEMU 7.2 a
connection strongroom had closed, but whose end QEMU had not yet read when the job was
aborted, was seen to keep QEMU's main loop, and libvirt's lock on the domain, waiting for
ever.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Iterator
from strongroom import SeekableReader

__all__ = ["NbdClient", "NbdError", "NbdReader"]

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
SIMPLE_REPLY = 0x67446698
STRUCTURED_REPLY = 0x668E33EF
REQUEST_MAGIC = 0x25609513

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_ABORT = 2
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_SET_META_CONTEXT = 10
REP_ACK = 1
REP_INFO = 3
REP_META_CONTEXT = 4
INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_DISC = 2
CMD_BLOCK_STATUS = 7
REPLY_FLAG_DONE = 1
REPLY_OFFSET_DATA = 1
REPLY_OFFSET_HOLE = 2
REPLY_BLOCK_STATUS = 5
REPLY_ERROR_BIT = 1 << 15

MAX_READ = 32 << 20  # QEMU's limit for one request
MAX_STATUS = 1 << 31  # lengths are 32-bit
HANG_UP_WAIT = 5.0  # seconds a closing client waits for the server to close its end
_SERVER_GONE = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL


class NbdError(OSError):
    """A failure of the NBD connection or of a request."""


class NbdClient:
    """One connection to one export of an NBD server on a unix socket."""

    def __init__(self, path: str, export: str = "", *, contexts: tuple[str, ...] = (), timeout: float = 60.0):
        self.path = path
        self.export = export
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._cookie = 0
        self.contexts: dict[int, str] = {}
        self.bytes_received = 0  # data bytes read (holes the server reported cost none)
        try:
            self._sock.connect(path)
            self.size, self.flags = self._handshake(tuple(contexts))
        except BaseException as exc:  # a failure, or an interruption in the middle of the handshake
            self._hang_up()
            if isinstance(exc, NbdError) or not isinstance(exc, OSError):
                raise
            raise NbdError(f"NBD server at {path}: {exc.strerror or exc}") from None

    # --- wire helpers ----------------------------------------------------------------

    def _recv(self, length: int) -> bytes:
        buf = bytearray(length)
        view = memoryview(buf)
        got = 0
        while got < length:
            n = self._sock.recv_into(view[got:], length - got)
            if not n:
                raise NbdError(f"NBD server at {self.path} closed the connection")
            got += n
        return bytes(buf)

    def _recv_into(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n = self._sock.recv_into(view[got:])
            if not n:
                raise NbdError(f"NBD server at {self.path} closed the connection")
            got += n

    def _option(self, option: int, data: bytes = b"") -> None:
        self._sock.sendall(struct.pack(">QII", IHAVEOPT, option, len(data)) + data)

    def _option_reply(self, option: int) -> tuple[int, bytes]:
        magic, opt, kind, length = struct.unpack(">QIII", self._recv(20))
        if magic != REPLY_MAGIC or opt != option:
            raise NbdError(f"NBD server at {self.path} sent a malformed option reply")
        data = self._recv(length) if length else b""
        if kind & (1 << 31):
            text = data.decode("utf-8", "replace") or f"error {kind & 0x7FFFFFFF}"
            raise NbdError(f"NBD server at {self.path} refused export {self.export!r}: {text}")
        return kind, data

    def _handshake(self, contexts: tuple[str, ...]) -> tuple[int, int]:
        magic, opt_magic, flags = struct.unpack(">QQH", self._recv(18))
        if magic != NBDMAGIC or opt_magic != IHAVEOPT or not flags & FLAG_FIXED_NEWSTYLE:
            raise NbdError(f"{self.path} is not a fixed-newstyle NBD server")
        self._sock.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)))
        self._option(OPT_STRUCTURED_REPLY)
        self._option_reply(OPT_STRUCTURED_REPLY)
        name = self.export.encode()
        if contexts:
            queries = b"".join(struct.pack(">I", len(c.encode())) + c.encode() for c in contexts)
            self._option(OPT_SET_META_CONTEXT,
                         struct.pack(">I", len(name)) + name + struct.pack(">I", len(contexts)) + queries)
            while True:
                kind, data = self._option_reply(OPT_SET_META_CONTEXT)
                if kind == REP_ACK:
                    break
                if kind == REP_META_CONTEXT:
                    (context_id,) = struct.unpack(">I", data[:4])
                    self.contexts[context_id] = data[4:].decode()
        self._option(OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">HH", 1, INFO_BLOCK_SIZE))
        size = flags = None
        while True:
            kind, data = self._option_reply(OPT_GO)
            if kind == REP_ACK:
                break
            if kind == REP_INFO and struct.unpack(">H", data[:2])[0] == INFO_EXPORT:
                size, flags = struct.unpack(">QH", data[2:12])
        if size is None:
            raise NbdError(f"NBD server at {self.path} did not give the size of export {self.export!r}")
        return size, flags

    # --- transmission ----------------------------------------------------------------

    def _request(self, command: int, offset: int, length: int, flags: int = 0) -> int:
        self._cookie += 1
        self._sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, self._cookie, offset, length))
        return self._cookie

    def _chunks(self, cookie: int) -> Iterator[tuple[int, bytes | None, int]]:
        """Yield ``(type, payload-or-None, length)`` of each reply chunk; for OFFSET_DATA the
        payload is left on the socket (None) so the caller can receive it in place."""
        while True:
            (magic,) = struct.unpack(">I", self._recv(4))
            if magic == SIMPLE_REPLY:
                error, got = struct.unpack(">IQ", self._recv(12))
                if got != cookie:
                    raise NbdError(f"NBD server at {self.path} answered another request")
                if error:
                    raise NbdError(f"NBD request failed on {self.path}: error {error}")
                yield -1, None, 0
                return
            if magic != STRUCTURED_REPLY:
                raise NbdError(f"NBD server at {self.path} sent a malformed reply")
            flags, kind, got, length = struct.unpack(">HHQI", self._recv(16))
            if got != cookie:
                raise NbdError(f"NBD server at {self.path} answered another request")
            if kind & REPLY_ERROR_BIT:
                data = self._recv(length)
                error, msg_len = struct.unpack(">IH", data[:6])
                message = data[6 : 6 + msg_len].decode("utf-8", "replace")
                raise NbdError(f"NBD request failed on {self.path}: {message or f'error {error}'}")
            if kind == REPLY_OFFSET_DATA:
                yield kind, None, length
            elif length:
                yield kind, self._recv(length), length
            if flags & REPLY_FLAG_DONE:
                return

    def pread_into(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` with the export's bytes at ``offset`` (holes read as zeros)."""
        done = 0
        while done < len(view):
            length = min(MAX_READ, len(view) - done)
            self._read_one(view[done : done + length], offset + done)
            done += length

    def _read_one(self, view: memoryview, offset: int) -> None:
        cookie = self._request(CMD_READ, offset, len(view))
        for kind, payload, length in self._chunks(cookie):
            if kind == -1:  # a simple reply: the data follows
                self._recv_into(view)
                self.bytes_received += len(view)
            elif kind == REPLY_OFFSET_DATA:
                (start,) = struct.unpack(">Q", self._recv(8))
                inner = start - offset
                if inner < 0 or inner + length - 8 > len(view):
                    raise NbdError(f"NBD server at {self.path} sent data outside the request")
                self._recv_into(view[inner : inner + length - 8])
                self.bytes_received += length - 8
            elif kind == REPLY_OFFSET_HOLE and payload is not None:
                start, hole = struct.unpack(">QI", payload)
                inner = start - offset
                if inner < 0 or inner + hole > len(view):
                    raise NbdError(f"NBD server at {self.path} sent a hole outside the request")
                view[inner : inner + hole] = bytes(hole)

    def pread(self, length: int, offset: int) -> bytes:
        buf = bytearray(length)
        self.pread_into(memoryview(buf), offset)
        return bytes(buf)

    def block_status(self, context: str, offset: int = 0, length: int | None = None) -> Iterator[tuple[int, int, int]]:
        """``(offset, length, flags)`` extents of ``context`` covering the range."""
        ids = [i for i, name in self.contexts.items() if name == context]
        if not ids:
            raise NbdError(f"NBD server at {self.path} does not offer {context!r} for export {self.export!r}")
        end = self.size if length is None else min(self.size, offset + length)
        position = offset
        while position < end:
            cookie = self._request(CMD_BLOCK_STATUS, position, min(end - position, MAX_STATUS - 4096))
            advanced = position
            for kind, payload, _ in self._chunks(cookie):
                if kind != REPLY_BLOCK_STATUS or payload is None:
                    continue
                (context_id,) = struct.unpack(">I", payload[:4])
                if context_id != ids[0]:
                    continue
                at = position
                for i in range(4, len(payload) - 7, 8):
                    ext_len, ext_flags = struct.unpack(">II", payload[i : i + 8])
                    ext_len = min(ext_len, end - at)
                    if ext_len <= 0:
                        break
                    yield at, ext_len, ext_flags
                    at += ext_len
                advanced = at
            if advanced == position:
                raise NbdError(f"NBD server at {self.path} gave no block status at offset {position}")
            position = advanced

    def close(self) -> None:
        """Disconnect (``NBD_CMD_DISC``) and close once the server has closed its end."""
        if self._sock.fileno() < 0:
            return
        try:
            self._request(CMD_DISC, 0, 0)
        except OSError:
            pass
        self._hang_up()

    def _hang_up(self) -> None:
        """Shut down the sending side, wait until the server has closed its end (at most
        :data:`HANG_UP_WAIT` seconds; nothing that comes meanwhile is read), then close."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
            poller = select.poll()
            poller.register(self._sock, select.POLLRDHUP)  # POLLHUP and POLLERR always count
            deadline = time.monotonic() + HANG_UP_WAIT
            while (left := deadline - time.monotonic()) > 0:
                if any(events & _SERVER_GONE for _, events in poller.poll(left * 1000)):
                    break
        except OSError:  # never connected, or already reset: nothing to wait for
            pass
        finally:
            self._sock.close()

    def __enter__(self) -> "NbdClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NbdReader(SeekableReader):
    """A seekable, read-only binary file over an :class:`NbdClient` (which it closes).
    ``bytes_from_source``: the data bytes the server sent (holes it reported do not count)."""

    @property
    def bytes_from_source(self) -> int:
        return self.client.bytes_received

    def __init__(self, client: NbdClient) -> None:
        super().__init__()
        self.client = client
        self.size = client.size
        self._pos = 0

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        length = max(0, min(len(view), self.size - self._pos))
        if length:
            self.client.pread_into(view[:length], self._pos)
            self._pos += length
        return length

    def close(self) -> None:
        if not self.closed:
            self.client.close()
        super().close()
