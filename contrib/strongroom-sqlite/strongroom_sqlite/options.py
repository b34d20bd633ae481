"""The command-line options of ``protect sqlite`` and of ``restore`` for sqlite points.

Every workload's ``restore`` options share one namespace, so this package's own are
prefixed ``--sqlite-``.  ``--force`` is the restore command's own (replace what exists
where the restore writes); the workload reads it with ``options.get("force")``.
"""

from __future__ import annotations

import click

__all__ = ["TABLE_FORMATS", "protect_params", "restore_params"]

#: what a table is restored as: an SQL script (the default) or a new database file
TABLE_FORMATS = ("sql", "sqlite")


def protect_params() -> list[click.Parameter]:
    return [
        click.Option(["--database", "databases"], multiple=True, required=True, metavar="PATH",
                     help="A SQLite database file to protect (repeatable)."),
    ]


def restore_params() -> list[click.Parameter]:
    return [
        click.Option(["--sqlite-table"], metavar="DB/TABLE",
                     help="sqlite: restore only this table of database DB into --target DIR."),
        click.Option(["--sqlite-format"], type=click.Choice(TABLE_FORMATS),
                     help="sqlite: write the table as an SQL script (sql, the default) or as a new"
                          " database holding only it (sqlite)."),
    ]
