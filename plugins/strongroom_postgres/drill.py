"""A restore drill of a postgres point: the dumps restored into scratch databases and opened.

:func:`drill_databases` runs after the default drill (the point's files - the manifest,
``globals.sql`` and every ``databases/<db>.dump`` - restored into the scratch folder and
compared with the point, see ``Workload.drill``).  For each database of the manifest it
then:

1. restores the point's dump into a new database ``strongroom_drill_<random>`` on the
   item's server (whole, without owners and grants, as ``restore --to-database`` does);
2. counts the rows of every table the dump has data for, in the dump itself
   (``pg_restore --data-only -f -`` of the dump file restored in the scratch folder: one
   line per row of each ``COPY ... FROM stdin`` block), and in the scratch database
   (``select count(*) from only TABLE``, one query): each table's counts must match;
3. drops the scratch database, whatever happened (a drop that fails is a mismatch, naming
   the database to drop).

It never raises for what it finds: each problem is one mismatch line naming the database
(and the table).  It writes nothing on the server but the scratch databases.
"""

from __future__ import annotations

import os
import secrets
import subprocess

from strongroom import PointContext, SecretResolver, StrongroomError, start_child

from . import server as pgserver
from .conninfo import Connection
from .layout import Manifest, read_manifest
from .restore import DatabaseRestore, Request

__all__ = ["count_dump_rows", "drill_databases"]

#: Tables counted per query in the scratch database.
COUNT_BATCH = 200
_COPY = "COPY "
_FROM_STDIN = " FROM stdin;"


def count_dump_rows(pg_restore: str, dump_file: str) -> dict[str, int]:
    """Rows per table (its name as the ``COPY`` statement quotes it) in a custom-format dump."""
    argv = [pg_restore, "--data-only", "--no-owner", "-f", "-", dump_file]
    counts: dict[str, int] = {}
    proc = start_child(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        table: str | None = None
        for raw in proc.stdout:  # type: ignore[union-attr]
            if table is None:
                if raw.startswith(b"COPY ") and raw.rstrip(b"\n").endswith(_FROM_STDIN.encode()):
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    name = line[len(_COPY):-len(_FROM_STDIN)]
                    table = name.split(" (", 1)[0] if " (" in name else name
                    counts[table] = 0
            elif raw in (b"\\.\n", b"\\."):
                table = None
            else:
                counts[table] += 1
        stderr = proc.stderr.read().decode("utf-8", "replace")  # type: ignore[union-attr]
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        returncode = proc.wait()
    if returncode != 0:
        raise RuntimeError(pgserver.tool_error(stderr) or f"pg_restore exited {returncode}")
    return counts


def _count_rows(server: pgserver.Server, dbname: str, tables: list[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for start in range(0, len(tables), COUNT_BATCH):
        batch = tables[start:start + COUNT_BATCH]
        sql = "select json_build_array(" + ", ".join(f"(select count(*) from only {t})" for t in batch) + ")"
        counted.update(zip(batch, server.query(sql, dbname)))
    return counted


def _drill_one(ctx: PointContext, manifest: Manifest, conn: Connection, record, scratch: str,
               bindir: str | None) -> tuple[list[str], int]:
    """(mismatches, tables compared) of one database."""
    name = f"strongroom_drill_{secrets.token_hex(6)}"
    restore = DatabaseRestore(ctx, manifest, conn, Request(record=record, target=name, no_owner=True),
                              bindir=bindir)
    problems: list[str] = []
    tables = 0
    try:
        restore.run()
        in_dump = count_dump_rows(restore.tools.path("pg_restore"), os.path.join(scratch, *record.entry.split("/")))
        in_db = _count_rows(restore.server, name, sorted(in_dump))
        tables = len(in_dump)
        for table, rows in sorted(in_dump.items()):
            if in_db.get(table) != rows:
                problems.append(f"{record.name}: table {table}: {in_db.get(table)} row(s) in the restored"
                                f" database, {rows} in the dump")
    except (StrongroomError, RuntimeError, OSError) as exc:
        problems.append(f"{record.name}: the restore into a scratch database failed: {exc}")
    finally:
        try:
            if restore.server.database_exists(name) and not restore._drop(name):
                problems.append(f"{record.name}: the scratch database {name} could not be dropped: drop it")
        except StrongroomError as exc:
            problems.append(f"{record.name}: the scratch database {name} may be left: {exc}")
    return problems, tables


def drill_databases(ctx: PointContext, scratch: str, resolver: SecretResolver) -> tuple[list[str], str]:
    """(mismatches, the method line) of restoring every database of the point into a
    scratch database and comparing row counts (see the module docstring); *resolver*
    resolves the item's password reference."""
    manifest = read_manifest(ctx)
    conn = Connection.from_dict(ctx.item.source["connection"], resolver)
    bindir = ctx.item.source.get("bindir")
    problems: list[str] = []
    tables = 0
    for record in manifest.databases:
        found, counted = _drill_one(ctx, manifest, conn, record, scratch, bindir)
        problems += found
        tables += counted
    method = (f"{len(manifest.databases)} database(s) restored into scratch databases on {conn.describe()},"
              f" opened, and the rows of {tables} table(s) counted against the dump, then dropped")
    return problems, method
