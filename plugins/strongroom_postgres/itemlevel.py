"""Item-level restore from a physical point: a database, schema or table from any moment.

``strongroom restore ITEM[@POINT] [--to-time TS | ...] --database DB [--schema S]
[--table T] --to-database NAME`` on a physical item:

1. restores the cluster as of the target into a scratch folder (:mod:`.pitr`: the base
   backup, recovery through ``strongroom wal get``) and starts it on a free port, with
   its socket in that folder;
2. dumps database ``DB`` from it (``pg_dump -Fc -Z0`` into the scratch folder);
3. restores from that dump exactly as from a logical point (:mod:`.restore`: the whole
   database, or schemas and tables complete, ``--force``, ``--no-owner``) into
   ``--to-database`` on the item's server (or the one ``--host``/``--port`` name);
4. stops the scratch server and removes the folder, whatever happened.

The dump is read through :class:`LocalDump`, which gives the logical restore the few
point methods it uses, over the local file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import attrs
from strongroom import FILE, Entry, RestoreResult, run_child

from . import server as pgserver
from .conninfo import Connection
from .dump import manifest as manifest_doc
from .errors import DumpFailed
from .layout import Manifest, dump_path
from .physical import cluster_version


class _File(io.FileIO):
    chunks_fetched = 0


@attrs.define
class LocalDump:
    """The dump of one database in a local file, read as a point's entry."""

    point: Any
    entry_path: str
    file: str

    def lookup(self, path: str) -> Entry:
        size = os.path.getsize(self.file)
        return Entry(name=path.rsplit("/", 1)[-1], type=FILE, mode=0o600, size=size, chunks=(b"local",))

    def open(self, what) -> _File:
        return _File(self.file, "rb")

    def write_stream(self, what, out, *, progress=None) -> tuple[int, bool]:
        done = 0
        with open(self.file, "rb") as fh:
            while True:
                data = fh.read(1 << 20)
                if not data:
                    return done, True
                try:
                    out.write(data)
                except BrokenPipeError:
                    return done, False
                done += len(data)
                if progress:
                    progress(done)

    def restore_paths(self, target: str, paths) -> RestoreResult:
        from strongroom import RestoreStats

        where = os.path.join(target, *self.entry_path.split("/"))
        os.makedirs(os.path.dirname(where), exist_ok=True)
        shutil.copyfile(self.file, where)
        return RestoreResult(RestoreStats(files=1, bytes_written=os.path.getsize(where)), (), (), ())

    def report_progress(self, stats) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def restore_items(ctx, options: dict[str, Any], secrets, physical) -> RestoreResult:
    """See the module docstring; ``physical(data_dir, options)`` restores and starts the cluster."""
    from .restore import Request, restore_database

    database = options.get("database")
    if not database:
        from strongroom import UsageError

        raise UsageError(message="restoring from a physical point into a server needs --database DB"
                                 " (the database of the cluster to take)")
    scratch = tempfile.mkdtemp(prefix="strongroom-pitr-")
    data = os.path.join(scratch, "data")
    base = Connection.from_dict(ctx.item.source["connection"], secrets)
    user = base.to_dict().get("params", {}).get("user")
    scratch_conn = Connection.from_options({"host": scratch, "port": str(_free_port()), **({"user": user} if user else {})},
                                           base=base)
    try:
        physical(data, {**options, "start": True, "host": scratch, "port": scratch_conn.to_dict()["params"]["port"],
                        "to_database": None, "database": None, "schemas": (), "tables": ()})
        tools = pgserver.for_server(*cluster_version(data), scratch_conn.describe(),
                                    options.get("bindir") or ctx.item.source.get("bindir"))
        probe = pgserver.Server(scratch_conn, tools)
        info = probe.info()
        chosen = [db for db in info["databases"] if db["name"] == database]
        if not chosen:
            from .errors import DatabaseNotFound

            raise DatabaseNotFound(database=database, server=f"the cluster restored from {ctx.item.name}")
        dump = os.path.join(scratch, "db.dump")
        done = run_child([tools.path("pg_dump"), "--format=custom", "--compress=0", "--no-password",
                          f"--dbname={scratch_conn.conninfo(database)}", f"--file={dump}"],
                         env=scratch_conn.environment(), capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DumpFailed(tool="pg_dump", what=f"database '{database}' of the restored cluster",
                             reason=pgserver.tool_error(done.stderr.decode("utf-8", "replace")))
        manifest = Manifest(json.loads(manifest_doc(info, tools, scratch_conn, chosen)))
        record = manifest.database(database, ctx.point.short_id)
        local = LocalDump(ctx.point, dump_path(database), dump)
        conn = Connection.from_options(options, base=base)
        request = Request(record=record, target=str(options["to_database"]),
                          schemas=tuple(dict.fromkeys(options.get("schemas") or ())),
                          tables=tuple(dict.fromkeys(options.get("tables") or ())),
                          force=bool(options.get("force")), no_owner=bool(options.get("no_owner")),
                          jobs=int(options.get("jobs") or 1))
        result = restore_database(local, manifest, conn, request, options.get("bindir") or ctx.item.source.get("bindir"))
        return attrs.evolve(result, summary=(result.summary or "") + " (from the cluster as restored"
                            + (f" to {_what(options)})" if _what(options) else " to the end of the archive)"))
    finally:
        stop_server(data)
        shutil.rmtree(scratch, ignore_errors=True)


def _what(options: dict[str, Any]) -> str:
    for key in ("time", "lsn", "xid", "name"):
        if options.get(f"to_{key}"):
            return f"{key} {options[f'to_{key}']}"
    return ""


def stop_server(data: str, *, wait: float = 60.0) -> None:
    """Fast shutdown (SIGINT to the postmaster named in ``postmaster.pid``) of the server of
    data directory ``data``, if it runs; SIGKILL if it is still there after ``wait`` seconds."""
    try:
        with open(os.path.join(data, "postmaster.pid")) as fh:
            pid = int(fh.readline())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
