"""``strongroom stats [ITEM] [--mode restore-size|raw|stored] [--json]``: how much the
points hold, per item and in all (:mod:`strongroom.services.stats` says what each mode
counts).  It reads the index and the points' trees and writes nothing.

The table shows the chosen mode's size for each item and the vault; ``--json`` prints
every figure (``restore_size``, ``raw_size``, ``stored_size``, counts) and the mode.
"""

from __future__ import annotations

import click

from .common import app, json_option
from .completion import complete_item
from .output import emit_json, human_size, table, warn

MODES = ("restore-size", "raw", "stored")  # services.stats.MODES, without importing the engine for --help


@click.command("stats")
@click.argument("item", required=False, shell_complete=complete_item)
@click.option("--mode", type=click.Choice(MODES), default="restore-size", show_default=True,
              help="restore-size: what restoring every point writes; raw: the unique (deduplicated) plaintext"
                   " bytes the points reference; stored: the bytes on storage of the packs holding them.")
@json_option
@click.pass_context
def stats(ctx, item, mode, as_json):
    """Show how much data the points of ITEM (or of every item) hold."""
    from ..services.stats import vault_stats

    v = app(ctx).open_vault()
    names = [item] if item else [i.name for i in v.items()]
    for problem in v.index.load_for_reading():  # damaged index files: skipped, their packs read
        warn(problem)
    report = vault_stats(v.repo, {name: v.points(name) for name in names}, mode)
    if as_json:
        emit_json(report.to_dict())
        return
    counted = {"restore-size": "FILES", "raw": "BLOBS", "stored": "PACKS"}[mode]

    def count(s) -> int:
        return {"restore-size": s.files, "raw": s.blobs, "stored": s.packs}[mode]

    rows = [(s.item, s.points, count(s), human_size(s.size(mode))) for s in report.items]
    if not item:
        rows.append(("(vault)", report.total.points, count(report.total), human_size(report.total.size(mode))))
    table(("ITEM", "POINTS", counted, mode.upper()), rows)
    if report.total.missing_blobs:
        click.echo(f"note: {report.total.missing_blobs} referenced blob(s) are not in the index"
                   " (a disk's holes are not stored; else 'strongroom vault verify' says more)", err=True)
