"""Partitions and file systems inside a disk, read from any seekable file object.

Built on pytsk3 (The Sleuth Kit's Python binding, Apache-2.0): partition tables MBR
(with logical partitions) and GPT; file systems ext2/3/4, FAT12/16/32, exFAT and NTFS
(plus what else TSK reads: HFS+, ISO 9660, UFS); XFS through libfsxfs
(:mod:`strongroom_vm.xfs`).  LVM2 physical volumes are opened with
:mod:`strongroom_vm.lvm` (linear logical volumes).  Every byte comes through
``reader.read`` at the offsets TSK asks for, so over a recovery point's
reader (:meth:`strongroom.PointView.open`) only the chunks holding the metadata and
the files read are fetched from the vault.

Paths inside a disk: ``/`` lists the volumes, ``pN`` for partition N (Linux numbering:
primary and GPT partitions 1-128, logical partitions from 5) and ``pN/VG-LV`` for a
logical volume; a disk without a partition table is one file system at ``/``.  Below a
volume, paths are the file system's own.  Names are decoded from UTF-8 with
``surrogateescape``.  Deleted entries, TSK's virtual entries (``$OrphanFiles``, FAT's
``$FAT1``), FAT volume labels and NTFS's metadata files (MFT records 0-23: ``$MFT``,
``$Bitmap``...) are not listed.

FAT, exFAT and NTFS keep no Unix mode or owner (TSK reports 0777, and NTFS's owner as
a Windows security id's number): their files are given mode 0644, folders 0755, and
the user and group of the process reading them (the restoring user).

A GPT disk whose primary header is damaged is read from its backup header
(:mod:`strongroom_vm.gpt`), as ``sfdisk`` does.  A LUKS volume (a partition or the
whole disk, LUKS1 or LUKS2) is named as encrypted, not as "no file system"; with a key
(``secret``, :mod:`strongroom_vm.luks`) it is unlocked in memory and the file system or
LVM physical volume inside is read.  A disk without partition table that is an LVM
physical volume lists its logical volumes as ``VG-LV``.
"""

from __future__ import annotations

import os
import threading
from typing import Iterator

import attrs

from strongroom import PathNotInPoint, SeekableReader

from .errors import ToolMissing, UnknownFilesystem

try:
    import pytsk3
except ImportError:  # pragma: no cover - the vm extra installs it
    pytsk3 = None

from .gpt import backup_partitions
from .lvm import LvmError, logical_volumes

__all__ = ["DiskView", "FsNode", "Volume"]

_FS_NAMES = {
    "EXT2": "ext2", "EXT3": "ext3", "EXT4": "ext4", "FAT12": "fat12", "FAT16": "fat16",
    "FAT32": "fat32", "EXFAT": "exfat", "NTFS": "ntfs", "HFS": "hfs", "ISO9660": "iso9660",
    "FFS1": "ufs1", "FFS1B": "ufs1", "FFS2": "ufs2",
}
_LOCK = threading.Lock()  # TSK objects are not safe across threads
_NO_UNIX_METADATA = frozenset({"fat12", "fat16", "fat32", "exfat", "ntfs"})
LUKS_MAGIC = b"LUKS\xba\xbe"
XFS_MAGIC = b"XFSB"


def _luks_kind(reader) -> str:
    """'LUKS1' or 'LUKS2' for a volume starting with a LUKS header, else ''."""
    with _LOCK:
        reader.seek(0)
        head = reader.read(8)
    return f"LUKS{int.from_bytes(head[6:8], 'big')}" if head[:6] == LUKS_MAGIC else ""


def is_luks(reader) -> bool:
    """Whether the volume read by ``reader`` starts with a LUKS1 or LUKS2 header."""
    reader.seek(0)
    return reader.read(len(LUKS_MAGIC)) == LUKS_MAGIC


def _starts_with(reader, magic: bytes) -> bool:
    with _LOCK:
        reader.seek(0)
        return reader.read(len(magic)) == magic


def _need_tsk() -> None:
    if pytsk3 is None:
        raise ToolMissing(tool="pytsk3", purpose="read files inside disk images",
                          package="the vm extra: pip install 'strongroom[vm]'")


def _fs_name(ftype) -> str:
    for key, name in _FS_NAMES.items():
        if int(ftype) == int(getattr(pytsk3, f"TSK_FS_TYPE_{key}")):
            return name
    return "unknown"


