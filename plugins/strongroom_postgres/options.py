"""The command-line options of ``protect postgres`` and of ``restore`` for postgres points.

The connection options are the same on both commands; on ``restore`` they choose
another server than the item's (by default the restore goes to the item's own server,
with its password reference).  Restore options live in one namespace shared by every
workload's ``restore`` options, so they are read with ``options.get(...)``.
"""

from __future__ import annotations

import click


def connection_params(for_restore: bool = False) -> list[click.Parameter]:
    other = " (default: the item's server)" if for_restore else ""

    def h(text: str) -> str:
        if not for_restore:
            return text[0].upper() + text[1:]
        return f"postgres: {text[0].lower()}{text[1:]}"

    return [
        click.Option(["--dsn"], metavar="DSN",
                     help=h(f"libpq connection string or URI, without a password{other}.")),
        click.Option(["--host"], metavar="HOST", help=h(f"Server host name or socket folder{other}.")),
        click.Option(["--port"], metavar="PORT", help=h("Server port (default 5432).")),
        click.Option(["--user"], metavar="USER", help=h("User to connect as.")),
        click.Option(["--password-ref"], metavar="REF",
                     help=h("Take the password from secret reference REF: env:VAR, file:PATH or a plugin's"
                            " SCHEME:... (only the reference is stored; it is read at every run).")),
        click.Option(["--password-env"], metavar="VAR",
                     help=h("Take the password from environment variable VAR (the same as --password-ref env:VAR).")),
        click.Option(["--password-file"], metavar="FILE", type=click.Path(dir_okay=False),
                     help=h("Take the password from FILE (the same as --password-ref file:FILE).")),
        click.Option(["--passfile"], is_flag=True, default=False,
                     help=h("Take the password from libpq's password file (~/.pgpass or $PGPASSFILE).")),
        click.Option(["--bindir"], metavar="DIR", type=click.Path(file_okay=False),
                     help=h("Folder of the PostgreSQL client tools to use (default: found automatically).")),
    ]


def protect_params() -> list[click.Parameter]:
    return [
        *connection_params(),
        click.Option(["--database", "databases"], multiple=True, metavar="DB",
                     help="A database to protect (repeatable; default: all but template0/template1)."),
        click.Option(["--physical"], is_flag=True, default=False,
                     help="Physical mode: base backups with pg_basebackup (needs the REPLICATION privilege) and"
                          " WAL archiving (strongroom wal), for point-in-time restore (default: logical, pg_dump)."),
        click.Option(["--data-dir", "data_dir"], metavar="DIR",
                     help="Physical mode: the server's data directory, where 'strongroom wal setup --apply' writes"
                          " (optional)."),
    ]


def restore_params() -> list[click.Parameter]:
    return [
        click.Option(["--to-database"], metavar="NAME",
                     help="postgres: restore into database NAME (created if missing; see --force)."),
        click.Option(["--database"], metavar="DB",
                     help="postgres: the database of the point to restore (needed if it has several)."),
        click.Option(["--schema", "schemas"], multiple=True, metavar="SCHEMA",
                     help="postgres: restore only this schema, complete (repeatable)."),
        click.Option(["--table", "tables"], multiple=True, metavar="[SCHEMA.]TABLE",
                     help="postgres: restore only this table with its indexes, keys, sequences... (repeatable)."),
        click.Option(["--no-owner"], is_flag=True, default=False,
                     help="postgres: restore without owners and grants (for a server without the point's roles)."),
        click.Option(["--jobs"], type=click.IntRange(min=1), metavar="N",
                     help="postgres: restore a whole database with N parallel loads (default 2)."),
        click.Option(["--data-dir", "data_dir"], metavar="DIR",
                     help="postgres physical: restore the cluster into DIR (new or empty), with recovery settings."),
        click.Option(["--to-time"], metavar="TS",
                     help="postgres physical: recover up to this time ('2026-12-04 15:04:05+00'; default: the end"
                          " of the archived WAL)."),
        click.Option(["--to-lsn"], metavar="LSN", help="postgres physical: recover up to this WAL location."),
        click.Option(["--to-xid"], metavar="XID", help="postgres physical: recover up to this transaction."),
        click.Option(["--to-name"], metavar="NAME",
                     help="postgres physical: recover up to this restore point (pg_create_restore_point)."),
        click.Option(["--timeline"], metavar="N|latest|current",
                     help="postgres physical: the timeline recovery follows: latest (the default: the archive's"
                          " newest), N (timeline N's history: the old server's after a promoted copy archived"
                          " into the item) or current (the base backup's own)."),
        click.Option(["--start"], is_flag=True, default=False,
                     help="postgres physical: start the restored server on --port and wait until recovery is done."),
        *connection_params(for_restore=True),
    ]
