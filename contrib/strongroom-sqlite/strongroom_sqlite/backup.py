"""Backup: the entries of a sqlite point (see :mod:`.layout`), from fresh copies of the databases.

:func:`backup_entries` copies each database of the item into a new temporary folder
(:func:`.snapshot.copy_database`), describes the copies in the manifest, and yields in
pre-order ``databases/``, one ``databases/<name>.sqlite`` for each database, then
``manifest.json``.  Each database is consistent by itself (the point is
``application-consistent``); databases are copied one after the other, not at one
instant.  A database that cannot be copied fails the backup: no point is made.

Each copy is a :class:`strongroom.StreamSource` of type ``file``: the entry carries the
database file's mode, owner and modification time, so a whole restore gives back the
file as it was, and the time the copy was made as change time (``ctime_ns``), so that
the entry never looks like the previous point's and the copy is always read.  The
database file's own size and times say nothing about its content: a WAL database
changes in its ``-wal`` file first.  Unchanged content still costs nothing: an
unchanged database gives a byte-identical copy, whose chunks are already in the vault.

The copies need room in the temporary folder (``$TMPDIR``) for every database at once.
Each is opened as it is yielded, and the folder is removed in the generator's
``finally``: the backup engine reads entries in its own threads, possibly after it has
taken the last entry from this generator, and an open file stays readable after its
name is removed.
"""

from __future__ import annotations

import datetime as dt
import grp
import io
import os
import pwd
import shutil
import tempfile
import time
from typing import BinaryIO, Callable, Iterator

from strongroom import DIR, FILE, STREAM, BackupContext, Entry, FolderSource, SourceEntry, StreamSource

from .errors import CopyFailed
from .layout import DATABASES, MANIFEST, Manifest, database_names
from .snapshot import copy_database, describe_copy

__all__ = ["backup_entries"]


def backup_entries(ctx: BackupContext) -> Iterator[SourceEntry]:
    """The source entries of a new point of ``ctx.item`` (see the module docstring)."""
    paths = list(ctx.item.source["databases"])
    workdir = tempfile.mkdtemp(prefix="strongroom-sqlite-")
    try:
        records, entries = [], []
        for name, path in zip(database_names(paths), paths):
            stat = _stat(path)
            copy = os.path.join(workdir, f"{name}.sqlite")
            copy_database(path, copy)
            records.append(describe_copy(copy, name, path))
            entries.append((copy, _copy_entry(records[-1].entry, stat, copy)))
        now = time.time_ns()
        created = dt.datetime.fromtimestamp(now / 1e9, dt.timezone.utc).isoformat(timespec="seconds")
        manifest = Manifest(created, tuple(records)).to_bytes()
        yield FolderSource(DATABASES, Entry(name=DATABASES, type=DIR, mode=0o700, mtime_ns=now))
        for record, (copy, entry) in zip(records, entries):
            yield StreamSource(record.entry, entry, _opener(open(copy, "rb")))
        yield StreamSource(MANIFEST, Entry(name=MANIFEST, type=STREAM, mode=0o600, mtime_ns=now, size=len(manifest)),
                           lambda: io.BytesIO(manifest))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise CopyFailed(path=path, reason=exc.strerror or str(exc)) from None


def _opener(handle: BinaryIO) -> Callable[[], BinaryIO]:
    """An opener that gives the file already open (the engine reads and closes it)."""
    return lambda: handle


def _copy_entry(path: str, stat: os.stat_result, copy: str) -> Entry:
    """The entry of a database's copy: the database file's metadata, the copy's size, and
    the time the copy was made as its change time."""
    return Entry(
        name=path.rpartition("/")[2], type=FILE, mode=stat.st_mode & 0o7777,
        uid=stat.st_uid, gid=stat.st_gid, user=_user(stat.st_uid), group=_group(stat.st_gid),
        mtime_ns=stat.st_mtime_ns, ctime_ns=time.time_ns(), size=os.path.getsize(copy),
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""
