"""``strongroom jobs``: the history of backups, restores, verifies, prunes and item changes.

Jobs recorded on this machine only (the vault could not be written) are marked ``*``;
an ``in_progress`` job whose process is gone is shown ``abandoned``, one that cannot be
checked and is older than any job runs ``stale`` (see :mod:`strongroom.services.jobs`).
"""

from __future__ import annotations

import click

from ..models import JOB_STATES, JOB_TYPES
from .common import app, json_option
from .output import emit_json, short_time, table, warn

LOCAL_MARK = "*"


@click.command()
@click.option("--item", help="Only jobs of this item.")
@click.option("--type", "type_", type=click.Choice(JOB_TYPES), help="Only jobs of this type.")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option("--last", type=click.IntRange(min=0), default=50, show_default=True, help="Show the last N jobs (0: all).")
@json_option
@click.pass_context
def jobs(ctx, item, type_, state, last, as_json):
    """List jobs, newest last."""
    damaged: list[str] = []
    found = app(ctx).open_vault().jobs.list(item=item, type_=type_, state=state, last=last or None,
                                            problems=damaged)
    for problem in damaged:
        warn(f"job record not shown: {problem}")
    if as_json:
        emit_json([j.to_dict() for j in found])
        return
    table(
        ("JOB", "TYPE", "ITEM", "STATE", "STARTED", "ENDED", "POINT", "ERROR"),
        [(j.job_id + (LOCAL_MARK if j.local else ""), j.type, j.item or "-", j.state, short_time(j.started),
          short_time(j.ended), (j.point or "-")[:8], j.error or "") for j in found],
    )
    if any(j.local for j in found):
        click.echo(f"{LOCAL_MARK} recorded on this machine only: the vault could not be written", err=True)
