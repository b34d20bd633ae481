"""The ``sqlite`` workload: SQLite database files, copied online and restored whole or by table.

An item is a list of database files (:mod:`.source`).  A backup copies each one with
SQLite's online backup API (:mod:`.snapshot`, :mod:`.backup`) into a point laid out as
:mod:`.layout` describes; browse and table restore read the stored copies
(:mod:`.itemlevel`); :mod:`.restore` writes databases or a table into a folder.  This
module is loaded on every start of the command line, so the modules that do the work
are imported by the methods that use them.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import click
from strongroom import BackupContext, BrowseItem, PointContext, RestoreResult, SourceEntry, Workload

from . import options as opts
from . import source


class SqliteWorkload(Workload):
    name = "sqlite"
    description = "SQLite database files (online backup API, restore of a database or of one table)"
    consistency = "application-consistent"

    # --- protect -----------------------------------------------------------------------

    def protect_params(self) -> list[click.Parameter]:
        return opts.protect_params()

    def source_from_options(self, options: dict[str, Any]) -> dict:
        return source.from_options(options)

    def validate_source(self, source_doc: dict) -> dict:
        return source.validate(source_doc)

    def describe(self, source_doc: dict) -> str:
        return ", ".join(source_doc["databases"])

    # --- backup and browse -------------------------------------------------------------

    def backup(self, ctx: BackupContext) -> Iterator[SourceEntry]:
        from .backup import backup_entries

        return backup_entries(ctx)

    def browse(self, ctx: PointContext, path: str) -> list[BrowseItem]:
        from .itemlevel import browse
        from .layout import read_manifest

        return browse(ctx, read_manifest(ctx), path)

    # --- restore -----------------------------------------------------------------------

    def restore_params(self) -> list[click.Parameter]:
        return opts.restore_params()

    def restore(self, ctx: PointContext, target: str | None, paths: Sequence[str],
                options: dict[str, Any]) -> RestoreResult:
        from .restore import restore

        return restore(ctx, target, paths, options)
