"""``strongroom alerts``: list and acknowledge alerts, configure and test the alert sinks.

``strongroom alerts`` first checks for missed schedules (so an item overdue while no
agent ran is an alert as soon as someone looks), then lists the alerts that are not
acknowledged.  Security alerts cannot be switched off: no option stops them from being
raised, and every sink receives them whatever its ``--category`` (``docs/alerts.md``).
"""

from __future__ import annotations

import getpass
import socket

import click

from ..errors import UsageError
from ..services.alerts import Alert, AlertError, DeliveryFailed, trial_alert
from ..services.alertsinks import SINK_CATEGORIES
from .common import app, dry_run_option, json_option
from .output import emit_json, short_time, table, warn

CATEGORY_HELP = (
    "Which job alerts the sink receives: all (default) or job (every job alert), or security (none)."
    " Every sink receives every security alert whatever this says: security alerts cannot be"
    " switched off, so a 'job' sink is widened to job and security alerts."
)


def _vault(ctx: click.Context):
    return app(ctx).open_vault()  # its alerts warn on stderr (a sink that failed)


def _state(alert: Alert) -> str:
    if alert.acknowledged is not None:
        return "acknowledged"
    return "resolved" if alert.resolved else "open"


def _sent(alert: Alert) -> str:
    failed = [d.sink for d in alert.deliveries if not d.ok]
    if failed:
        return "failed: " + ", ".join(failed)
    return f"{len(alert.deliveries)} sink(s)" if alert.deliveries else "-"


@click.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Acknowledged alerts too.")
@json_option
@click.pass_context
def alerts(ctx, show_all, as_json):
    """List alerts that are not acknowledged (--all: every one), oldest first.

    An alert is open until acknowledged; one whose cause is over (the overdue item ran, a
    backup of the failed item completed) is shown resolved until acknowledged."""
    if ctx.invoked_subcommand is not None:
        return
    vault = _vault(ctx)
    vault.check_schedules()
    problems: list[str] = []
    found = vault.alerts.list(include_acknowledged=show_all, problems=problems)
    for problem in problems:
        warn(f"alert not shown: {problem}")
    if as_json:
        emit_json([{**a.to_dict(), "state": _state(a)} for a in found])
        return
    table(("ID", "TIME", "CATEGORY", "SEVERITY", "KIND", "ITEM", "STATE", "SENT", "SUMMARY"),
          [(a.alert_id, short_time(a.time), a.category, a.severity, a.kind, a.item or "-", _state(a), _sent(a),
            a.summary) for a in found])


@alerts.command()
@click.argument("alert_id", metavar="ID")
@click.option("--by", metavar="NAME", help="Who acknowledges it (default: USER@HOST).")
@json_option
@click.pass_context
def ack(ctx, alert_id, by, as_json):
    """Acknowledge alert ID (a unique prefix of it is enough)."""
    alert = _vault(ctx).alerts.ack(alert_id, by or f"{getpass.getuser()}@{socket.gethostname()}")
    if as_json:
        emit_json({**alert.to_dict(), "state": _state(alert)})
        return
    click.echo(f"acknowledged {alert.alert_id}: {alert.summary}")


@alerts.command(name="test")
@json_option
@click.pass_context
def test_command(ctx, as_json):
    """Send a test alert to every sink, whatever its category (the test alert is not
    stored).  Exits 59 naming the sinks that failed."""
    vault = _vault(ctx)
    if not vault.alert_sinks.list():
        raise AlertError(message="no alert sinks are configured; add one with 'strongroom alerts sink add'")
    deliveries = vault.alert_sinks.deliver(trial_alert(vault.clock()), every_sink=True)
    if as_json:
        emit_json([d.to_dict() for d in deliveries])
    else:
        table(("SINK", "RESULT", "DETAIL"), [(d.sink, "ok" if d.ok else "FAILED", d.detail) for d in deliveries])
    failed = [d for d in deliveries if not d.ok]
    if failed:
        raise DeliveryFailed(count=len(failed), failed="; ".join(f"{d.sink} ({d.detail})" for d in failed))


@alerts.group()
def sink():
    """Configure where alerts are sent."""


def _options(pairs: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(message=f"--option takes KEY=VALUE, not {pair!r}")
        if key.strip() in options:
            raise UsageError(message=f"--option {key.strip()} is given twice")
        options[key.strip()] = value
    return options


@sink.command(name="add")
@click.argument("name")
@click.option("--type", "type_", required=True, metavar="TYPE",
              help="The sink's type: command, webhook, email, or one a plugin adds ('alerts sink types').")
@click.option("--option", "pairs", multiple=True, metavar="KEY=VALUE", help="An option of the type (repeatable).")
@click.option("--category", type=click.Choice(SINK_CATEGORIES), default="all", show_default=True,
              help=CATEGORY_HELP)
@json_option
@click.pass_context
def sink_add(ctx, name, type_, pairs, category, as_json):
    """Add sink NAME.  Its options are stored encrypted in the vault."""
    sinks = _vault(ctx).alert_sinks
    added = sinks.add(name, type_, _options(pairs), category)
    if as_json:
        emit_json(added.shown(sinks.secret_options(added)))
        return
    extra = " and every security alert" if added.category != "security" else ""
    what = {"all": "every job alert", "job": "every job alert", "security": "every security alert"}[added.category]
    click.echo(f"added alert sink {added.name} ({added.type}): it receives {what}{extra}")


@sink.command(name="list")
@json_option
@click.pass_context
def sink_list(ctx, as_json):
    """List the sinks (secret options shown as ***)."""
    sinks = _vault(ctx).alert_sinks
    problems: list[str] = []
    found = sinks.list(problems)
    for problem in problems:
        warn(f"damaged alert sink configuration skipped: {problem}")
    shown = [s.shown(sinks.secret_options(s)) for s in found]
    if as_json:
        emit_json(shown)
        return
    table(("NAME", "TYPE", "CATEGORY", "OPTIONS"),
          [(s["name"], s["type"], s["category"] + ("" if s["category"] == "security" else " + security"),
            " ".join(f"{k}={v}" for k, v in s["options"].items())) for s in shown])


@sink.command(name="remove")
@click.argument("name")
@dry_run_option
@json_option
@click.pass_context
def sink_remove(ctx, name, dry_run, as_json):
    """Remove sink NAME.  A security alert says so, sent to every sink (this one too)."""
    removed = _vault(ctx).alert_sinks.remove(name, dry_run=dry_run)
    if as_json:
        emit_json({"name": removed.name, "type": removed.type, "category": removed.category, "removed": not dry_run,
                   "dry_run": dry_run})
        return
    if dry_run:
        click.echo(f"Would remove alert sink {removed.name} ({removed.type}, {removed.category} alerts);"
                   " a security alert would say so.")
        return
    click.echo(f"removed alert sink {removed.name} ({removed.type})")


@sink.command(name="types")
@json_option
@click.pass_context
def sink_types(ctx, as_json):
    """List the sink types the installed plugins provide, with their options."""
    registry = app(ctx).plugins.alert_sinks
    if as_json:
        emit_json([{"type": name, "description": registry.get(name).description,
                    "options": [{"name": option, "required": option in registry.get(name).required, "help": text}
                                for option, text in registry.get(name).options.items()]}
                   for name in registry.names()])
        return
    for name in registry.names():
        kind = registry.get(name)
        click.echo(f"{name}: {kind.description}")
        for option, text in kind.options.items():
            need = " (required)" if option in kind.required else ""
            click.echo(f"  {option}{need}: {text}")
