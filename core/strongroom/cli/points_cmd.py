"""``strongroom points [ITEM]``: recovery points; ``points delete`` and ``points undelete``.

Points whose header cannot be read are listed after the intact ones, as ``damaged``
with the reason (in ``--json``: ``"state": "damaged"`` and ``"error"``); a point whose
status documents cannot be read gets a notice line on stderr (``"notice"`` in JSON).
Storage that went back to an older state (a point header the vault heads list is gone:
:mod:`strongroom.services.head`) gets one warning line on stderr, JSON or not.

Soft-deleted points (:mod:`strongroom.services.softdelete`) are left out; ``--deleted``
lists them alone, with when they were deleted, why, and when they are purged.
``points ITEM`` is ``points list ITEM``: a first word that is not a subcommand is an item
(an item called ``delete`` is listed with ``points list delete``).
``--tag``, ``--host`` and ``--path`` keep the points whose header matches
(:mod:`.pointfilter`); damaged points, whose header cannot be read, are left out then.
"""

from __future__ import annotations

import attrs
import click

from .common import app, confirm_destructive, dry_run_option, json_option, split_item_point, ticket_option
from .completion import complete_item, complete_point
from .output import emit_json, human_size, short_time, table, warn
from .pointfilter import PointFilter


class _PointsGroup(click.Group):
    """``points [ITEM]`` lists (the ``list`` subcommand); ``points delete|undelete`` act."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_PointsGroup)
def points():
    """List recovery points (of ITEM, or of every item); delete and undelete them."""


@points.command("list")
@click.argument("item", required=False, shell_complete=complete_item)
@click.option("--deleted", is_flag=True, help="List the soft-deleted points instead, with their purge time.")
@click.option("--from-secondary", is_flag=True, help="List the points of the vault's geo secondary (read-only).")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Only points with this tag (repeatable: any of them; 'a,b': both).")
@click.option("--host", "hosts", multiple=True, metavar="HOST", help="Only points made on HOST (repeatable).")
@click.option("--path", "paths", multiple=True, metavar="PATH", help="Only points that read PATH (repeatable).")
@json_option
@click.pass_context
def list_(ctx, item, deleted, from_secondary, tags, hosts, paths, as_json):
    """List recovery points (of ITEM, or of every item), damaged ones too."""
    app(ctx).from_secondary = app(ctx).from_secondary or from_secondary
    vault = app(ctx).open_vault()
    keep = PointFilter(tags, hosts, paths)
    if deleted:
        _list_deleted(vault, item, as_json, keep)
        return
    survey = vault.point_survey(item)
    if keep.active:
        survey = attrs.evolve(survey, points=tuple(keep.apply(survey.points)), damaged=())
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
    if survey.deleted:
        click.echo(f"{len(survey.deleted)} soft-deleted point(s) not shown: 'strongroom points --deleted' lists them.",
                   err=True)


def _list_deleted(vault, item, as_json, keep: PointFilter) -> None:
    found = [d for d in vault.deleted_points(item) if keep.keeps(d.point)]
    if as_json:
        emit_json([{"id": d.point_id, **d.to_dict()} for d in found])
        return
    table(("POINT", "ITEM", "CREATED", "DELETED", "PURGE AT", "DELETED BY"),
          [(d.point.short_id, d.point.item_name, short_time(d.point.created), short_time(d.deleted_at),
            short_time(d.purge_at), d.deleted_by or "-") for d in found])


@points.command("delete")
@click.argument("spec", metavar="ITEM@POINT", shell_complete=complete_point)
@ticket_option
@click.option("--yes", is_flag=True, help="Do not ask first.")
@dry_run_option
@json_option
@click.pass_context
def delete(ctx, spec, ticket, yes, dry_run, as_json):
    """Delete recovery point ITEM@POINT: soft-deleted (undeletable until its purge time)
    while soft delete is on, else deleted now (the next prune frees its data)."""
    item, ref = _item_point(spec)
    if not yes and not dry_run:
        confirm_destructive(f"Delete recovery point {ref} of '{item}'?", f"Deleting recovery point {ref} of '{item}'")
    done = app(ctx).open_vault().delete_point(item, ref, ticket=ticket, dry_run=dry_run)
    if as_json:
        emit_json(done.to_dict())
    elif dry_run and done.soft:
        click.echo(f"Would soft-delete point {done.points[0][:8]} of '{item}' (purge at {short_time(done.purge_at)}).")
    elif dry_run:
        click.echo(f"Would delete point {done.points[0][:8]} of '{item}' now; 'strongroom prune' would free its data.")
    elif done.soft:
        click.echo(f"Soft-deleted point {done.points[0][:8]} of '{item}': purged after {short_time(done.purge_at)};"
                   f" 'strongroom points undelete {item}@{done.points[0][:8]}' brings it back until then.")
    else:
        click.echo(f"Deleted point {done.points[0][:8]} of '{item}'; 'strongroom prune' frees its data.")


@points.command("undelete")
@click.argument("spec", metavar="ITEM@POINT", shell_complete=complete_point)
@json_option
@click.pass_context
def undelete(ctx, spec, as_json):
    """Bring soft-deleted point ITEM@POINT back (its retention is evaluated again)."""
    item, ref = _item_point(spec)
    point = app(ctx).open_vault().undelete_point(item, ref)
    if as_json:
        emit_json({"id": point.point_id, **point.to_dict()})
    else:
        click.echo(f"Undeleted point {point.short_id} of '{item}'.")


def _item_point(spec: str) -> tuple[str, str]:
    item, ref = split_item_point(spec)
    if ref is None:
        raise click.BadParameter(f"expected ITEM@POINT, got {spec!r}")
    return item, ref


def _named(point, names: dict[str, str]):
    return attrs.evolve(point, item_name=names.get(point.item_id, ""))


def _notice(survey, point_id: str) -> dict:
    message = survey.notices.get(point_id)
    return {"notice": message} if message else {}
