"""A consistent copy of a live SQLite database, made with SQLite's online backup API.

:func:`copy_database` opens the database read-only, starts a read transaction on it and
copies every page into a new file with ``sqlite3.Connection.backup`` inside that
transaction, so the copy is the database as one committed transaction left it, even
while other processes write to it:

- in WAL mode the read transaction is a snapshot; writers go on during the copy, and
  the copy holds the WAL's committed frames (nothing needs a checkpoint first);
- in rollback-journal mode the read transaction holds a shared lock: writers wait for
  the copy to end (they need a busy timeout, as every concurrent SQLite writer does),
  and a copy that cannot get the lock within :data:`BUSY_TIMEOUT` fails.

The copy is byte for byte the database's pages, header included (so a WAL database's
copy is a WAL database); an unchanged database gives an identical copy each time,
which is what makes an unchanged re-backup deduplicate.  The database itself is never
written, though SQLite may create its ``-wal`` and ``-shm`` files beside a WAL database
as any reader does.  :func:`describe_copy` reads the copy for the manifest.
"""

from __future__ import annotations

import os
import sqlite3

from .errors import CopyFailed
from .layout import DatabaseRecord, TableRecord, entry_path
from .schema import file_uri, objects, open_copy, row_count

__all__ = ["BUSY_TIMEOUT", "copy_database", "describe_copy"]

#: seconds to wait for a writer's lock before the copy fails
BUSY_TIMEOUT = 60.0


def copy_database(source: str, copy: str) -> None:
    """Write a consistent copy of the database file ``source`` to the new file ``copy``."""
    try:
        src = sqlite3.connect(file_uri(source, mode="ro"), uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise CopyFailed(path=source, reason=str(exc)) from None
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the snapshot or shared lock
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise CopyFailed(path=source, reason=str(exc)) from None
    finally:
        src.close()  # ends the read transaction


def describe_copy(copy: str, name: str, source: str) -> DatabaseRecord:
    """The manifest record of the copy ``copy`` of database ``source``, called ``name``."""
    with open(copy, "rb") as fh:
        header = fh.read(100)
    conn = open_copy(copy)
    try:
        tables = tuple(TableRecord(obj.name, row_count(conn, obj.name))
                       for obj in objects(conn) if obj.type == "table")
        return DatabaseRecord(
            name=name, entry=entry_path(name), source=source, size=os.path.getsize(copy),
            page_size=conn.execute("PRAGMA page_size").fetchone()[0],
            encoding=conn.execute("PRAGMA encoding").fetchone()[0],
            journal="wal" if header[18:20] == b"\x02\x02" else "rollback",
            sqlite_version=sqlite3.sqlite_version, tables=tables,
        )
    except sqlite3.Error as exc:
        raise CopyFailed(path=source, reason=f"the copy cannot be read ({exc})") from None
    finally:
        conn.close()
