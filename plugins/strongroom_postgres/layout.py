"""What a postgres recovery point holds, and how to read it back.

The tree of a point (every entry is a STREAM: content without file-system metadata)::

    manifest.json          the server version, the tools, the databases and their sizes
    globals.sql            pg_dumpall --globals-only: roles and tablespaces (plain SQL)
    databases/<db>.dump    pg_dump -Fc -Z0 of each database (custom format, uncompressed)

A database name becomes an entry name with ``%`` and ``/`` percent-encoded, plus
``.dump``.  The manifest is JSON::

    {"format": 1, "created": ISO time, "consistency": text,
     "server": {"version", "version_num", "address"},
     "tools": {"pg_dump", "bindir"},
     "globals": {"entry", "role_passwords"},
     "databases": [{"name", "entry", "size", "owner", "encoding", "collate", "ctype",
                    "locale_provider", "icu_locale"}, ...]}

``size`` is the database's size on the server (``pg_database_size``); the dump's size is
the size of its tree entry.
"""

from __future__ import annotations

import json

import attrs
from strongroom import Entry, PathNotInPoint, PointView, UsageError

from .errors import DumpUnreadable, NotInDump

MANIFEST = "manifest.json"
GLOBALS = "globals.sql"
DATABASES = "databases"
DUMP_SUFFIX = ".dump"
MANIFEST_FORMAT = 1
#: What a logical point is: each database dumped from its own snapshot.
CONSISTENCY = "application-consistent"


def quote_name(name: str) -> str:
    """A PostgreSQL name as one path component (``%`` and ``/`` percent-encoded)."""
    return name.replace("%", "%25").replace("/", "%2F")


def unquote_name(text: str) -> str:
    return text.replace("%2F", "/").replace("%2f", "/").replace("%25", "%")


def dump_path(database: str) -> str:
    return f"{DATABASES}/{quote_name(database)}{DUMP_SUFFIX}"


@attrs.frozen
class DatabaseRecord:
    """One database of a point, as the manifest describes it."""

    name: str
    entry: str
    size: int | None = None
    owner: str = ""
    encoding: str = ""
    collate: str = ""
    ctype: str = ""
    locale_provider: str = ""
    icu_locale: str | None = None

    @classmethod
    def from_dict(cls, doc: dict) -> "DatabaseRecord":
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in fields})


@attrs.frozen
class Manifest:
    doc: dict

    @property
    def databases(self) -> list[DatabaseRecord]:
        return [DatabaseRecord.from_dict(d) for d in self.doc.get("databases", [])]

    @property
    def server_version(self) -> str:
        return str(self.doc.get("server", {}).get("version", ""))

    @property
    def server_version_num(self) -> int:
        return int(self.doc.get("server", {}).get("version_num") or 0)

    @property
    def dump_version(self) -> str:
        return str(self.doc.get("tools", {}).get("pg_dump", ""))

    def database(self, name: str | None, point: str) -> DatabaseRecord:
        """The database ``name``, or the only one when ``name`` is None."""
        records = self.databases
        known = ", ".join(r.name for r in records) or "none"
        if name is None:
            if len(records) == 1:
                return records[0]
            raise UsageError(message=f"recovery point {point} holds the databases {known}:"
                             " pass --database NAME")
        for record in records:
            if record.name == name:
                return record
        raise NotInDump(kind="Database", name=name, where=f"recovery point {point} (it has: {known})")


def read_manifest(ctx: PointView) -> Manifest:
    try:
        data = ctx.read_bytes(MANIFEST)
    except PathNotInPoint:
        raise DumpUnreadable(database="(all)", point=ctx.point.short_id,
                             reason=f"the point has no {MANIFEST}") from None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise DumpUnreadable(database="(all)", point=ctx.point.short_id,
                             reason=f"malformed {MANIFEST} ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise DumpUnreadable(database="(all)", point=ctx.point.short_id,
                             reason=f"{MANIFEST} has an unknown format")
    return Manifest(doc)


def dump_entry(ctx: PointView, record: DatabaseRecord) -> Entry:
    try:
        entry = ctx.lookup(record.entry)
    except PathNotInPoint:
        entry = None
    if entry is None or not entry.has_content:
        raise DumpUnreadable(database=record.name, point=ctx.point.short_id,
                             reason=f"the point has no {record.entry}")
    return entry
