"""``strongroom points [ITEM]``: recovery points."""

from __future__ import annotations

import click

from .common import app, json_option
from .output import emit_json, human_size, short_time, table


@click.command()
@click.argument("item", required=False)
@json_option
@click.pass_context
def points(ctx, item, as_json):
    """List recovery points (of ITEM, or of every item)."""
    found = app(ctx).open_vault().points(item)
    if as_json:
        emit_json([{"id": p.point_id, **p.to_dict()} for p in found])
        return
    table(
        ("POINT", "ITEM", "CREATED", "FILES", "SIZE", "NEW", "CONSISTENCY", "WARNINGS"),
        [
            (p.short_id, p.item_name, short_time(p.created), p.stats.get("files", "-"),
             human_size(p.stats.get("bytes_total", 0)), human_size(p.stats.get("new_bytes", 0)),
             p.consistency, len(p.warnings) or "")
            for p in found
        ],
    )
