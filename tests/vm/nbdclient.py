"""A small NBD client for the export tests: the fixed-newstyle handshake and simple
replies, enough to send what QEMU's tools will not (a write to a read-only export)."""

from __future__ import annotations

import socket
import struct

IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
OPT_LIST, OPT_GO, OPT_STRUCTURED_REPLY, OPT_ABORT = 3, 7, 8, 2
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP, REP_ERR_UNKNOWN = (1 << 31) + 1, (1 << 31) + 6


class NbdClient:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(path)
        magic, opt, flags = struct.unpack(">QQH", self._recv(18))
        assert (magic, opt) == (0x4E42444D41474943, IHAVEOPT)
        assert flags & 1, "not fixed newstyle"
        self.sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        self.size = self.flags = None
        self._handle = 0

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            part = self.sock.recv(n - len(buf))
            if not part:
                raise EOFError("server closed the connection")
            buf += part
        return buf

    def option(self, option: int, data: bytes = b"") -> list[tuple[int, bytes]]:
        """Send an option; the replies up to the final one, as (type, data)."""
        self.sock.sendall(struct.pack(">QII", IHAVEOPT, option, len(data)) + data)
        replies = []
        while True:
            magic, opt, kind, length = struct.unpack(">QIII", self._recv(20))
            assert magic == REPLY_MAGIC and opt == option
            replies.append((kind, self._recv(length)))
            if kind not in (REP_SERVER, REP_INFO):
                return replies

    def list(self) -> list[str]:
        return [data[4:].decode() for kind, data in self.option(OPT_LIST) if kind == REP_SERVER]

    def go(self, name: str) -> list[tuple[int, bytes]]:
        raw = name.encode()
        replies = self.option(OPT_GO, struct.pack(">I", len(raw)) + raw + struct.pack(">H", 0))
        for kind, data in replies:
            if kind == REP_INFO and struct.unpack(">H", data[:2])[0] == 0:
                _, self.size, self.flags = struct.unpack(">HQH", data)
        return replies

    def command(self, kind: int, offset: int = 0, length: int = 0, data: bytes = b"") -> tuple[int, bytes]:
        """(error, data) of one request."""
        self._handle += 1
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, kind, self._handle, offset, length) + data)
        magic, error, handle = struct.unpack(">IIQ", self._recv(16))
        assert magic == 0x67446698 and handle == self._handle
        payload = self._recv(length) if kind == CMD_READ and not error else b""
        return error, payload

    def close(self) -> None:
        try:
            self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, CMD_DISC, 0, 0, 0))
        except OSError:
            pass
        self.sock.close()
