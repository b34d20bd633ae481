"""What a workload's backup yields: source entries, one per file, folder, link or stream.

The backup engine takes an iterable of source entries in pre-order (a folder before its
contents, a folder's whole subtree before its next sibling; see
:meth:`strongroom.Workload.backup`).  Each carries ``path``, where it goes in the point
(``srv/www/index.html``: relative, ``/``-separated, no ``.`` or ``..``), and ``entry``,
its metadata as an :class:`~strongroom.catalog.entry.Entry` without ``chunks`` or
``subtree`` (the engine fills those in).  What else it carries depends on its kind:

==================  ==================  ==========================================
kind                ``entry.type``      content
==================  ==================  ==========================================
:class:`FolderSource`  ``dir``          none: its children follow it
:class:`FileSource`    ``file``,        read from ``abspath`` on this machine,
                       ``hardlink``     never following a symbolic link
:class:`LinkSource`    ``symlink``      none: ``entry.target`` is the link text
:class:`SpecialSource` ``fifo``, ...    none (fifo, chardev, blockdev, socket)
:class:`FileRun`       ``file``         plain files of one folder at once, each
                                        read as a :class:`FileSource` would be
:class:`StreamSource`  ``stream``,      ``open()`` returns a binary stream, read to
                       ``file``         its end (a dump, bytes the workload made)
:class:`DiskSource`    ``disk``         ``open()`` returns a seekable reader; fixed
                                        ``entry.chunk_size`` chunks, holes for zeros
==================  ==================  ==========================================

Errors: a :class:`FileSource` that cannot be read is left out of the point with a
warning (the file may have vanished); a :class:`StreamSource` or :class:`DiskSource`
whose ``open()`` or reads raise fails the backup, since the workload made it.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Callable, Collection, Iterable, Iterator, Protocol

import attrs

from .catalog.entry import DIR, STREAM, Entry

__all__ = [
    "DiskSource", "FileRun", "FileSource", "FolderSource", "LinkSource", "SourceEntry", "SpecialSource", "StreamSource",
    "each_source",
]


class SourceEntry(Protocol):
    """What every source entry has: its ``path`` in the point and its ``entry``."""

    path: str
    entry: Entry


@attrs.frozen
class FolderSource:
    """A folder: its entry (type ``dir``); the entries inside it follow it.

    ``abspath`` (optional) is where it is on this machine, for messages.
    """

    path: str
    entry: Entry
    abspath: str = ""

    @classmethod
    def named(cls, path: str, *, mode: int = 0o755, mtime_ns: int = 0) -> FolderSource:
        """A folder without file-system metadata of its own (a workload's layout)."""
        return cls(path, Entry(name=path.rpartition("/")[2], type=DIR, mode=mode, mtime_ns=mtime_ns))


@attrs.frozen(init=False, weakref_slot=False)
class FileSource:
    """A file of this machine, read from ``abspath`` (``O_NOFOLLOW``, ``O_NOATIME``).

    An entry of type ``hardlink`` names the point path of the file's first name in
    ``entry.target``; its content is that file's.  A file whose size changed while it
    was read is stored as read, with a warning.
    """

    path: str
    abspath: str
    entry: Entry

    def __new__(cls, path: str, abspath: str, entry: Entry) -> "FileSource":
        # Written out, as Entry's: one is made for every file a backup scans.  Three plain
        # attribute stores in an object of the same layout, which then becomes a
        # FileSource: 0.25 us, against 0.6 us for attrs' frozen __init__.
        self = _new(_FileFilling)
        self.path = path
        self.abspath = abspath
        self.entry = entry
        self.__class__ = cls
        return self  # type: ignore[return-value]

    def __reduce__(self):  # copy and pickle call the class with the values (no __init__ to call)
        return type(self), (self.path, self.abspath, self.entry)


class _FileFilling:
    """What FileSource.__new__ fills before it becomes a FileSource (the same slots)."""

    __slots__ = tuple(f.name for f in attrs.fields(FileSource))


_new = object.__new__


@attrs.frozen(eq=False)
class FileRun:
    """Plain files of one folder, one after the other, given at once: what a
    :class:`FileSource` for each would give, without an object made per file until the
    engine needs one.

    ``folder`` is the point path of their folder (``""`` for the top).  ``files`` lists,
    in the walk's order, ``(path, abspath, fields)`` per file: ``path`` is
    ``folder + "/" + name`` (``name`` alone in the top folder), ``fields`` the values of
    its :class:`~strongroom.catalog.entry.Entry` in the order of the entry's fields
    (``Entry(*fields)`` is the file's entry), of type ``file`` with one link (``nlink``
    1) and no ``chunks`` or ``subtree``.  A file the same as in the parent point costs
    no entry: its fields are compared with the parent's row as they are.  A scan of a
    tree of many small files yields most of them so (a backup of a million unchanged
    files spent a third of its walk making and comparing an entry per file); any
    source of files may.  :func:`each_source` gives the single sources back.
    """

    folder: str
    files: tuple[tuple[str, str, tuple], ...]

    def sources(self) -> Iterator[FileSource]:
        """A :class:`FileSource` per file, in order."""
        for path, abspath, fields in self.files:
            yield FileSource(path, abspath, Entry(*fields))


def each_source(sources: Iterable[object]) -> Iterator[SourceEntry]:
    """``sources`` with each :class:`FileRun` given as its single file sources."""
    for src in sources:
        if type(src) is FileRun:
            yield from src.sources()
        else:
            yield src  # type: ignore[misc]


@attrs.frozen
class LinkSource:
    """A symbolic link: ``entry.target`` is its text (``abspath`` as for folders)."""

    path: str
    entry: Entry
    abspath: str = ""


@attrs.frozen
class SpecialSource:
    """A fifo, device node or socket: metadata only (``abspath`` as for folders)."""

    path: str
    entry: Entry
    abspath: str = ""


@attrs.frozen
class StreamSource:
    """Content the workload produces: ``opener()`` returns a binary stream read to its end.

    ``entry.size`` may be 0 when the size is not known in advance (a dump being made);
    the point records the size read.  A stream is always read, whatever its metadata: only
    a :class:`FileSource` whose size, times, inode and device equal the parent point's is
    taken as unchanged without being read.
    """

    path: str
    entry: Entry
    opener: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        return self.opener()

    @classmethod
    def from_bytes(cls, path: str, data: bytes, *, mode: int = 0o644, type: str = STREAM,
                   mtime_ns: int = 0) -> StreamSource:
        """A small stream of bytes already in memory (a manifest, a configuration)."""
        entry = Entry(name=path.rpartition("/")[2], type=type, mode=mode, size=len(data), mtime_ns=mtime_ns)
        return cls(path, entry, lambda: io.BytesIO(data))


@attrs.frozen
class DiskSource:
    """A disk image: ``opener()`` returns a seekable reader of its content.

    ``entry.chunk_size`` (> 0) is the fixed chunk size, ``entry.size`` the disk size.
    ``changed_chunks``, when not None, lists the chunk numbers that may differ from the
    same path in the item's latest point (a dirty bitmap); every other chunk is taken from
    that point without being read.  None reads the whole disk.
    """

    path: str
    entry: Entry
    opener: Callable[[], BinaryIO]
    changed_chunks: Collection[int] | None = None

    def open(self) -> BinaryIO:
        return self.opener()
