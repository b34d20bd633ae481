"""``strongroom points [ITEM]``: recovery points.

Points whose header cannot be read are listed after the intact ones, as ``damaged``
with the reason (in ``--json``: ``"state": "damaged"`` and ``"error"``); a point whose
status documents cannot be read gets a notice line on stderr (``"notice"`` in JSON).
Storage that went back to an older state (a point header the vault heads list is gone:
:mod:`strongroom.services.head`) gets one warning line on stderr, JSON or not.
"""

from __future__ import annotations

import attrs
import click

from .common import app, json_option
from .output import emit_json, human_size, short_time, table, warn


@click.command()
@click.argument("item", required=False)
@json_option
@click.pass_context
def points(ctx, item, as_json):
    """List recovery points (of ITEM, or of every item), damaged ones too."""
    vault = app(ctx).open_vault()
    survey = vault.point_survey(item)
    if survey.rollback:  # the vault's storage went back to an older state (services/head.py)
        warn(survey.rollback)
    names = {i.item_id: i.name for i in vault.items()} if survey.damaged and not item else {}
    damaged = [d if d.item_name else _named(d, names) for d in survey.damaged]
    if as_json:
        rows = [{"id": p.point_id, **p.to_dict(), **_notice(survey, p.point_id)} for p in survey.points]
        emit_json(rows + [{"id": d.point_id, **d.to_dict()} for d in damaged])
        return
    table(
        ("POINT", "ITEM", "CREATED", "FILES", "SIZE", "NEW", "CONSISTENCY", "WARNINGS"),
        [
            (p.short_id, p.item_name, short_time(p.created), p.stats.get("files", "-"),
             human_size(p.stats.get("bytes_total", 0)), human_size(p.stats.get("new_bytes", 0)),
             p.consistency, len(p.warnings) or "")
            for p in survey.points
        ] + [(d.short_id, d.item_name or d.item_id, "damaged", "-", "-", "-", "-", "") for d in damaged],
    )
    for d in damaged:
        warn(f"point {d.short_id} of item '{d.item_name or d.item_id}' is damaged and cannot be"
             f" restored: {d.object_name}: {d.error}")
    for message in survey.notices.values():
        warn(message)


def _named(point, names: dict[str, str]):
    return attrs.evolve(point, item_name=names.get(point.item_id, ""))


def _notice(survey, point_id: str) -> dict:
    message = survey.notices.get(point_id)
    return {"notice": message} if message else {}
