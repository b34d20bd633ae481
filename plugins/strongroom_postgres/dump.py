"""Backup: the entries of a postgres point, each streamed from a PostgreSQL tool.

:func:`backup_entries` asks the server for its version and databases, picks client
tools that can dump it, and yields (see :mod:`.layout`) ``manifest.json``,
``globals.sql``, ``databases/<db>.dump`` and, after all the dumps,
``databases/<db>.blocks`` (where each data block of the dump lies, noted while the dump
streams through: :mod:`.blockmap`; parallel restores read it).  The dumps are STREAM entries whose
``open()`` starts ``pg_dump -Fc -Z0`` and returns its standard output: the engine
chunks it as it comes, so nothing is staged on disk and memory does not grow with the
database.  Uncompressed output keeps unchanged tables byte-identical from one day to
the next, so their chunks deduplicate; the vault compresses each chunk (zstd).

Each ``pg_dump`` takes its own snapshot, so every database is consistent by itself
(the point is "application-consistent"); databases are not consistent with each other.
A tool that exits with an error raises :class:`~strongroom_postgres.errors.DumpFailed` when its
stream ends, which fails the backup: no point is written.  The engine may run two
dumps at a time (its reader threads).  The tools run as children tied to strongroom
(:func:`strongroom.start_child`): they get SIGTERM when strongroom ends, however it
ends, and when a signal interrupts the backup.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import tempfile
import time
from typing import Callable, Iterator

from strongroom import DIR, STREAM, BackupContext, Entry, FolderSource, StreamSource, start_child

from . import server as pgserver
from .blockmap import MappedDump, blocks_path
from .conninfo import Connection
from .errors import DatabaseNotFound, DumpFailed
from .layout import CONSISTENCY, DATABASES, GLOBALS, MANIFEST, MANIFEST_FORMAT, dump_path
from .server import Server, Toolset


class ToolStream(io.RawIOBase):
    """The standard output of a child process, read as a stream.

    At the end of the output the process is waited for; a non-zero exit raises the
    error ``failure(stderr_text)`` builds.  Closing early kills the process.
    """

    def __init__(self, argv: list[str], env: dict[str, str], failure: Callable[[str], Exception]) -> None:
        super().__init__()
        self._stderr = tempfile.TemporaryFile()
        self._failure = failure
        self._checked = False
        self._proc = start_child(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=self._stderr, bufsize=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self._proc.stdout.readinto(buffer)  # type: ignore[union-attr]
        if not n:
            self._check()
            return 0
        return n

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._proc.wait() != 0:
            self._stderr.seek(0)
            raise self._failure(self._stderr.read(64 * 1024).decode("utf-8", "replace"))

    def close(self) -> None:
        if not self.closed:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()  # type: ignore[union-attr]
            self._stderr.close()
        super().close()


def _entry(name: str, kind: str = STREAM) -> Entry:
    now = time.time_ns()
    return Entry(name=name, type=kind, mode=0o700 if kind == DIR else 0o600,
                 uid=os.getuid(), gid=os.getgid(), mtime_ns=now, ctime_ns=now)


def select_databases(info: dict, wanted: list[str], conn: Connection, warnings: list[str]) -> list[dict]:
    """The databases to dump: ``wanted`` (all of them must exist) or every one."""
    by_name = {d["name"]: d for d in info["databases"]}
    for name in wanted:
        if name not in by_name:
            raise DatabaseNotFound(database=name, server=conn.describe())
    chosen = [by_name[n] for n in wanted] if wanted else list(by_name.values())
    out = []
    for db in chosen:
        if not db.get("allow_connections", True):
            warnings.append(f"database {db['name']}: not backed up (it does not allow connections)")
            continue
        out.append(db)
    return out


def _record(db: dict) -> dict:
    row = db.get("row") or {}
    return {
        "name": db["name"], "entry": dump_path(db["name"]), "size": db.get("size"),
        "owner": db.get("owner", ""), "encoding": db.get("encoding", ""),
        "collate": row.get("datcollate", ""), "ctype": row.get("datctype", ""),
        "locale_provider": row.get("datlocprovider", "c"),
        "icu_locale": row.get("daticulocale") or row.get("datlocale"),
    }


def manifest(info: dict, tools: Toolset, conn: Connection, databases: list[dict]) -> bytes:
    doc = {
        "format": MANIFEST_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
        "consistency": f"{CONSISTENCY}: each database is dumped from its own snapshot",
        "server": {"version": info["version"], "version_num": info["version_num"],
                   "address": conn.describe()},
        "tools": {"pg_dump": tools.version, "bindir": tools.bindir},
        "globals": {"entry": GLOBALS, "role_passwords": bool(info.get("superuser"))},
        "databases": [_record(db) for db in databases],
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def backup_entries(ctx: BackupContext, conn: Connection, source: dict) -> Iterator[object]:
    """The source entries of a new point (see the module docstring)."""
    probe = Server(conn, pgserver.first_toolset(source.get("bindir")))
    info = probe.info()
    tools = pgserver.for_server(info["version_num"], info["version"], conn.describe(), source.get("bindir"))
    databases = select_databases(info, list(source.get("databases") or ()), conn, ctx.warnings)
    # the dumps' sizes are not known before they are read: the databases' is the estimate
    # the progress line counts toward (a dump has no indexes: it is often smaller)
    ctx.progress(total=sum(db.get("size") or 0 for db in databases))
    env = conn.environment()
    content = manifest(info, tools, conn, databases)
    yield StreamSource(MANIFEST, _entry(MANIFEST), lambda: io.BytesIO(content))

    globals_argv = [tools.path("pg_dumpall"), "--globals-only", "--no-password",
                    f"--dbname={conn.conninfo()}", f"--database={probe.maintenance_db()}"]
    if not info.get("superuser"):
        globals_argv.append("--no-role-passwords")  # pg_authid is for superusers only

    def globals_failed(stderr: str) -> Exception:
        return DumpFailed(tool="pg_dumpall", what="the roles and tablespaces", reason=pgserver.tool_error(stderr))

    yield StreamSource(GLOBALS, _entry(GLOBALS), lambda: ToolStream(globals_argv, env, globals_failed))
    yield FolderSource(DATABASES, _entry(DATABASES, DIR))
    maps: list[tuple[str, MappedDump]] = []
    for db in databases:
        name = db["name"]
        argv = [tools.path("pg_dump"), "--format=custom", "--compress=0", "--no-password",
                f"--dbname={conn.conninfo(name)}"]

        def failed(stderr: str, name: str = name) -> Exception:
            return DumpFailed(tool="pg_dump", what=f"database '{name}'", reason=pgserver.tool_error(stderr))

        path = dump_path(name)
        mapped = MappedDump()
        maps.append((blocks_path(path), mapped))
        yield StreamSource(path, _entry(path.rsplit("/", 1)[1]),
                           lambda argv=argv, failed=failed, mapped=mapped:
                           mapped.open(lambda: ToolStream(argv, env, failed)))
    # after all the dumps, so that the reader threads dump in parallel while a map waits for its dump
    for path, mapped in maps:
        yield StreamSource(path, _entry(path.rsplit("/", 1)[1]), lambda mapped=mapped: io.BytesIO(mapped.map_bytes()))
