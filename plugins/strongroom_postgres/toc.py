"""Read the header and table of contents of a pg_dump custom-format archive.

A custom-format archive (``pg_dump -Fc``) starts with a header and the table of
contents (TOC): one entry per object (schema, table, table data, index, constraint,
sequence, function, large object...), each with its dump id, type (``desc``), schema
(``namespace``), name (``tag``), owner, SQL definition and the dump ids it depends on.
The table data follows the TOC.  Reading the TOC therefore touches only the start of
the archive: browsing a point and planning an item-level restore fetch the first chunk
or two of a dump from the vault, never the data.

The layout, as written by ``WriteHead``/``WriteToc`` of PostgreSQL's
``pg_backup_archiver.c`` and ``_WriteExtraToc`` of ``pg_backup_custom.c``:

- ``PGDMP``, then bytes: major, minor, revision, int size, offset size, format (1 =
  custom); then the compression: one byte (algorithm) from archive 1.15, else an int
  (level); then seven ints (creation time), the database name, the server version and
  the pg_dump version (strings);
- an int (entry count) and per entry: ints dump id and "had dumper"; strings table oid,
  oid, tag, desc; int section; strings defn, drop statement, copy statement, namespace,
  tablespace, table access method (1.14+); int relkind (1.16+); strings owner and
  "with oids"; dependency strings ending with a NULL string; then the data offset (one
  flag byte and ``offset size`` bytes).

An int is a sign byte then ``int size`` bytes, least significant first; a string is an
int length (-1 for NULL) then that many bytes.  Archives 1.12 (PostgreSQL 9.6) to 1.16
(PostgreSQL 17 and 18) are read; anything else is a :class:`DumpFormatError`.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

import attrs

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
OLDEST = (1, 12)
NEWEST = (1, 16)


class DumpFormatError(ValueError):
    """The stream is not a custom-format archive this reader understands."""


class TocTruncated(DumpFormatError):
    """The stream ends before the end of the table of contents (more may follow)."""


@attrs.frozen
class TocEntry:
    """One entry of an archive's table of contents (see the module docstring)."""

    dump_id: int
    desc: str
    namespace: str
    tag: str
    owner: str
    defn: str = ""
    section: int = 0
    had_dumper: bool = False
    oid: int = 0
    dependencies: tuple[int, ...] = ()

    def label(self) -> str:
        """``DESC schema.name`` for messages (schema left out when there is none)."""
        where = f"{self.namespace}.{self.tag}" if self.namespace else self.tag
        return f"{self.desc} {where}"


@attrs.frozen
class ArchiveToc:
    """The header fields and the entries of one archive, in archive order."""

    version: tuple[int, int, int]
    database: str
    server_version: str
    dump_version: str
    compression: int
    entries: tuple[TocEntry, ...]
    int_size: int = 4

    def by_id(self) -> dict[int, TocEntry]:
        return {e.dump_id: e for e in self.entries}

    def find(self, *, desc: str | None = None, namespace: str | None = None,
             tag: str | None = None) -> Iterator[TocEntry]:
        for entry in self.entries:
            if desc is not None and entry.desc != desc:
                continue
            if namespace is not None and entry.namespace != namespace:
                continue
            if tag is not None and entry.tag != tag:
                continue
            yield entry


class _Reader:
    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.int_size = 4
        self.off_size = 8

    def bytes(self, n: int) -> bytes:
        data = self._fh.read(n)
        if data is None or len(data) != n:
            raise TocTruncated("the archive ends inside its table of contents")
        return data

    def byte(self) -> int:
        return self.bytes(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        if length > 1 << 30:
            raise DumpFormatError(f"implausible string length {length} in the table of contents")
        return self.bytes(length).decode("utf-8", "replace")


def read_toc(fh: BinaryIO) -> ArchiveToc:
    """Parse the header and TOC from the start of ``fh`` (reads nothing after the TOC)."""
    r = _Reader(fh)
    if r.bytes(5) != MAGIC:
        raise DumpFormatError("not a pg_dump custom-format archive (no PGDMP signature)")
    major, minor = r.byte(), r.byte()
    revision = r.byte() if (major, minor) > (1, 0) else 0
    if not OLDEST <= (major, minor) <= NEWEST:
        raise DumpFormatError(
            f"archive version {major}.{minor} is not supported (this reader knows"
            f" {OLDEST[0]}.{OLDEST[1]} to {NEWEST[0]}.{NEWEST[1]})"
        )
    version = (major, minor)
    r.int_size = r.byte()
    r.off_size = r.byte()
    if not 1 <= r.int_size <= 8 or not 1 <= r.off_size <= 16:
        raise DumpFormatError("implausible integer or offset size in the archive header")
    if r.byte() != FORMAT_CUSTOM:
        raise DumpFormatError("the archive is not in custom format")
    compression = r.byte() if version >= (1, 15) else r.int()
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    database = r.str() or ""
    server_version = r.str() or ""
    dump_version = r.str() or ""
    count = r.int()
    if count < 0:
        raise DumpFormatError(f"implausible entry count {count}")
    entries = [_read_entry(r, version) for _ in range(count)]
    return ArchiveToc(
        version=(major, minor, revision), database=database, server_version=server_version,
        dump_version=dump_version, compression=compression, entries=tuple(entries), int_size=r.int_size,
    )


def _read_entry(r: _Reader, version: tuple[int, int]) -> TocEntry:
    dump_id = r.int()
    if dump_id <= 0:
        raise DumpFormatError(f"entry id {dump_id} out of range")
    had_dumper = bool(r.int())
    r.str()  # table oid
    oid = r.str() or "0"
    tag = r.str() or ""
    desc = r.str() or ""
    section = r.int()
    defn = r.str() or ""
    r.str()  # drop statement
    r.str()  # copy statement
    namespace = r.str() or ""
    r.str()  # tablespace
    if version >= (1, 14):
        r.str()  # table access method
    if version >= (1, 16):
        r.int()  # relkind
    owner = r.str() or ""
    r.str()  # "with oids"
    deps: list[int] = []
    while (dep := r.str()) is not None:
        try:
            deps.append(int(dep))
        except ValueError:
            raise DumpFormatError(f"malformed dependency {dep!r} of entry {dump_id}") from None
    r.byte()  # data state flag
    r.bytes(r.off_size)  # data offset
    return TocEntry(
        dump_id=dump_id, desc=desc, namespace=namespace, tag=tag, owner=owner, defn=defn,
        section=section, had_dumper=had_dumper, oid=int(oid) if oid.isdigit() else 0,
        dependencies=tuple(deps),
    )
