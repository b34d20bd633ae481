"""Item-level access to a sqlite point: browse inside the databases, restore one table.

Paths are ``DB`` and ``DB/TABLE`` (everything after the first ``/`` is the table's name,
which may hold any character).  Browse lists:

- ``""``: the databases (from the manifest) and ``manifest.json``;
- ``DB``: its tables with their row counts, views, indexes and triggers;
- ``DB/NAME``: the columns of a table or view; the SQL of an index or trigger.

Below the top, and to restore a table, the stored copy of the database is fetched from
the vault into a temporary folder (:func:`.layout.fetch_copy`) and opened read-only;
the live database is never read.

:func:`restore_table` writes one table into ``DIR/<DB>.<TABLE>.sql`` or
``DIR/<DB>.<TABLE>.sqlite`` (a table name's characters other than letters, digits,
``_`` and ``-`` become ``_``), and refuses to replace an existing file without
``force``:

- ``sql``: the table's CREATE statement, its rows as INSERTs, its AUTOINCREMENT counter,
  its indexes and triggers, in one transaction: ``sqlite3 new.db < file.sql`` loads it;
- ``sqlite``: a new database holding only that table, with its rows, counter, indexes
  and triggers (copied with ``INSERT ... SELECT``, values exactly as stored).

A virtual table is not restored on its own (its content lives in its module's tables).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import tempfile
import time
from typing import Iterator

import attrs
from strongroom import FILE, BrowseItem, Entry, PointContext, RestoreResult, UsageError

from .errors import TableNotInDatabase, TableNotRestorable, TargetExists
from .layout import MANIFEST, DatabaseRecord, Manifest, fetch_copy
from .schema import SchemaObject, columns, file_uri, objects, open_copy, quote_name, row_count

__all__ = ["browse", "restore_table", "split_path"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def split_path(path: str) -> tuple[str, str]:
    """``DB/TABLE`` -> (DB, TABLE); ``DB`` -> (DB, "")."""
    database, _, name = path.strip().strip("/").partition("/")
    return database, name


@contextlib.contextmanager
def stored_database(ctx: PointContext, record: DatabaseRecord) -> Iterator[tuple[sqlite3.Connection, str]]:
    """The stored copy of ``record`` fetched into a temporary folder: (read-only connection, its path)."""
    with tempfile.TemporaryDirectory(prefix="strongroom-sqlite-") as folder:
        copy = fetch_copy(ctx, record, folder)
        conn = open_copy(copy)
        try:
            yield conn, copy
        finally:
            conn.close()


# --- browse ----------------------------------------------------------------------------


def browse(ctx: PointContext, manifest: Manifest, path: str) -> list[BrowseItem]:
    database, name = split_path(path)
    if not database:
        return _top(ctx, manifest)
    if database == MANIFEST and not name:
        return [BrowseItem.from_entry(MANIFEST, ctx.lookup(MANIFEST))]
    record = manifest.database(database, ctx.point.short_id)
    with stored_database(ctx, record) as (conn, _):
        if not name:
            return _objects(conn, record)
        return _object(conn, record, _find(conn, record, name, ctx.point.short_id, tables_only=False))


def _top(ctx: PointContext, manifest: Manifest) -> list[BrowseItem]:
    rows = []
    for record in manifest.databases:
        entry = ctx.lookup(record.entry)
        detail = f"{len(record.tables)} tables, {record.journal} journal, from {record.source}"
        rows.append(BrowseItem(path=record.name, name=record.name, type="database", size=record.size,
                               mode=entry.mode, owner=f"{entry.user or entry.uid}:{entry.group or entry.gid}",
                               mtime_ns=entry.mtime_ns, detail=detail))
    rows.append(BrowseItem.from_entry(MANIFEST, ctx.lookup(MANIFEST)))
    return rows


def _objects(conn: sqlite3.Connection, record: DatabaseRecord) -> list[BrowseItem]:
    counts = {table.name: table.rows for table in record.tables}
    rows = []
    for obj in objects(conn):
        path = f"{record.name}/{obj.name}"
        if obj.type == "table":
            count = counts.get(obj.name, row_count(conn, obj.name))
            detail = "rows unknown" if count is None else f"{count} row" + ("" if count == 1 else "s")
            rows.append(BrowseItem(path=path, name=obj.name, type="virtual table" if obj.virtual else "table",
                                   detail=detail))
        else:
            detail = "" if obj.type == "view" else f"on {obj.table}"
            rows.append(BrowseItem(path=path, name=obj.name, type=obj.type, detail=detail))
    return rows


def _object(conn: sqlite3.Connection, record: DatabaseRecord, obj: SchemaObject) -> list[BrowseItem]:
    path = f"{record.name}/{obj.name}"
    if obj.type in ("table", "view"):
        return [BrowseItem(path=path, name=col.name, type="column", detail=col.detail)
                for col in columns(conn, obj.name)]
    return [BrowseItem(path=path, name=obj.name, type=obj.type, detail=" ".join((obj.sql or "").split()))]


def _find(conn: sqlite3.Connection, record: DatabaseRecord, name: str, point: str, *,
          tables_only: bool) -> SchemaObject:
    found = [obj for obj in objects(conn) if obj.name == name and (obj.type == "table" or not tables_only)]
    if not found:
        known = ", ".join(obj.name for obj in objects(conn) if obj.type == "table") or "none"
        raise TableNotInDatabase(table=name, database=record.name, point=point, known=known)
    return found[0]


# --- restore one table -----------------------------------------------------------------


def restore_table(ctx: PointContext, manifest: Manifest, spec: str, fmt: str, target: str,
                  force: bool) -> RestoreResult:
    """Write the table ``spec`` (``DB/TABLE``) under ``target`` as ``fmt`` (see the module docstring)."""
    database, table = split_path(spec)
    if not table:
        raise UsageError(message=f"--sqlite-table takes DB/TABLE, not '{spec}'")
    point = ctx.point.short_id
    record = manifest.database(database, point)
    filename = f"{record.name}.{_UNSAFE.sub('_', table)}.{fmt}"
    destination = os.path.join(target, filename)
    if os.path.lexists(destination) and not force:
        raise TargetExists(path=destination)
    with stored_database(ctx, record) as (conn, copy):
        obj = _find(conn, record, table, point, tables_only=True)
        if obj.virtual:
            raise TableNotRestorable(table=table, database=record.name, why="a virtual table")
        made = os.path.join(os.path.dirname(copy), filename)
        if fmt == "sql":
            rows = _write_sql(conn, obj, made, f"table {quote_name(table)} of database '{record.name}',"
                                                f" recovery point {point}")
        else:
            rows = _write_database(conn, copy, obj, made, record.page_size)
        entry = Entry(name=filename, type=FILE, mode=0o600, uid=os.getuid(), gid=os.getgid(),
                      mtime_ns=time.time_ns(), size=os.path.getsize(made))
        result = ctx.write_entries(target, [(filename, entry, _read(made))])
    count = f"{rows} row" + ("" if rows == 1 else "s")
    summary = f"Restored table '{table}' of database '{record.name}' ({count}) as {destination}"
    return attrs.evolve(result, summary=summary)


def _read(path: str) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while data := fh.read(1024 * 1024):
            yield data


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _counter(conn: sqlite3.Connection, table: str) -> int | None:
    """The table's AUTOINCREMENT counter, if it has one."""
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    except sqlite3.OperationalError:  # no table of the database uses AUTOINCREMENT
        return None
    return None if row is None else int(row[0])


