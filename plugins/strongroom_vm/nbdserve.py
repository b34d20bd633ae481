"""An NBD server for the disks of a recovery point (``strongroom vm export``).

The protocol is the NBD protocol's fixed-newstyle handshake and simple replies
(https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md), as QEMU, qemu-img,
nbdinfo and the Linux kernel's client speak it:

- options: ``NBD_OPT_EXPORT_NAME``, ``NBD_OPT_GO`` and ``NBD_OPT_INFO`` (the export's size
  and flags, and its block sizes: 1 byte minimum, 4 KiB preferred, 32 MiB maximum),
  ``NBD_OPT_LIST`` (every export), ``NBD_OPT_ABORT``; the others, ``NBD_OPT_STRUCTURED_REPLY``
  and ``NBD_OPT_STARTTLS`` among them, are answered ``NBD_REP_ERR_UNSUP`` and the client
  goes on without them.  An export name that is not a disk is ``NBD_REP_ERR_UNKNOWN`` (the
  connection is closed for ``NBD_OPT_EXPORT_NAME``, which has no error reply); the empty
  name is the only disk when there is one.
- commands: ``NBD_CMD_READ``, ``NBD_CMD_FLUSH``, ``NBD_CMD_DISC``; ``NBD_CMD_WRITE``,
  ``NBD_CMD_TRIM`` and ``NBD_CMD_WRITE_ZEROES`` on a read-only export are refused with
  ``EPERM`` (the export says it is read-only); on an export with an overlay they go to the
  overlay (:mod:`strongroom_vm.cow`; a trim is a no-op; ``NBD_CMD_FLAG_FUA`` and
  ``NBD_CMD_FLUSH`` make the overlay durable before the reply).  A request past the end of the disk
  is ``EINVAL``, one larger than 32 MiB closes the connection; a read the vault cannot serve
  (a damaged chunk) is ``EIO`` and is logged.

One thread per connection; each disk is read through one seekable reader of the point
(its chunk cache shared by every connection), every read of the vault behind one lock.  The server only reads the
vault.  Not here: TLS, structured replies, block status, the kernel's old-style handshake.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import threading
from typing import Any, Callable

import attrs

from .cow import Overlay

__all__ = ["Export", "NbdServer", "read_only_export"]

log = logging.getLogger(__name__)

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_UNKNOWN = (1 << 31) + 1, (1 << 31) + 3, (1 << 31) + 6
INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3
TF_HAS_FLAGS, TF_READ_ONLY, TF_SEND_FLUSH, TF_SEND_FUA = 1, 2, 4, 8
TF_SEND_TRIM, TF_SEND_WRITE_ZEROES, TF_CAN_MULTI_CONN = 32, 64, 256
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_FLAG_FUA = 1
MAX_REQUEST = 32 << 20
MAX_OPTION = 64 << 10


@attrs.define(eq=False)
class Export:
    """One exported disk: ``name`` (the export name), ``size``, ``read(offset, length)``;
    with an ``overlay``, writes go there and reads see them."""

    name: str
    size: int
    read_base: Callable[[int, int], bytes]
    overlay: Overlay | None = None
    description: str = ""
    #: connections that opened this export (for tests and the command's summary)
    opened: int = 0

    @property
    def read_only(self) -> bool:
        return self.overlay is None

    @property
    def flags(self) -> int:
        flags = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_CAN_MULTI_CONN
        if self.read_only:
            return flags | TF_READ_ONLY
        return flags | TF_SEND_FUA | TF_SEND_TRIM | TF_SEND_WRITE_ZEROES

    def read(self, offset: int, length: int) -> bytes:
        return self.read_base(offset, length) if self.overlay is None else self.overlay.read(offset, length)


def read_only_export(name: str, reader: Any, description: str = "", lock: Any = None) -> Export:
    """An :class:`Export` over a seekable reader; ``lock`` (default: one of its own) is held
    around each seek and read: give every export of one vault the same lock, as the vault's
    readers are not made to be used from several threads at once."""
    lock = lock or threading.Lock()

    def read(offset: int, length: int) -> bytes:
        with lock:
            reader.seek(offset)
            data = reader.read(length)
        return data if len(data) == length else data + bytes(length - len(data))

    return Export(name, reader.size, read, description=description)


class _Closed(Exception):
    """The client went away (or broke the protocol): end the connection."""


class _Conn:
    def __init__(self, sock: socket.socket, exports: dict[str, Export]) -> None:
        self.sock, self.exports = sock, exports
        self.no_zeroes = False

    def recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            part = self.sock.recv(min(n - len(buf), 1 << 20))
            if not part:
                raise _Closed()
            buf += part
        return bytes(buf)

    def send(self, *parts: bytes) -> None:
        try:
            self.sock.sendall(b"".join(parts))
        except OSError:
            raise _Closed() from None

    def reply(self, option: int, kind: int, data: bytes = b"") -> None:
        self.send(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)), data)

    def find(self, name: str) -> Export | None:
        if name in self.exports:
            return self.exports[name]
        if name == "" and len(self.exports) == 1:
            return next(iter(self.exports.values()))
        return None

    # --- handshake -------------------------------------------------------------------

    def handshake(self) -> Export | None:
        """The option haggling; the export chosen, or None when the client is done."""
        self.send(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", self.recv(4))
        if not client_flags & FLAG_FIXED_NEWSTYLE or client_flags & ~(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
            return None
        self.no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
        while True:
            magic, option, length = struct.unpack(">QII", self.recv(16))
            if magic != IHAVEOPT or length > MAX_OPTION:
                return None
            data = self.recv(length)
            if option == OPT_EXPORT_NAME:
                export = self.find(data.decode("utf-8", "replace"))
                if export is None:
                    return None
                self.send(struct.pack(">QH", export.size, export.flags), b"" if self.no_zeroes else bytes(124))
                return export
            if option == OPT_ABORT:
                self.reply(option, REP_ACK)
                return None
            if option == OPT_LIST:
                if data:
                    self.reply(option, REP_ERR_INVALID, b"NBD_OPT_LIST takes no data")
                    continue
                for name in self.exports:
                    raw = name.encode()
                    self.reply(option, REP_SERVER, struct.pack(">I", len(raw)) + raw)
                self.reply(option, REP_ACK)
            elif option in (OPT_INFO, OPT_GO):
                export = self._info(option, data)
                if export is not None and option == OPT_GO:
                    return export
            else:
                self.reply(option, REP_ERR_UNSUP, b"not supported by this server")

    def _info(self, option: int, data: bytes) -> Export | None:
        if len(data) < 6:
            self.reply(option, REP_ERR_INVALID, b"option too short")
            return None
        (name_len,) = struct.unpack(">I", data[:4])
        if 4 + name_len + 2 > len(data):
            self.reply(option, REP_ERR_INVALID, b"bad name length")
            return None
        name = data[4:4 + name_len].decode("utf-8", "replace")
        (count,) = struct.unpack(">H", data[4 + name_len:6 + name_len])
        if len(data) != 6 + name_len + 2 * count:
            self.reply(option, REP_ERR_INVALID, b"bad information request count")
            return None
        wanted = set(struct.unpack(f">{count}H", data[6 + name_len:]))
        export = self.find(name)
        if export is None:
            self.reply(option, REP_ERR_UNKNOWN, f"no disk named {name!r}".encode())
            return None
        self.reply(option, REP_INFO, struct.pack(">HQH", INFO_EXPORT, export.size, export.flags))
        self.reply(option, REP_INFO, struct.pack(">HIII", INFO_BLOCK_SIZE, 1, 4096, MAX_REQUEST))
        if INFO_NAME in wanted:
            self.reply(option, REP_INFO, struct.pack(">H", INFO_NAME) + export.name.encode())
        if INFO_DESCRIPTION in wanted and export.description:
            self.reply(option, REP_INFO, struct.pack(">H", INFO_DESCRIPTION) + export.description.encode())
        self.reply(option, REP_ACK)
        return export

    # --- transmission -----------------------------------------------------------------

    def transmit(self, export: Export) -> None:
        while True:
            magic, flags, kind, handle, offset, length = struct.unpack(">IHHQQI", self.recv(28))
            if magic != REQUEST_MAGIC or length > MAX_REQUEST:
                return
            data = self.recv(length) if kind == CMD_WRITE else b""
            if kind == CMD_DISC:
                return
            error, payload = self._command(export, kind, offset, length, data)
            if not error and flags & CMD_FLAG_FUA and kind in (CMD_WRITE, CMD_WRITE_ZEROES) and export.overlay:
                export.overlay.flush()  # forced unit access: on disk before the reply
            self.send(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, handle), payload)

    @staticmethod
    def _command(export: Export, kind: int, offset: int, length: int, data: bytes) -> tuple[int, bytes]:
        if kind == CMD_FLUSH:
            if export.overlay is not None:
                export.overlay.flush()
            return 0, b""
        if kind not in (CMD_READ, CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES):
            return errno.EINVAL, b""
        if offset + length > export.size:
            return (errno.ENOSPC if kind == CMD_WRITE else errno.EINVAL), b""
        if kind == CMD_READ:
            try:
                return 0, export.read(offset, length)
            except Exception as exc:  # a damaged chunk, a vault gone: the client sees EIO
                log.error("reading %s at %d: %s", export.name, offset, exc)
                return errno.EIO, b""
        if export.overlay is None:
            return errno.EPERM, b""
        try:
            if kind == CMD_WRITE:
                export.overlay.write(offset, data)
            elif kind == CMD_WRITE_ZEROES:
                for at in range(offset, offset + length, 1 << 20):
                    export.overlay.write(at, bytes(min(1 << 20, offset + length - at)))
        except OSError as exc:
            log.error("writing the overlay of %s: %s", export.name, exc)
            return exc.errno or errno.EIO, b""
        return 0, b""


class NbdServer:
    """Serves ``exports`` (name -> :class:`Export`) on a listening socket, a thread per
    connection.  :meth:`serve` returns when :meth:`stop` is called, or with ``once``
    when the first connection that opened a disk ends."""

    def __init__(self, listener: socket.socket, exports: dict[str, Export]) -> None:
        self.listener, self.exports = listener, exports
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def serve(self, *, once: bool = False, poll: float = 0.2) -> None:
        self.listener.settimeout(poll)
        try:
            while not self._stop.is_set():
                try:
                    sock, _ = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                sock.settimeout(None)
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._lock:
                    self._conns.add(sock)
                threading.Thread(target=self._serve_one, args=(sock, once), daemon=True,
                                 name="nbd-client").start()
        finally:
            self.close()

    def _serve_one(self, sock: socket.socket, once: bool) -> None:
        conn = _Conn(sock, self.exports)
        opened = False
        try:
            export = conn.handshake()
            if export is not None:
                opened = True
                export.opened += 1
                conn.transmit(export)
        except (_Closed, OSError, struct.error):
            pass
        finally:
            with self._lock:
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass
            if once and opened:
                self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop accepting, end every connection, flush the overlays."""
        self._stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