class _Image:
    """Adapts a seekable binary reader to TSK's image interface."""

    def __new__(cls, reader, size: int):
        _need_tsk()

        class Image(pytsk3.Img_Info):
            def __init__(self) -> None:
                self._reader, self._size = reader, size
                super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

            def read(self, offset: int, length: int) -> bytes:
                self._reader.seek(offset)
                return self._reader.read(max(0, min(length, self._size - offset)))

            def get_size(self) -> int:
                return self._size

        return Image()


class _Window(SeekableReader):
    """Bytes ``[start, start + length)`` of a reader, as a reader of their own."""

    def __init__(self, reader, start: int, length: int) -> None:
        super().__init__()
        self._reader, self._start, self.size, self._pos = reader, start, length, 0

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n:
            self._reader.seek(self._start + self._pos)
            data = self._reader.read(n)
            view[: len(data)] = data
            n = len(data)
            self._pos += n
        return n

@attrs.frozen
class Volume:
    """A partition or logical volume; ``fs`` is the file system found ('' if none)."""

    name: str
    start: int
    size: int
    description: str
    fs: str
    reader: object = attrs.field(eq=False, repr=False)
    encryption: str = ""  # LUKS1, LUKS2 for an encrypted volume
    unlocked: str = ""  # the file system inside an encrypted volume, once unlocked


@attrs.frozen
class FsNode:
    """One file, folder or link inside a file system."""

    name: str
    type: str  # file, dir, symlink, fifo, chardev, blockdev, socket
    inode: int
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    atime_ns: int
    target: str = ""


_META_TYPES = {"REG": "file", "DIR": "dir", "LNK": "symlink", "FIFO": "fifo", "CHR": "chardev",
               "BLK": "blockdev", "SOCK": "socket"}


def _meta_type(value) -> str | None:
    for key, name in _META_TYPES.items():
        if int(value) == int(getattr(pytsk3, f"TSK_FS_META_TYPE_{key}")):
            return name
    return None


class FileSystem:
    """One file system (see the module documentation for what is listed)."""

    def __init__(self, reader, size: int, where: str, point: str) -> None:
        self.where = where
        self.point = point
        self._img = _Image(reader, size)
        try:
            with _LOCK:
                self._fs = pytsk3.FS_Info(self._img)
        except OSError:
            raise UnknownFilesystem(where=where, reason="no file system that strongroom can read "
                                    "(ext2/3/4, XFS, FAT, exFAT, NTFS, HFS+, ISO 9660, UFS)") from None
        self.type = _fs_name(self._fs.info.ftype)
        self.root_inode = int(self._fs.info.root_inum)

    def _node(self, name: str, meta) -> FsNode | None:
        kind = _meta_type(meta.type)
        if kind is None:
            return None
        target = ""
        if kind == "symlink":
            link = meta.link or b""
            target = link.decode("utf-8", "surrogateescape") if isinstance(link, bytes) else str(link)
        mode, uid, gid = int(meta.mode) & 0o7777, int(meta.uid), int(meta.gid)
        if self.type in _NO_UNIX_METADATA:
            mode, uid, gid = (0o755 if kind == "dir" else 0o644), os.getuid(), os.getgid()
        return FsNode(
            name=name, type=kind, inode=int(meta.addr), size=int(meta.size) if kind == "file" else 0,
            mode=mode, uid=uid, gid=gid,
            mtime_ns=int(meta.mtime) * 1_000_000_000 + int(getattr(meta, "mtime_nano", 0) or 0),
            atime_ns=int(meta.atime) * 1_000_000_000 + int(getattr(meta, "atime_nano", 0) or 0),
            target=target,
        )

    def listdir(self, inode: int) -> list[FsNode]:
        out: list[FsNode] = []
        with _LOCK:
            directory = self._fs.open_dir(inode=inode)
            for f in directory:
                info = f.info
                raw = info.name.name
                if raw in (b".", b"..") or info.meta is None:
                    continue
                if int(info.name.flags) & int(pytsk3.TSK_FS_NAME_FLAG_UNALLOC):
                    continue
                if int(info.name.type) in (int(pytsk3.TSK_FS_NAME_TYPE_VIRT), int(pytsk3.TSK_FS_NAME_TYPE_VIRT_DIR)):
                    continue
                name = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)
                if self.type.startswith("fat") and name.endswith("(Volume Label Entry)"):
                    continue
                if self.type == "ntfs" and inode == self.root_inode and int(info.meta.addr) < 24:
                    continue
                if "/" in name or not name:
                    continue
                node = self._node(name, info.meta)
                if node is not None:
                    out.append(node)
        return sorted(out, key=lambda n: n.name.encode("utf-8", "surrogateescape"))

    def root(self) -> FsNode:
        with _LOCK:
            meta = self._fs.open_meta(inode=self.root_inode).info.meta
        return self._node("", meta)  # type: ignore[return-value]

    def lookup(self, parts: list[str], shown: str) -> FsNode:
        node = self.root()
        for part in parts:
            if node.type != "dir":
                raise PathNotInPoint(path=shown, point=self.point)
            match = [n for n in self.listdir(node.inode) if n.name == part]
            if not match and (self.type.startswith("fat") or self.type in ("exfat", "ntfs")):
                match = [n for n in self.listdir(node.inode) if n.name.lower() == part.lower()]
            if not match:
                raise PathNotInPoint(path=shown, point=self.point)
            node = match[0]
        return node

    def walk(self, node: FsNode, path: str) -> Iterator[tuple[str, FsNode]]:
        """``node`` and everything below it, pre-order, with paths relative to ``path``'s parent."""
        yield path, node
        if node.type == "dir":
            for child in self.listdir(node.inode):
                yield from self.walk(child, f"{path}/{child.name}" if path else child.name)

    def read(self, node: FsNode, block: int = 1 << 20) -> Iterator[bytes]:
        with _LOCK:
            f = self._fs.open_meta(inode=node.inode)
        offset = 0
        while offset < node.size:
            n = min(block, node.size - offset)
            with _LOCK:
                data = f.read_random(offset, n)
            if not data:
                break
            yield data
            offset += len(data)


