"""Disk images on this machine: what they are, and a seekable view of their guest content.

:func:`probe` tells the format of an image or block device once, when an item is
protected; backups then open it with that recorded format and never probe again (a
guest that writes a qcow2 header into its raw disk must not change how the host reads
it).  Formats:

- ``raw`` (files and block devices) and ``luks`` (a LUKS container, kept as it is) are
  read directly; zero regions of sparse files (``SEEK_HOLE``) read as zeros without I/O;
- ``qcow2`` and the other formats QEMU reads (``vmdk``, ``vdi``, ``vhdx``, ``vpc``,
  ``qed``) are served read-only by ``qemu-nbd`` on a private unix socket and read with
  :class:`~strongroom_vm.nbd.NbdClient` (no ``/dev/nbd*`` needed, holes cost nothing).

:func:`open_image` returns a context manager giving a binary file object with ``size``;
leaving it stops any ``qemu-nbd`` it started.

**No qemu-nbd outlives strongroom.**  ``qemu-nbd`` (and ``qemu-img``) run as children
tied to strongroom (:func:`strongroom.start_child`): they end when strongroom ends,
however it ends (``qemu-nbd`` by SIGKILL: it only reads, and may miss a SIGTERM that
comes while it starts).  ``qemu-nbd`` is also started without ``--persistent``: it
exits by itself once its last client is gone, and strongroom holds one connection
(the one that saw it listening) for as long as it serves the image, so a strongroom that
is gone leaves it no client.  A ``qemu-nbd --persistent`` that an older strongroom
left serving an image when it was killed holds the image's lock, so the VM cannot start:
:func:`serve_image` first ends every ``qemu-nbd`` that serves the same image from a
socket folder of strongroom's (``$TMPDIR/strongroom-nbd-<owner>-*``) whose owner is
gone (:func:`end_stale_servers`).  The owner is the strongroom process named in the
folder's name; folders made before names carried it name none, and then a server whose
parent is no longer a Python process (it was left to init) is stale.  A server a
running strongroom uses is never ended.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from typing import Iterator

import attrs

from strongroom import (
    ProcessId, ProcessInfo, SeekableReader, data_extents, end_process, list_processes, run_child, start_child,
)

from .errors import DiskInUse, DiskUnreadable, ToolMissing
from .locks import hold_no_writers

from .nbd import NbdClient, NbdError, NbdReader

__all__ = [
    "DIRECT_FORMATS", "NBD_FORMATS", "ClosingReader", "ImageInfo", "RawReader", "end_stale_servers", "open_image",
    "probe", "qemu_img_info", "serve_image",
]

DIRECT_FORMATS = frozenset({"raw", "luks"})
NBD_FORMATS = frozenset({"qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed"})
START_TIMEOUT = 15.0
NBD_DIR_PREFIX = "strongroom-nbd-"


@attrs.frozen
class ImageInfo:
    path: str
    format: str
    size: int
    kind: str  # "file" or "block"


def _which(tool: str, purpose: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ToolMissing(tool=tool, purpose=purpose, package="qemu-utils (Debian) or your QEMU tools")
    return found


def _magic_format(head: bytes) -> str | None:
    if head.startswith(b"QFI\xfb"):
        return "qcow2"
    if head.startswith(b"LUKS\xba\xbe"):
        return "luks"
    return None


def probe(path: str) -> ImageInfo:
    """The format, virtual size and kind of the image or block device at ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DiskUnreadable(disk=path, reason="no such file or device") from None
    except OSError as exc:
        raise DiskUnreadable(disk=path, reason=exc.strerror or str(exc)) from None
    if stat.S_ISBLK(st.st_mode):
        kind = "block"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        raise DiskUnreadable(disk=path, reason="not a disk image file or block device")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            size = fh.seek(0, io.SEEK_END)
    except OSError as exc:
        raise DiskUnreadable(disk=path, reason=exc.strerror or str(exc)) from None
    fmt = _magic_format(head)
    if fmt == "luks" or (fmt is None and (kind == "block" or shutil.which("qemu-img") is None)):
        return ImageInfo(path, fmt or "raw", size, kind)
    info = qemu_img_info(path)
    fmt = info.get("format", "raw")
    if fmt in DIRECT_FORMATS:
        return ImageInfo(path, fmt, size, kind)
    if fmt not in NBD_FORMATS:
        raise DiskUnreadable(disk=path, reason=f"image format {fmt!r} is not supported")
    if info.get("encrypted"):
        raise DiskUnreadable(disk=path, reason=f"encrypted {fmt} images are not supported (use a LUKS raw image)")
    return ImageInfo(path, fmt, int(info["virtual-size"]), kind)


