"""Restore a sqlite point: its databases as files, or one table of one of them.

:func:`restore` needs ``--target DIR``.  Without ``--sqlite-table`` it writes the
databases as files at their place in the point, ``DIR/databases/<name>.sqlite``, with
the mode, modification time and (as root) owner the database files had: every database
and ``DIR/manifest.json``, or only the databases named as PATHs.  With
``--sqlite-table DB/TABLE`` it writes that table alone (:func:`.itemlevel.restore_table`),
as ``--sqlite-format`` says.  Neither replaces an existing file without ``--force``.

Whole databases go through the core's restorer (``ctx.restore_paths``): data that fails
authentication is not written, and the vault reports it as an integrity error.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import attrs
from strongroom import PointContext, RestoreResult, UsageError

from .errors import TargetExists
from .itemlevel import restore_table, split_path
from .layout import DATABASES, MANIFEST, Manifest, read_manifest
from .options import TABLE_FORMATS

__all__ = ["restore"]


def restore(ctx: PointContext, target: str | None, paths: Sequence[str], options: dict[str, Any]) -> RestoreResult:
    """Restore the point ``ctx`` reads (see the module docstring)."""
    if not target:
        raise UsageError(message="restoring a sqlite point needs --target DIR")
    table, fmt, force = options.get("sqlite_table"), options.get("sqlite_format"), bool(options.get("force"))
    if fmt is not None and fmt not in TABLE_FORMATS:
        raise UsageError(message=f"--sqlite-format is one of {', '.join(TABLE_FORMATS)}, not '{fmt}'")
    if fmt and not table:
        raise UsageError(message="--sqlite-format applies to a table restore (--sqlite-table DB/TABLE)")
    if table and paths:
        raise UsageError(message="give databases as PATHs or one table with --sqlite-table, not both")
    manifest = read_manifest(ctx)
    if table:
        return restore_table(ctx, manifest, table, fmt or TABLE_FORMATS[0], target, force)
    return restore_databases(ctx, manifest, target, paths, force)


def restore_databases(ctx: PointContext, manifest: Manifest, target: str, paths: Sequence[str],
                      force: bool) -> RestoreResult:
    """Write the databases named in ``paths`` (all of them and the manifest when empty) under ``target``."""
    if not paths:
        records = list(manifest.databases)
        chosen = [record.entry for record in records] + [MANIFEST]
    else:
        records, chosen = [], []
        for path in paths:
            if path.strip("/") == MANIFEST:
                chosen.append(MANIFEST)
                continue
            record = manifest.database(_database_name(path), ctx.point.short_id)
            records.append(record)
            chosen.append(record.entry)
    for path in chosen:
        if os.path.lexists(os.path.join(target, path)) and not force:
            raise TargetExists(path=os.path.join(target, path))
    result = ctx.restore_paths(target, chosen if paths else ())
    names = ", ".join(record.name for record in records) or "none"
    summary = f"Restored {len(records)} database(s) into {os.path.join(target, DATABASES)}: {names}"
    return attrs.evolve(result, summary=summary)


def _database_name(path: str) -> str:
    database, table = split_path(path)
    if table:
        raise UsageError(message=f"'{path}' is a table: restore it with --sqlite-table {path} --target DIR")
    return database
