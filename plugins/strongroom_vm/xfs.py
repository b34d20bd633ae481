"""XFS file systems inside a disk, read through libfsxfs (libyal's XFS library, LGPL-3.0+).

The Sleuth Kit (pytsk3) does not read XFS, so an XFS volume is opened with the
``pyfsxfs`` binding (PyPI ``libfsxfs-python``, a binary wheel) over the same seekable
reader: only the chunks holding the metadata and the files read are fetched from the
vault.  :class:`XfsFileSystem` has :class:`strongroom_vm.fsread.FileSystem`'s interface
(``root``, ``listdir``, ``lookup``, ``walk``, ``read``) and gives the same
:class:`~strongroom_vm.fsread.FsNode` records: the mode, owner, modification and access
times (nanoseconds, also on ``bigtime`` file systems) and symbolic links' targets the
inodes hold.

An XFS volume libfsxfs cannot open (a damaged superblock, a feature it does not know)
is refused with :class:`~strongroom_vm.errors.UnknownFilesystem`; a missing binding
with :class:`~strongroom_vm.errors.ToolMissing`.
"""

from __future__ import annotations

import stat
from typing import Iterator

from .errors import ToolMissing, UnknownFilesystem
from .fsread import _LOCK, XFS_MAGIC, FileSystem, FsNode

try:
    import pyfsxfs
except ImportError:  # pragma: no cover - the vm extra installs it
    pyfsxfs = None

__all__ = ["XfsFileSystem"]


_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev", stat.S_IFSOCK: "socket"}


class XfsFileSystem(FileSystem):
    """One XFS file system (see the module documentation)."""

    def __init__(self, reader, size: int, where: str, point: str) -> None:  # noqa: D107 - no TSK here
        if pyfsxfs is None:
            raise ToolMissing(tool="libfsxfs-python", purpose="read files inside XFS volumes",
                              package="the vm extra: pip install 'strongroom[vm]'")
        self.where, self.point, self.type = where, point, "xfs"
        self._reader = reader
        self._volume = pyfsxfs.volume()
        try:
            with _LOCK:
                reader.seek(0)
                self._volume.open_file_object(reader)
                self.root_inode = int(self._volume.get_root_directory().inode_number)
        except OSError as exc:
            reason = str(exc).split(". ")[0].rpartition(": ")[2] or "unreadable"
            raise UnknownFilesystem(where=where, reason=f"an XFS volume libfsxfs cannot read ({reason})") from None

    def _entry(self, inode: int):
        return self._volume.get_file_entry_by_inode(inode)

    def _node_of(self, name: str, entry) -> FsNode | None:
        mode = int(entry.file_mode)
        kind = _KINDS.get(stat.S_IFMT(mode))
        if kind is None:
            return None
        target = ""
        if kind == "symlink":
            target = entry.symbolic_link_target or ""
        return FsNode(
            name=name, type=kind, inode=int(entry.inode_number), size=int(entry.size) if kind == "file" else 0,
            mode=mode & 0o7777, uid=int(entry.owner_identifier), gid=int(entry.group_identifier),
            mtime_ns=int(entry.get_modification_time_as_integer()),
            atime_ns=int(entry.get_access_time_as_integer()), target=target,
        )

    def listdir(self, inode: int) -> list[FsNode]:
        out: list[FsNode] = []
        with _LOCK:
            directory = self._entry(inode)
            for i in range(int(directory.number_of_sub_file_entries)):
                child = directory.get_sub_file_entry(i)
                name = child.name or ""
                if not name or "/" in name or name in (".", ".."):
                    continue
                node = self._node_of(name, child)
                if node is not None:
                    out.append(node)
        return sorted(out, key=lambda n: n.name.encode("utf-8", "surrogateescape"))

    def root(self) -> FsNode:
        with _LOCK:
            return self._node_of("", self._entry(self.root_inode))  # type: ignore[return-value]

    def read(self, node: FsNode, block: int = 1 << 20) -> Iterator[bytes]:
        offset = 0
        while offset < node.size:
            n = min(block, node.size - offset)
            with _LOCK:
                data = self._entry(node.inode).read_buffer_at_offset(n, offset)
            if not data:
                break
            yield data
            offset += len(data)
