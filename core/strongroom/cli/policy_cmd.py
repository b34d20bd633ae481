"""``strongroom policy``: backup policies (schedule + retention) and the retention floors."""

from __future__ import annotations

import click

from .common import app, dry_run_option, json_option, ticket_option
from .output import emit_json, short_time, table

_SCHEDULE_OPTIONS = [
    click.option("--every", metavar="Nh", help="Every N hours: 1h, 2h, 4h, 6h, 8h or 12h (from local 00:00)."),
    click.option("--daily", metavar="HH:MM[,HH:MM...]", help="Every day at these local times."),
    click.option("--weekly", metavar="DAYS@TIMES", help="On these weekdays at these times, e.g. sun@03:00 or mon,thu@01:00,13:00."),
    click.option("--timezone", metavar="ZONE", help="IANA timezone of the times and of the retention periods (default UTC)."),
    click.option("--keep-daily", type=int, metavar="N", help="Keep the first point of each day N days."),
    click.option("--keep-weekly", type=int, metavar="N", help="Keep the first point of each week N weeks."),
    click.option("--weekly-on", metavar="DAY", help="The day weeks start on for --keep-weekly (default sun)."),
    click.option("--keep-monthly", type=int, metavar="N", help="Keep the first point of each month N months."),
    click.option("--monthly-on", type=click.Choice(["first", "last"]),
                 help="Months (and years) start on their first day (default) or their last."),
    click.option("--keep-yearly", type=int, metavar="N", help="Keep the first point of each year N years."),
    click.option("--description", metavar="TEXT", help="A note shown by 'policy show'."),
    click.option("--drill-every", metavar="DURATION",
                 help="Run a restore drill of each item's latest point this often from run-due, e.g. 7d"
                      " (at least 1h; 'off' to stop)."),
    click.option("--drill-from-secondary/--drill-from-primary", "drill_from_secondary", default=None,
                 help="Drill from the vault's geo secondary (default: from the vault itself)."),
]


def _policy_options(function):
    for option in reversed(_SCHEDULE_OPTIONS):
        function = option(function)
    return function


def _check_drill(vault, policy) -> None:
    """Drills from the secondary need a geo vault opened at its primary."""
    from ..errors import InvalidPolicy

    if policy.drill is not None and policy.drill.from_secondary and (
            vault.is_secondary or not vault.settings.redundancy.get("secondary")):
        raise InvalidPolicy(reason="--drill-from-secondary needs a geo vault with a secondary"
                                   " ('vault redundancy set geo --secondary URL')")


def _drills(policy) -> str:
    return f"; drill {policy.drill.describe()}" if policy.drill else ""


def _record(policy, users=()) -> dict:
    return {**policy.to_dict(), "version": policy.version, "items": [i.name for i in users]}


@click.group()
def policy() -> None:
    """Backup policies: when items are backed up and which points are kept."""


@policy.command("create")
@click.argument("name")
@_policy_options
@json_option
@click.pass_context
def create(ctx, name, as_json, **options):
    """Create policy NAME with a schedule (--every, --daily or --weekly) and retention rules."""
    from ..policy.options import policy_from_options

    v = app(ctx).open_vault()
    new = policy_from_options(name, options)
    _check_drill(v, new)
    created = v.policies.create(new)
    if as_json:
        emit_json(_record(created))
    else:
        click.echo(f"Created policy '{created.name}': {created.schedule.describe()}, keep {created.retention.describe()}"
                   f"{_drills(created)}")


@policy.command("update")
@click.argument("name")
@_policy_options
@ticket_option
@json_option
@click.pass_context
def update(ctx, name, ticket, as_json, **options):
    """Change policy NAME (only what is given); re-evaluates the retention of its items' points.
    Shortening their retention is refused while immutability is on, and needs a
    retention.shorten ticket when the vault has a guard."""
    from ..policy.options import policy_from_options

    v = app(ctx).open_vault()
    new = policy_from_options(name, options, base=v.policies.get(name))
    _check_drill(v, new)
    changed, statuses = v.policies.update(new, ticket=ticket)
    if as_json:
        emit_json({**_record(changed, v.policies.users(name)), "points_reevaluated": statuses})
    else:
        click.echo(f"Updated policy '{name}': {changed.schedule.describe()}, keep {changed.retention.describe()}"
                   f"{_drills(changed)}; retention of {statuses} point(s) changed")