def qemu_img_info(path: str, fmt: str | None = None, *, shared: bool = True) -> dict:
    """``qemu-img info``; with ``shared=False`` an image a running VM holds is refused."""
    qemu_img = _which("qemu-img", "read this disk image")
    argv = [qemu_img, "info", *(["-U"] if shared else []), "--output=json", *(["-f", fmt] if fmt else []), path]
    done = run_child(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["qemu-img cannot open it"]
        if any("lock" in line for line in lines):
            raise DiskInUse(disk=path)
        raise DiskUnreadable(disk=path, reason=lines[-1].removeprefix("qemu-img: "))
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise DiskUnreadable(disk=path, reason="qemu-img gave unreadable information") from None


class RawReader(SeekableReader):
    """A raw image or block device; regions that are holes in a sparse file read as zeros
    without touching the disk.  ``bytes_from_source`` counts the bytes read from the
    image (holes do not count): what a backup reports as read."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__()
        self.size = size
        self.bytes_from_source = 0
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._pos = 0
        self._holes = stat.S_ISREG(os.fstat(self._fd).st_mode) and hasattr(os, "SEEK_DATA")

    def fileno(self) -> int:
        return self._fd

    def _data_extents(self, offset: int, length: int) -> list[tuple[int, int]]:
        """The ``(start, end)`` ranges of ``[offset, offset + length)`` that may hold data
        (the whole range when the file has no holes or they cannot be asked for)."""
        end = offset + length
        extents = data_extents(self._fd, offset, end) if self._holes else None
        if extents is None:
            self._holes = False
            return [(offset, end)]
        return extents

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        length = max(0, min(len(view), self.size - self._pos))
        if not length:
            return 0
        at = 0  # filled up to here (relative to self._pos)
        for start, stop in self._data_extents(self._pos, length):
            first, last = start - self._pos, stop - self._pos
            view[at:first] = bytes(first - at)
            done = first
            while done < last:
                n = os.preadv(self._fd, [view[done:last]], self._pos + done)
                if n == 0:  # the file shrank: the rest reads as zeros
                    break
                done += n
            self.bytes_from_source += done - first
            at = done
        view[at:length] = bytes(length - at)
        self._pos += length
        return length

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ClosingReader(io.RawIOBase):
    """A reader that runs ``on_close`` after closing the reader it wraps (and
    ``before_close``, if given, while that reader is still open)."""

    def __init__(self, inner: io.RawIOBase, size: int, on_close, before_close=None) -> None:
        super().__init__()
        self.inner = inner
        self.size = size
        self._on_close = on_close
        self._before_close = before_close

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self.inner.readinto(buffer)

    @property
    def bytes_from_source(self) -> int | None:
        """The bytes the wrapped reader read from the disk (None if it does not count them)."""
        return getattr(self.inner, "bytes_from_source", None)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._before_close is not None:
                self._before_close()
        finally:
            try:
                self.inner.close()
            finally:
                super().close()
                self._on_close()


def _listening(path: str) -> socket.socket | None:
    """A connection to the server listening at ``path``, or None if none listens yet."""
    probe_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe_sock.connect(path)
    except OSError:
        probe_sock.close()
        return None
    return probe_sock


def _served_by_strongroom(server: ProcessInfo) -> str | None:
    """The socket folder of a ``qemu-nbd`` that strongroom started (None for another's)."""
    sock = server.option("--socket") or server.option("-k")
    folder = os.path.dirname(sock) if sock else ""
    return folder if os.path.basename(folder).startswith(NBD_DIR_PREFIX) else None


def _owner_gone(folder: str, server: ProcessInfo, processes: dict[int, ProcessInfo]) -> bool:
    rest = os.path.basename(folder)[len(NBD_DIR_PREFIX):]
    owner = ProcessId.from_tag(rest.rpartition("-")[0])
    if owner is not None:
        return owner.is_gone()
    parent = processes.get(server.ppid)  # a folder named before names carried the owner
    return parent is None or not any("python" in os.path.basename(arg) or "strongroom" in arg
                                     for arg in parent.argv[:2])


def _remove_stale_folders() -> None:
    """Remove the socket folders whose owner is gone (its qemu-nbd died with it)."""
    base = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(base) if n.startswith(NBD_DIR_PREFIX)]
    except OSError:
        return
    for name in names:
        owner = ProcessId.from_tag(name[len(NBD_DIR_PREFIX):].rpartition("-")[0])
        if owner is not None and owner.is_gone():
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def end_stale_servers(path: str) -> list[int]:
    """End the ``qemu-nbd`` servers of ``path`` left by a strongroom that is gone (see the
    module docstring), and remove the socket folders of owners that are gone; returns the
    servers' pids."""
    image = os.path.realpath(path)
    servers = [p for p in list_processes("qemu-nbd") if os.path.realpath(p.argv[-1]) == image]
    if not servers:
        _remove_stale_folders()
        return []
    processes = {p.pid: p for p in list_processes()}
    ended = []
    for server in servers:
        folder = _served_by_strongroom(server)
        if folder is None or not _owner_gone(folder, server, processes):
            continue
        if end_process(server.id):
            ended.append(server.pid)
        shutil.rmtree(folder, ignore_errors=True)
    _remove_stale_folders()
    return ended


@contextlib.contextmanager
def serve_image(path: str, fmt: str, *, bitmap: str | None = None, shared: bool = False,
                bitmaps: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``qemu-nbd`` read-only for ``path`` on a private unix socket; yield the socket.
    ``bitmap``/``bitmaps``: persistent dirty bitmaps of the image to export (their
    ``qemu:dirty-bitmap:NAME`` contexts).

    ``shared=True`` serves an image that a running VM holds: the image is opened with
    QEMU's locking off (``--image-opts ...,file.locking=off``), so it neither takes nor
    checks the locks."""
    qemu_nbd = _which("qemu-nbd", f"read {fmt} disk images")
    end_stale_servers(path)
    workdir = tempfile.mkdtemp(prefix=f"{NBD_DIR_PREFIX}{ProcessId.current().tag}-")
    sock = os.path.join(workdir, "nbd.sock")
    argv = [qemu_nbd, "--read-only", "--shared=8", "--socket", sock, "--export-name", "disk", "--cache=none",
            "--aio=threads"]
    for name in ((bitmap,) if bitmap else ()) + tuple(bitmaps):
        argv += ["--bitmap", name]
    if shared:
        protocol = "host_device" if stat.S_ISBLK(os.stat(path).st_mode) else "file"
        argv += ["--image-opts",
                 f"driver={fmt},file.driver={protocol},file.filename={path.replace(',', ',,')},file.locking=off"]
    else:
        argv += ["--format", fmt, path]
    log_path = os.path.join(workdir, "log")
    with open(log_path, "wb") as log:
        # SIGKILL: a SIGTERM that comes while qemu-nbd starts may be lost, and it only reads
        proc = start_child(argv, end_signal=signal.SIGKILL, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    held = None  # kept open while serving: without --persistent, qemu-nbd ends when its last client goes
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (held := _listening(sock)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log_path, errors="replace") as fh:
                    lines = [l.strip() for l in fh if l.strip()]
                reason = lines[-1] if lines else f"qemu-nbd exited with {proc.returncode}"
                if any("lock" in line for line in lines):
                    raise DiskInUse(disk=path)
                raise DiskUnreadable(disk=path, reason=reason.removeprefix("qemu-nbd: "))
            time.sleep(0.01)
        yield sock
    finally:
        if held is not None:
            held.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def connect(sock: str, disk: str, export: str = "disk", contexts: tuple[str, ...] = ()) -> NbdReader:
    try:
        return NbdReader(NbdClient(sock, export, contexts=contexts))
    except NbdError as exc:
        raise DiskUnreadable(disk=disk, reason=str(exc)) from None


@contextlib.contextmanager
def open_image(path: str, fmt: str, size: int, *, force: bool = False) -> Iterator[io.RawIOBase]:
    """A binary file over the guest content of a disk, ``size`` bytes long.

    An image that a running VM holds (QEMU's write lock) raises :class:`DiskInUse`,
    unless ``force``.  Otherwise no VM can start on the image while it is open: a raw
    image holds the lock that refuses writers (:mod:`strongroom_vm.locks`), as
    ``qemu-nbd`` does for the other formats."""
    if fmt in DIRECT_FORMATS:
        try:
            reader = RawReader(path, size)
        except OSError as exc:
            raise DiskUnreadable(disk=path, reason=exc.strerror or str(exc)) from None
        with reader:
            if not force and not hold_no_writers(reader.fileno()):
                raise DiskInUse(disk=path)
            yield reader
        return
    if fmt not in NBD_FORMATS:
        raise DiskUnreadable(disk=path, reason=f"image format {fmt!r} is not supported")
    if not os.path.exists(path):
        raise DiskUnreadable(disk=path, reason="no such file or device")
    with serve_image(path, fmt, shared=force) as sock:
        with connect(sock, path) as reader:
            yield reader
