"""``strongroom vault upgrade [--dry-run]``: move a vault to the newest format in place.

Without ``--dry-run`` it upgrades (:mod:`strongroom.services.upgrade` says what is written
and in which order); with it, it only says what it would change.  ``--apply``, the flag
that once made the upgrade happen, is still accepted (hidden) and means the default.
A vault already in the newest format is left alone (nothing is written, not even a
journal entry).  A vault of a format newer than this strongroom is refused before
anything is read (UnsupportedFormat, exit 13).
"""

from __future__ import annotations

import click

from ..errors import UsageError
from .common import app, json_option
from .output import emit_json


@click.command("upgrade")
@click.option("--dry-run", is_flag=True, help="Only say what the upgrade would change; write nothing.")
@click.option("--apply", is_flag=True, hidden=True, help="Upgrade (the default; kept for old scripts).")
@json_option
@click.pass_context
def upgrade(ctx, dry_run, apply, as_json):
    """Move the vault to the newest format in place; stored data is kept as it is."""
    if dry_run and apply:
        raise UsageError(message="--dry-run and --apply contradict each other: give one")
    v = app(ctx).open_vault()
    report = v.upgrade()  # what it would change: a vault already upgraded is left alone, unjournaled
    if report.needed and not dry_run:
        report = v.upgrade(apply=True)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.needed:
        click.echo(f"The vault is in format {report.to_format}, the newest: nothing to upgrade.")
        return
    for change in report.changes:
        click.echo(f"{'Would change' if report.dry_run else 'Changed'}: {change}")
    if report.dry_run:
        click.echo(f"Dry run: nothing was changed; run 'strongroom vault upgrade' to move the vault"
                   f" from format {report.from_format} to {report.to_format} (versions of strongroom that do"
                   " not know it will refuse the vault).")
    else:
        click.echo(f"Upgraded to format {report.to_format}: new data is written in it; what is stored stays"
                   " readable as it is.")