def _schema_after_rows(conn: sqlite3.Connection, table: SchemaObject, seq: int | None) -> list[str]:
    """What follows the rows: the counter, then the indexes and triggers of ``table``."""
    statements = []
    if seq is not None:
        statements.append(f"DELETE FROM sqlite_sequence WHERE name = {_literal(table.name)}")
        statements.append(f"INSERT INTO sqlite_sequence(name, seq) VALUES({_literal(table.name)}, {seq})")
    statements += [obj.sql for obj in objects(conn)
                   if obj.type in ("index", "trigger") and obj.table == table.name and obj.sql]
    return statements


def _write_sql(conn: sqlite3.Connection, table: SchemaObject, path: str, title: str) -> int:
    """The table as an SQL script at ``path``; the number of rows written."""
    names = [col.name for col in columns(conn, table.name) if col.hidden == 0]  # generated columns are computed
    insert = f"INSERT INTO {quote_name(table.name)}({', '.join(map(quote_name, names))}) VALUES("
    select = f"SELECT {', '.join(f'quote({quote_name(n)})' for n in names)} FROM {quote_name(table.name)}"
    conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")  # text as stored, even if not UTF-8
    rows = 0
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(f"-- {title}\nPRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n{table.sql};\n")
        for values in conn.execute(select):
            out.write(f"{insert}{','.join(values)});\n")
            rows += 1
        for statement in _schema_after_rows(conn, table, _counter(conn, table.name)):
            out.write(f"{statement};\n")
        out.write("COMMIT;\n")
    return rows


def _write_database(conn: sqlite3.Connection, copy: str, table: SchemaObject, path: str, page_size: int) -> int:
    """A new database at ``path`` holding only ``table`` of ``copy`` (open as ``conn``); the rows copied."""
    names = ", ".join(quote_name(col.name) for col in columns(conn, table.name) if col.hidden == 0)
    new = sqlite3.connect(file_uri(path), uri=True, isolation_level=None)  # a URI, so ATTACH takes one
    try:
        new.execute(f"PRAGMA page_size = {int(page_size)}")
        new.execute("ATTACH DATABASE ? AS stored", (file_uri(copy, immutable="1"),))
        new.execute("BEGIN")
        new.execute(table.sql)
        rows = new.execute(f"INSERT INTO main.{quote_name(table.name)}({names})"
                           f" SELECT {names} FROM stored.{quote_name(table.name)}").rowcount
        for statement in _schema_after_rows(conn, table, _counter(conn, table.name)):
            new.execute(statement)
        new.execute("COMMIT")
        new.execute("DETACH DATABASE stored")
    finally:
        new.close()
    return rows
