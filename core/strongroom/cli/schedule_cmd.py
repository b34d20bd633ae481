"""``strongroom schedule``, ``run-due`` and ``agent``: scheduled backups, drills and prunes.

``run-due`` and ``agent`` print one line per run; a failed backup, prune or drill is an
``error:`` line on standard error (run-due then exits 79, the agent goes on).  Every line
the agent prints starts with an ISO 8601 time and its offset (:mod:`.stamped`); with
``--json`` its reports are one compact JSON document per line on standard output, not
stamped (each has its ``started``).  Under systemd (``$NOTIFY_SOCKET``) the agent says
``READY=1`` once it watches the vault, ``WATCHDOG=1`` after each pass and every half
watchdog period (``$WATCHDOG_USEC``), and ``STOPPING=1`` when asked to stop
(:mod:`.sdnotify`).
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import click

from ..errors import DueWorkFailed, StrongroomError
from ..processes import deferrable
from .common import app, json_option
from .output import emit_json, error, info, short_time, table

if TYPE_CHECKING:  # the scheduler is imported by the commands that run, not at start-up
    from ..services.schedule import DueReport


@click.command("schedule")
@json_option
@click.pass_context
def schedule(ctx, as_json):
    """Show when each item's backups (and drills, and the prune) last ran and run next
    (next runs in the timezone of the item's policy, named)."""
    v = app(ctx).open_vault()
    rows = v.schedule()
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    zones = {p.name: p.schedule.timezone for p in v.policies.list()}
    table(("ITEM", "POLICY", "STATE", "LAST RUN", "NEXT RUN", "DUE"),
          [(_subject(row.kind, row.name), row.policy or "-", row.state, short_time(row.last_run),
            short_time(row.next_run, zones.get(row.policy or "")), "yes" if row.due else "")
           for row in rows])


def _subject(kind: str, name: str) -> str:
    return {"backup": name, "drill": f"{name} (drill)"}.get(kind, "prune")


def _show(report: DueReport, as_json: bool, one_line: bool = False) -> None:
    if as_json:
        if one_line:
            emit_json(report.to_dict(), compact=True)
        else:
            emit_json(report.to_dict())
        return
    for kind, name, outcome, detail in report.results:
        what = f"{kind} of '{name}'" if kind in ("backup", "drill") else "prune"
        line = f"{what}: {outcome}" + (f" ({detail})" if detail else "")
        if outcome == "failed":
            error(line)
        else:
            info(line)


@click.command("run-due")
@json_option
@click.pass_context
def run_due(ctx, as_json):
    """Run every scheduled backup whose time has come, then prune and drill if due (for cron or a timer)."""
    report = app(ctx).open_vault().run_due()
    _show(report, as_json)
    if not as_json and not report.results:
        info("Nothing is due.")
    failed = report.failed
    if failed:
        raise DueWorkFailed(count=len(failed), total=len(report.results),
                            failed="; ".join(f"{name}: {detail}" for _, name, _, detail in failed))


@click.command("agent")
@click.option("--interval", type=float, default=60.0, show_default=True, metavar="SECONDS",
              help="How often to look for due work.")
@json_option
@click.pass_context
def agent(ctx, interval, as_json):
    """Run due backups, prunes and drills in a loop until SIGTERM or Ctrl-C (work in progress finishes)."""
    from .sdnotify import Notifier
    from .stamped import stamped_output

    notifier = Notifier.from_env()
    with stamped_output(stdout=not as_json):
        try:
            _agent(ctx, interval, as_json, notifier)
        except StrongroomError as exc:  # its line stamped too; the exit code as for any command
            if os.environ.get("STRONGROOM_DEBUG"):
                raise
            click.echo(f"strongroom: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _agent(ctx, interval, as_json, notifier):
    from ..services.schedule import Agent

    first = app(ctx).open_vault()

    def on_report(report: DueReport) -> None:
        if report.results:
            _show(report, as_json, one_line=True)
        notifier.watchdog()

    def on_error(exc: BaseException) -> None:
        error(f"run-due failed: {exc}")
        notifier.watchdog()

    runner = Agent(first.reopen, interval=interval, on_report=on_report, on_error=on_error)

    def stop(signum, frame):
        if runner.stopping:  # asked twice: stop now
            raise KeyboardInterrupt
        notifier.stopping("stopping after the work in progress")
        click.echo("strongroom agent: stopping after the work in progress", err=True)
        runner.stop()

    on_signal = deferrable(stop)  # never inside a child's start (see processes.start_child)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    beating = notifier.keep_alive()
    try:
        click.echo(f"strongroom agent: watching {first.url} every {interval:g} s", err=True)
        notifier.ready(f"watching {first.url} every {interval:g} s")
        runner.run()
    finally:
        beating.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("strongroom agent: stopped", err=True)
