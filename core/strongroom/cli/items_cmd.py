"""``strongroom items``: the protected items of the vault; ``stop``, ``resume`` and ``undelete`` them.

``stop`` and ``resume`` take ``--ticket FILE`` for the vault's guard: ``--delete-data``
needs an ``items.delete-data`` ticket, a change that shortens retention a
``retention.shorten`` one (:mod:`strongroom.services.lifecycle`).  ``stop --dry-run`` makes
the same checks, asks nothing and changes nothing.
"""

from __future__ import annotations

import click

from .common import app, confirm_destructive, dry_run_option, json_option, ticket_option
from .completion import complete_item
from .output import emit_json, short_time, table


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def items(ctx, as_json):
    """List protected items; stop and resume their protection."""
    if ctx.invoked_subcommand is not None:
        return
    v = app(ctx).open_vault()
    found = v.items()
    if as_json:
        emit_json([i.to_dict() for i in found])
        return
    rows = []
    for i in found:
        try:
            source = v.workload(i.workload).describe(i.source)
        except Exception:  # a workload whose plugin is not installed
            source = "(workload plugin not installed)"
        rows.append((i.name, i.workload, i.state, i.policy or "-", source))
    table(("ITEM", "WORKLOAD", "STATE", "POLICY", "SOURCE"), rows)


@items.command("stop")
@click.argument("item", shell_complete=complete_item)
@click.option("--retain", type=click.Choice(["forever", "policy"]),
              help="Keep the points forever, or as the item's policy says (its latest point forever).")
@click.option("--delete-data", is_flag=True,
              help="Delete every point: soft-deleted (undeletable until purged) while soft delete is on,"
                   " else expired now for the next prune.")
@click.option("--yes", is_flag=True, help="Do not ask before --delete-data.")
@ticket_option
@dry_run_option
@json_option
@click.pass_context
def stop(ctx, item, retain, delete_data, yes, ticket, dry_run, as_json):
    """Stop protecting ITEM: no more scheduled backups; keep its points or delete them."""
    if delete_data and retain:
        raise click.UsageError("give --retain or --delete-data, not both")
    if not delete_data and not retain:
        raise click.UsageError("give --retain forever|policy or --delete-data")
    if dry_run:
        _rehearse_stop(app(ctx).open_vault(), item, retain, delete_data, ticket, as_json)
        return
    if delete_data and not yes:
        confirm_destructive(f"Delete every recovery point of '{item}'? The next prune frees their data",
                            f"Deleting every recovery point of '{item}'")
    v = app(ctx).open_vault()
    changed = v.stop(item, retain=retain, delete_data=delete_data, ticket=ticket)
    soft = v.security.settings.soft_delete
    if as_json:
        emit_json(changed.to_dict())
    elif delete_data and soft.on:
        click.echo(f"Stopped '{item}' and soft-deleted its points: they are purged after {soft.days} days;"
                   f" 'strongroom items undelete {item}' brings them back until then.")
    elif delete_data:
        click.echo(f"Stopped '{item}' and expired its points; 'strongroom prune' deletes their data.")
    else:
        click.echo(f"Stopped '{item}': {changed.state}.")


def _rehearse_stop(v, item, retain, delete_data, ticket, as_json) -> None:
    plan = v.rehearse_stop(item, retain=retain, delete_data=delete_data, ticket=ticket)
    deletion = plan.deletion
    if as_json:
        emit_json({**plan.item.to_dict(), "dry_run": True,
                   "deletion": deletion.to_dict() if deletion is not None else None})
        return
    if not delete_data:
        click.echo(f"Would stop '{item}': {plan.item.state}; its points are kept.")
    elif deletion is None or not deletion.points:
        click.echo(f"Would stop '{item}' and mark it deleted; it has no point to delete.")
    elif deletion.soft:
        click.echo(f"Would stop '{item}' and soft-delete {len(deletion.points)} point(s)"
                   f" (purge at {short_time(deletion.purge_at)}).")
    else:
        click.echo(f"Would stop '{item}' and expire {len(deletion.points)} point(s) now;"
                   " the next prune would delete their data.")


@items.command("resume")
@click.argument("item", shell_complete=complete_item)
@click.option("--policy", metavar="NAME", help="Follow this policy from now on (default: the one it had).")
@ticket_option
@json_option
@click.pass_context
def resume(ctx, item, policy, ticket, as_json):
    """Protect a stopped ITEM again; points already past their retention go at the next prune."""
    changed = app(ctx).open_vault().resume(item, policy=policy, ticket=ticket)
    if as_json:
        emit_json(changed.to_dict())
    else:
        click.echo(f"Resumed '{item}' with policy '{changed.policy}'.")


@items.command("undelete")
@click.argument("item")
@json_option
@click.pass_context
def undelete(ctx, item, as_json):
    """Bring back ITEM, deleted with --delete-data, and its soft-deleted points: it comes
    back stopped with retain forever ('items resume' protects it again)."""
    changed = app(ctx).open_vault().undelete_item(item)
    if as_json:
        emit_json(changed.to_dict())
    else:
        click.echo(f"Undeleted '{item}': {changed.state}; its points are back.")
