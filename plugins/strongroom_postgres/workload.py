"""The ``postgres`` workload: the databases of one PostgreSQL server.

An item is one server: its connection (libpq parameters and a reference to the
password, resolved at every run with :attr:`Workload.secrets`, see :mod:`.conninfo`), the databases to protect (default: all but
template0/template1) and optionally the folder of the client tools.  The source
document stored in the item::

    {"connection": {"params": {libpq keyword: value},
                    "password": {"kind": "ref", "value": "env:PGPASS"}},
     "databases": [names], "bindir": folder or null}

Protecting checks that the server answers, that the databases exist and that client
tools able to dump the server are installed.  Backup, browse, restore and the restore
drill are in :mod:`.dump`, :mod:`.browse`, :mod:`.restore` and :mod:`.drill`; the point
layout in :mod:`.layout`.
This module is imported on every start of the command line, so :mod:`.dump`, :mod:`.server`,
:mod:`.browse`, :mod:`.restore` (and :mod:`.drill`) are imported by the methods that use them.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import attrs
import click
from strongroom import (
    BackupContext, BrowseItem, InvalidSecretReference, InvalidSource, PointContext, RestoreResult, UsageError,
    Workload,
)

from . import options as opts
from .conninfo import Connection
from .layout import CONSISTENCY, GLOBALS, MANIFEST, read_manifest, unquote_name


class PostgresWorkload(Workload):
    name = "postgres"
    description = "the databases of a PostgreSQL server (pg_dump, item-level restore)"
    consistency = CONSISTENCY

    # --- protect -----------------------------------------------------------------------

    def protect_params(self) -> list[click.Parameter]:
        return opts.protect_params()

    def source_from_options(self, options: dict[str, Any]) -> dict:
        try:
            conn = Connection.from_options(options, secrets=self.secrets)
        except InvalidSecretReference:
            raise
        except UsageError as exc:
            raise InvalidSource(workload=self.name, reason=str(exc)) from None
        if options.get("physical"):
            if options.get("databases"):
                raise InvalidSource(workload=self.name, reason="--database is for the logical mode: a physical"
                                                               " backup holds the whole cluster")
            return {"mode": "physical", "connection": conn.to_dict(), "databases": [],
                    "bindir": options.get("bindir") or None, "data_dir": options.get("data_dir") or None}
        if options.get("data_dir"):
            raise InvalidSource(workload=self.name, reason="--data-dir is for the physical mode (--physical)")
        return {
            "connection": conn.to_dict(),
            "databases": list(dict.fromkeys(options.get("databases") or ())),
            "bindir": options.get("bindir") or None,
        }

    def validate_source(self, source: dict) -> dict:
        if not isinstance(source.get("connection"), dict):
            raise InvalidSource(workload=self.name, reason="the source has no connection")
        conn = Connection.from_dict(source["connection"], self.secrets)
        bindir = source.get("bindir")
        if source.get("mode") == "physical":
            from .physical import probe as physical_probe

            physical_probe(conn, bindir)
            return {"mode": "physical", "connection": conn.to_dict(), "databases": [], "bindir": bindir,
                    "data_dir": source.get("data_dir") or None}
        from . import server as pgserver
        from .dump import select_databases

        probe = pgserver.Server(conn, pgserver.first_toolset(bindir))
        info = probe.info()
        pgserver.for_server(info["version_num"], info["version"], conn.describe(), bindir)
        select_databases(info, list(source.get("databases") or ()), conn, [])
        return {"connection": conn.to_dict(), "databases": list(source.get("databases") or ()),
                "bindir": bindir}

    def describe(self, source: dict) -> str:
        conn = Connection.from_dict(source["connection"])
        databases = source.get("databases") or ()
        if source.get("mode") == "physical":
            password = conn.password.describe()
            return f"{conn.describe()}, physical (base backups and WAL)" + (f", {password}" if password else "")
        text = conn.describe() + (f", databases {', '.join(databases)}" if databases else ", all databases")
        password = conn.password.describe()
        return text + (f", {password}" if password else "")

    # --- backup and browse -------------------------------------------------------------

    def backup(self, ctx: BackupContext) -> Iterator[object]:
        conn = Connection.from_dict(ctx.item.source["connection"], self.secrets)
        if ctx.item.source.get("mode") == "physical":
            from .physical import physical_entries

            yield from physical_entries(ctx, conn, ctx.item.source)
            return
        from .dump import backup_entries

        yield from backup_entries(ctx, conn, ctx.item.source)

    def browse(self, ctx: PointContext, path: str) -> list[BrowseItem]:
        if ctx.item.source.get("mode") == "physical":
            return super().browse(ctx, path)  # the files of the base backup
        from .browse import browse

        return browse(ctx, read_manifest(ctx), path)

    # --- restore -----------------------------------------------------------------------

    def restore_params(self) -> list[click.Parameter]:
        return opts.restore_params()

    def restore(self, ctx: PointContext, target: str | None, paths: Sequence[str],
                options: dict[str, Any]) -> RestoreResult:
        from .restore import Request, restore_database

        if ctx.item.source.get("mode") == "physical" or options.get("data_dir"):
            from .pitr import restore_physical

            return restore_physical(ctx, target, paths, options, self.secrets)
        manifest = read_manifest(ctx)
        database = options.get("database")
        schemas = list(options.get("schemas") or ())
        tables = list(options.get("tables") or ())
        files = []
        for path in paths:
            parts = [unquote_name(p) for p in path.strip("/").split("/") if p]
            if len(parts) == 1 and parts[0] in (GLOBALS, MANIFEST):
                files.append(parts[0])
                continue
            if not parts or (database is not None and parts[0] != database):
                raise UsageError(message=f"path '{path}': restore one database at a time (DB[/SCHEMA[/TABLE]])")
            database = parts[0]
            if len(parts) == 2:
                schemas.append(parts[1])
            elif len(parts) >= 3:
                tables.append('"{}"."{}"'.format(parts[1].replace('"', '""'), "/".join(parts[2:]).replace('"', '""')))
        if target:
            return self._restore_files(ctx, manifest, target, database, files, bool(schemas or tables), options)
        if files:
            raise UsageError(message=f"{files[0]} is restored as a file: pass --target DIR")
        if not options.get("to_database"):
            raise UsageError(message="restoring a postgres point needs --to-database NAME (into a server)"
                                     " or --target DIR (the dump files)")
        record = manifest.database(database, ctx.point.short_id)
        conn = Connection.from_options(options, base=Connection.from_dict(ctx.item.source["connection"], self.secrets))
        jobs = int(options.get("jobs") or 0)  # 0: the restore's default
        request = Request(record=record, target=str(options["to_database"]), schemas=tuple(dict.fromkeys(schemas)),
                          tables=tuple(dict.fromkeys(tables)), force=bool(options.get("force")),
                          no_owner=bool(options.get("no_owner")), jobs=jobs)
        result = restore_database(ctx, manifest, conn, request, options.get("bindir") or ctx.item.source.get("bindir"))
        if jobs > 1 and request.item_level:
            return RestoreResult(result.stats, result.damaged, result.errors,
                                 result.warnings + ("--jobs applies to whole databases; schemas and tables"
                                                    " are restored in one transaction",),
                                 summary=result.summary)
        return result

    # --- restore drill -----------------------------------------------------------------

    def drill(self, ctx: PointContext, scratch: str):
        """The dump files restored and compared (the default drill); then, when they are
        intact, every database restored into a scratch database on the item's server,
        its rows counted against the dump, and dropped (:mod:`.drill`)."""
        from .drill import drill_databases

        result = super().drill(ctx, scratch)
        if ctx.item.source.get("mode") == "physical":
            return result  # the files of the base backup, compared
        if result.mismatches:
            return attrs.evolve(result, method=result.method + "; no scratch database: the dump files are damaged")
        problems, method = drill_databases(ctx, scratch, self.secrets)
        return attrs.evolve(result, mismatches=result.mismatches + tuple(problems),
                            method=f"{result.method}; {method}")

    def _restore_files(self, ctx: PointContext, manifest, target: str, database: str | None,
                       files: list[str], item_level: bool, options: dict[str, Any]) -> RestoreResult:
        from .restore import restore_files

        if options.get("to_database") or item_level:
            raise UsageError(message="--target DIR restores the dump files; --to-database, --schema and"
                                     " --table restore into a server: choose one")
        if database is None and not files:
            return restore_files(ctx, target, ())
        chosen = [MANIFEST, GLOBALS, *files]
        if database is not None:
            chosen.append(manifest.database(database, ctx.point.short_id).entry)
        return restore_files(ctx, target, list(dict.fromkeys(chosen)))
