"""``strongroom backup ITEM``: an on-demand backup."""

from __future__ import annotations

import sys

import click

from .common import app, json_option
from .output import Progress, emit_json, human_size, warn


@click.command()
@click.argument("item")
@json_option
@click.pass_context
def backup(ctx, item, as_json):
    """Back up ITEM now and create a recovery point."""
    v = app(ctx).open_vault()
    progress = Progress(not as_json)

    def show(stats) -> None:
        progress.show(
            f"{stats.files} files, {human_size(stats.bytes_read)} read,"
            f" {stats.files_unchanged} unchanged"
        )

    point = v.backup(item, progress=show)
    progress.done()
    for message in point.warnings:
        warn(message)
    if as_json:
        emit_json({"id": point.point_id, **point.to_dict()})
    else:
        s = point.stats
        click.echo(
            f"Backed up '{item}': point {point.short_id}, {s['files']} files"
            f" ({s['files_unchanged']} unchanged), {human_size(s['bytes_read'])} read,"
            f" {human_size(s['new_bytes'])} new ({human_size(s['stored_bytes'])} stored)"
            f" in {s['seconds']:.1f} s"
            + (f", {len(point.warnings)} warning(s)" if point.warnings else "")
        )
    if point.warnings:
        sys.exit(1)  # completed with warnings