@policy.command("list")
@json_option
@click.pass_context
def list_(ctx, as_json):
    """List the policies and the items that use them."""
    v = app(ctx).open_vault()
    rows = [(p, v.policies.users(p.name)) for p in v.policies.list()]
    if as_json:
        emit_json([_record(p, users) for p, users in rows])
        return
    table(("POLICY", "SCHEDULE", "RETENTION", "ITEMS"),
          [(p.name, p.schedule.describe(), p.retention.describe(), ", ".join(i.name for i in users) or "-")
           for p, users in rows])


@policy.command("show")
@click.argument("name")
@click.option("--runs", type=int, default=5, show_default=True, help="How many next run times to show.")
@json_option
@click.pass_context
def show(ctx, name, runs, as_json):
    """Show policy NAME, its items and its next run times (in the policy's timezone)."""
    import zoneinfo

    v = app(ctx).open_vault()
    found = v.policies.get(name)
    users = v.policies.users(name)
    zone = found.schedule.timezone
    moments, moment = [], v.clock()
    for _ in range(max(runs, 0)):
        moment = found.schedule.next_run(moment)
        moments.append(moment.astimezone(zoneinfo.ZoneInfo(zone)))
    if as_json:
        emit_json({**_record(found, users), "next_runs": [m.isoformat() for m in moments]})
        return
    r = found.retention
    lines = [("policy", found.name), ("schedule", found.schedule.describe()),
             ("keep daily", f"{r.daily} day(s)"), ("keep weekly", f"{r.weekly} week(s), weeks from {_day(r.weekly_on)}"),
             ("keep monthly", f"{r.monthly} month(s), from the {r.monthly_on} day"),
             ("keep yearly", f"{r.yearly} year(s)"),
             ("drills", found.drill.describe() if found.drill else "none"), ("items", ", ".join(i.name for i in users) or "-"),
             ("next runs", f"({zone}) " + ", ".join(short_time(m, zone).removesuffix(f" ({zone})")
                                                   for m in moments) if moments else "-")]
    if found.description:
        lines.insert(1, ("description", found.description))
    for key, value in lines:
        click.echo(f"{key + ':':14}{value}")


def _day(number: int) -> str:
    from ..policy.schedule import WEEKDAYS

    return WEEKDAYS[number]


@policy.command("delete")
@click.argument("name")
@dry_run_option
@json_option
@click.pass_context
def delete(ctx, name, dry_run, as_json):
    """Delete policy NAME (refused while an item with data uses it)."""
    app(ctx).open_vault().policies.delete(name, dry_run=dry_run)
    if as_json:
        emit_json({"name": name, "deleted": not dry_run, "dry_run": dry_run})
    elif dry_run:
        click.echo(f"Would delete policy '{name}' (no item uses it).")
    else:
        click.echo(f"Deleted policy '{name}'.")


@policy.command("floors")
@click.option("--enable", "enable", flag_value=True, default=None, help="Turn the floors on.")
@click.option("--disable", "enable", flag_value=False, help="Turn the floors off.")
@click.option("--daily", type=int, metavar="N", help="Least days daily points are kept (default 7).")
@click.option("--weekly", type=int, metavar="N", help="Least weeks for weekly points (default 4).")
@click.option("--monthly", type=int, metavar="N", help="Least months for monthly points (default 3).")
@click.option("--yearly", type=int, metavar="N", help="Least years for yearly points (default 1).")
@ticket_option
@json_option
@click.pass_context
def floors(ctx, enable, daily, weekly, monthly, yearly, ticket, as_json):
    """Show or set the vault's minimum retention for every policy (off by default); lowering
    or turning them off is refused while immutability is on."""
    v = app(ctx).open_vault()
    given = {k: n for k, n in (("daily", daily), ("weekly", weekly), ("monthly", monthly), ("yearly", yearly)) if n is not None}
    current = v.policies.floors()
    if enable is False:
        v.set_retention_floors(None, ticket=ticket)
        current = None
    elif enable or (given and current is not None):
        from ..policy.retention import RetentionFloors

        current = RetentionFloors(**{**(current.to_dict() if current else {}), **given})
        v.set_retention_floors(current, ticket=ticket)
    elif given:
        raise click.UsageError("the floors are off: add --enable to turn them on with these values")
    if as_json:
        emit_json({"enabled": current is not None, **(current.to_dict() if current else {})})
    elif current is None:
        click.echo("Retention floors: off.")
    else:
        click.echo(f"Retention floors: on: daily {current.daily} day(s), weekly {current.weekly} week(s),"
                   f" monthly {current.monthly} month(s), yearly {current.yearly} year(s).")
