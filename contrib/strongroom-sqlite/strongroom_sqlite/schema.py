"""What a SQLite database holds: its tables, views, indexes and triggers, columns, row counts.

Used only on copies this package made (the fresh copy of a backup, a copy fetched from
the vault), never on a live database: :func:`open_copy` opens a file as *immutable*, so
SQLite takes no lock and writes nothing beside it (no journal, no ``-wal`` or ``-shm``
file), whatever journal mode the copy's header names.
"""

from __future__ import annotations

import sqlite3
import urllib.parse

import attrs

__all__ = ["Column", "SchemaObject", "columns", "file_uri", "objects", "open_copy", "quote_name", "row_count"]


def quote_name(name: str) -> str:
    """``name`` as an SQL identifier: in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def file_uri(path: str, **params: str) -> str:
    """A SQLite ``file:`` URI for ``path`` with query ``params`` (``mode=ro``, ``immutable=1``)."""
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"file:{urllib.parse.quote(path)}" + (f"?{query}" if query else "")


def open_copy(path: str) -> sqlite3.Connection:
    """A read-only connection to a copy of a database (see the module docstring)."""
    return sqlite3.connect(file_uri(path, immutable="1"), uri=True)


@attrs.frozen
class SchemaObject:
    """One row of ``sqlite_master``: a table, view, index or trigger made by a user."""

    type: str
    name: str
    table: str
    sql: str | None

    @property
    def virtual(self) -> bool:
        return self.type == "table" and (self.sql or "").upper().startswith("CREATE VIRTUAL TABLE")


@attrs.frozen
class Column:
    """One column of a table or view (``PRAGMA table_xinfo``)."""

    name: str
    type: str
    notnull: bool
    default: str | None
    pk: int
    hidden: int  # 0 an ordinary column, 1 hidden (virtual tables), 2 or 3 generated

    @property
    def detail(self) -> str:
        bits = [self.type or "no type"]
        if self.pk:
            bits.append("primary key")
        if self.notnull:
            bits.append("not null")
        if self.default is not None:
            bits.append(f"default {self.default}")
        if self.hidden in (2, 3):
            bits.append("generated")
        return ", ".join(bits)


def objects(conn: sqlite3.Connection) -> list[SchemaObject]:
    """The tables, views, indexes and triggers, by type then name (SQLite's own left out)."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE type IN ('table', 'view', 'index', 'trigger') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, name"
    )
    return [SchemaObject(*row) for row in rows]


def columns(conn: sqlite3.Connection, name: str) -> list[Column]:
    """The columns of table or view ``name``, in order."""
    rows = conn.execute(f"PRAGMA table_xinfo({quote_name(name)})")
    return [Column(name=r[1], type=r[2], notnull=bool(r[3]), default=r[4], pk=r[5], hidden=r[6]) for r in rows]


def row_count(conn: sqlite3.Connection, table: str) -> int | None:
    """The number of rows of ``table``; None if it cannot be read (a virtual table whose
    module this SQLite does not have)."""
    try:
        return conn.execute(f"SELECT count(*) FROM {quote_name(table)}").fetchone()[0]
    except sqlite3.OperationalError:
        return None