class DiskView:
    """The volumes of one disk, and the file system of each."""

    def __init__(self, reader, size: int, label: str, point: str, secret=None) -> None:
        _need_tsk()
        self.reader, self.size, self.label, self.point = reader, size, label, point
        self.secret = secret  # a luks.LuksSecret: unlocks the LUKS volumes of this disk
        self._volumes: list[Volume] | None = None
        self._whole_disk = False  # volumes() found no partition table
        self._unlocked: dict[str, object] = {}

    def _unlock(self, reader, size: int, where: str):
        """The plaintext of the LUKS volume read by ``reader`` (unlocked once)."""
        if where not in self._unlocked:
            from .luks import unlock

            with _LOCK:
                self._unlocked[where] = unlock(reader, size, self.secret, where)
        return self._unlocked[where]

    def _lvm_volumes(self, prefix: str, reader, start: int) -> list[Volume]:
        """The logical volumes of the LVM physical volume read by ``reader``."""
        return [Volume(f"{prefix}{lv_name}", start, lv_size, "LVM logical volume",
                       self._probe_fs(lv_reader, lv_size), lv_reader)
                for lv_name, lv_reader, lv_size in logical_volumes(reader)]

    def _probe_fs(self, reader, size: int) -> str:
        if _starts_with(reader, XFS_MAGIC):
            return "xfs"
        try:
            with _LOCK:
                fs = pytsk3.FS_Info(_Image(reader, size))
            return _fs_name(fs.info.ftype)
        except OSError:
            reader.seek(0)
            head = reader.read(4096)
            if head.startswith(LUKS_MAGIC):
                return "luks"
            if b"LABELONE" in (head[0:8], head[512:520], head[1024:1032], head[1536:1544]):
                return "lvm2"
            return ""

    def volumes(self) -> list[Volume] | None:
        """The partitions and logical volumes, or None if the disk has no partition table."""
        if self._volumes is not None or self._whole_disk:
            return self._volumes
        img = _Image(self.reader, self.size)
        try:
            with _LOCK:
                vs = pytsk3.Volume_Info(img)
                block = int(vs.info.block_size)
                parts = [(int(p.start), int(p.len), int(p.slot_num), int(p.table_num), p.desc, int(p.flags))
                         for p in vs]
        except OSError:
            parts = None
        backup = backup_partitions(self.reader, self.size) if _protective_only(parts) else None
        if backup is not None:
            self._volumes = self._add_volumes([
                (f"p{p.number}", p.start, p.size, f"{p.name or 'GPT partition'} (from the backup GPT header)")
                for p in backup])
            return self._volumes
        if parts is None:
            self._volumes = self._whole_disk_volumes()
            self._whole_disk = self._volumes is None
            return self._volumes
        found = []
        logical = 4
        for start, length, slot, table, desc, flags in parts:
            if flags != int(pytsk3.TSK_VS_PART_FLAG_ALLOC):
                continue
            if table > 0:  # a logical partition inside an extended one
                logical += 1
                number = logical
            else:
                number = slot + 1
            text = desc.decode("utf-8", "replace") if isinstance(desc, bytes) else str(desc)
            found.append((f"p{number}", start * block, length * block, text))
        self._volumes = self._add_volumes(found)
        return self._volumes

    def _add_volumes(self, parts: list[tuple[str, int, int, str]]) -> list[Volume]:
        """Volumes of the partitions ``(name, start, size, description)``, with their logical volumes."""
        out: list[Volume] = []
        for name, start, length, text in parts:
            window = _Window(self.reader, start, length)
            fs = self._probe_fs(window, length)
            out.append(Volume(name, start, length, text, fs, window))
            pv = window if fs == "lvm2" else None
            if fs == "luks":
                out[-1] = attrs.evolve(out[-1], encryption=_luks_kind(window))
                if self.secret is not None:
                    plain = self._unlock(window, length, f"{self.label}:/{name}")
                    inner = self._probe_fs(plain, plain.size)
                    out[-1] = attrs.evolve(out[-1], unlocked=inner or "no file system")
                    pv = plain if inner == "lvm2" else None
            if pv is not None:
                try:
                    out.extend(self._lvm_volumes(f"{name}/", pv, start))
                except LvmError as exc:
                    out[-1] = attrs.evolve(out[-1], description=f"{text} (LVM: {exc})")
        return out

    def _whole_disk_volumes(self) -> list[Volume] | None:
        """A disk without partition table that is an LVM physical volume (or a LUKS volume
        holding one, with the key given): its logical volumes, named ``VG-LV``."""
        reader = self.reader
        if _luks_kind(reader) and self.secret is not None:
            reader = self._unlock(reader, self.size, f"disk {self.label}")
        try:
            return self._lvm_volumes("", reader, 0) or None
        except LvmError:
            return None

    def open_fs(self, volume: str | None) -> FileSystem:
        """The file system of ``volume`` (a ``pN`` name), or of the whole disk (None)."""
        if volume is None:
            where = f"disk {self.label}"
            if is_luks(self.reader):
                plain = self._unlock(self.reader, self.size, where)
                return self._filesystem(plain, plain.size, where)
            return self._filesystem(self.reader, self.size, where)
        for v in self.volumes() or []:
            if v.name == volume:
                where = f"{self.label}:/{v.name}"
                reader, size = v.reader, v.size
                if v.fs == "luks":
                    reader = self._unlock(v.reader, v.size, where)
                    size = reader.size
                if v.fs == "lvm2" or v.unlocked == "lvm2":
                    raise UnknownFilesystem(where=where, reason="it is an LVM physical volume; browse its logical volumes")
                return self._filesystem(reader, size, where)
        raise PathNotInPoint(path=f"{self.label}:/{volume}", point=self.point)

    def _filesystem(self, reader, size: int, where: str) -> FileSystem:
        """XFS through libfsxfs (:mod:`strongroom_vm.xfs`), every other file system through TSK."""
        if _starts_with(reader, XFS_MAGIC):
            from .xfs import XfsFileSystem

            return XfsFileSystem(reader, size, where, self.point)
        return FileSystem(reader, size, where, self.point)


def _protective_only(parts) -> bool:
    """Whether TSK found no table, or only a protective MBR (a GPT disk whose primary
    header it could not read)."""
    if parts is None:
        return True
    allocated = [p for p in parts if p[5] == int(pytsk3.TSK_VS_PART_FLAG_ALLOC)]
    return all(b"0xee" in (p[4] if isinstance(p[4], bytes) else str(p[4]).encode()).lower() for p in allocated)
