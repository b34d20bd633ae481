"""What a sqlite recovery point holds, the manifest that describes it, and how to read both back.

The tree of a point::

    databases/                 a folder
    databases/<name>.sqlite    the consistent copy of each database: a ``file`` entry with
                               the original file's mode, owner and modification time
    manifest.json              what was backed up (below)

``<name>`` comes from the database's file name (:func:`database_names`): its stem with
anything but letters, digits, ``_`` and ``-`` replaced by ``_``, and ``-2``, ``-3``...
added when two files have the same stem.  The names never contain a dot, so no database
is called ``manifest.json``, and browse and restore paths are ``NAME`` and ``NAME/TABLE``.

The manifest is JSON::

    {"format": 1, "created": ISO time,
     "databases": [{"name", "entry", "source", "size", "page_size", "encoding", "journal",
                    "sqlite_version", "tables": [{"name", "rows"}, ...]}, ...]}

``entry`` is the copy's path in the point, ``source`` the database file it was made
from, ``size`` the copy's size, ``journal`` ``wal`` or ``rollback``, ``sqlite_version``
the version of the SQLite library that made the copy, and ``rows`` a table's row count
in the copy (None for a virtual table whose module is not available).
"""

from __future__ import annotations

import json
import os
import re
import shutil

import attrs
from strongroom import PathNotInPoint, PointView

from .errors import DatabaseNotInPoint, PointUnreadable

__all__ = [
    "DATABASES", "MANIFEST", "DatabaseRecord", "Manifest", "TableRecord", "database_names", "entry_path",
    "fetch_copy", "read_manifest",
]

MANIFEST = "manifest.json"
DATABASES = "databases"
SUFFIX = ".sqlite"
MANIFEST_FORMAT = 1

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def database_names(paths: list[str]) -> list[str]:
    """A unique name for each database file, in order, made from its file name."""
    names: list[str] = []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        base = _UNSAFE.sub("_", stem) or "database"
        name, number = base, 1
        while name in names:
            number += 1
            name = f"{base}-{number}"
        names.append(name)
    return names


def entry_path(name: str) -> str:
    """Where the copy of database ``name`` is in the point."""
    return f"{DATABASES}/{name}{SUFFIX}"


@attrs.frozen
class TableRecord:
    name: str
    rows: int | None


@attrs.frozen
class DatabaseRecord:
    """One database of a point, as the manifest describes it."""

    name: str
    entry: str
    source: str
    size: int
    page_size: int
    encoding: str
    journal: str
    sqlite_version: str
    tables: tuple[TableRecord, ...] = ()

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> DatabaseRecord:
        tables = tuple(TableRecord(t["name"], t.get("rows")) for t in doc.get("tables", ()))
        fields = {f.name for f in attrs.fields(cls)} - {"tables"}
        return cls(**{k: v for k, v in doc.items() if k in fields}, tables=tables)


@attrs.frozen
class Manifest:
    created: str
    databases: tuple[DatabaseRecord, ...]

    def to_bytes(self) -> bytes:
        doc = {"format": MANIFEST_FORMAT, "created": self.created,
               "databases": [record.to_dict() for record in self.databases]}
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, point: str) -> Manifest:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown format {doc.get('format') if isinstance(doc, dict) else doc!r}")
            return cls(str(doc["created"]), tuple(DatabaseRecord.from_dict(d) for d in doc["databases"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PointUnreadable(point=point, reason=f"malformed {MANIFEST} ({exc})") from None

    def database(self, name: str, point: str) -> DatabaseRecord:
        """The record of database ``name``; :class:`DatabaseNotInPoint` lists the others."""
        for record in self.databases:
            if record.name == name:
                return record
        known = ", ".join(r.name for r in self.databases) or "none"
        raise DatabaseNotInPoint(name=name, point=point, known=known)


def read_manifest(ctx: PointView) -> Manifest:
    """The manifest of the point ``ctx`` reads."""
    try:
        data = ctx.read_bytes(MANIFEST)
    except PathNotInPoint:
        raise PointUnreadable(point=ctx.point.short_id, reason=f"it has no {MANIFEST}") from None
    return Manifest.from_bytes(data, ctx.point.short_id)


def fetch_copy(ctx: PointView, record: DatabaseRecord, folder: str) -> str:
    """Copy the stored database of ``record`` out of the vault into ``folder``; its path.

    The content is read through the vault, so damaged data raises
    :class:`strongroom.IntegrityError` instead of giving wrong bytes.
    """
    path = os.path.join(folder, f"{record.name}{SUFFIX}")
    with ctx.open(record.entry) as stored, open(path, "wb") as out:
        shutil.copyfileobj(stored, out, 1024 * 1024)
    return path
