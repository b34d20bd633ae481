"""``strongroom vault replicate [--wait] [--lag] [--json]``: copy the vault to its geo secondary.

Copies what the secondary (``vault redundancy set geo --secondary URL``) lacks, in commit
order (:mod:`strongroom.services.replication`), for ``replication_timeout`` seconds at
most (``config.toml`` or ``STRONGROOM_REPLICATION_TIMEOUT``; default 5; 0, which turns
replication after backups off, leaves this command unbounded), or until done with ``--wait``; what is left waits for the next run and is said so (as is a vault that
kept changing during the run: its heads wait).  The bound holds even for a secondary
that never answers (:mod:`strongroom.services.geo`): one line, a storage exit code, and
the ``replication.lag`` alert.  ``--lag`` copies nothing and says how far behind the
secondary is.  Objects the vault lost by accident (not removed by a prune, a repair or a
deletion: :mod:`strongroom.services.georemovals`) are never deleted on the secondary: both
outputs say how many it keeps (``missing_on_primary``), with the advice to verify.  A
secondary holding another vault, or the vault's own storage, is refused (exit 17); a vault
without a geo secondary exits 2.
"""

from __future__ import annotations

import click

from .common import app, json_option
from .meter import events_mode, progress_messages, progress_options
from .output import emit_json, human_size


@click.command("replicate")
@click.option("--wait", is_flag=True, help="Run until the secondary holds everything (no time bound).")
@click.option("--lag", "lag_only", is_flag=True, help="Copy nothing: say how far behind the secondary is.")
@json_option
@progress_options
@click.pass_context
def replicate(ctx, wait, lag_only, as_json, progress_flag, progress_json):
    """Copy the vault's new objects to its geo secondary, oldest commits first."""
    from ..services.geo import replication_timeout

    vault = app(ctx).open_vault()
    secondary = vault.geo.redundancy().secondary
    if lag_only:
        lag = vault.geo.replicator().lag()
        if as_json:
            emit_json({"secondary": secondary, **lag.to_dict()})
        elif lag.in_sync:
            click.echo(f"The secondary {secondary} holds everything.")
        else:
            since = f", the oldest since {lag.oldest_point}" if lag.oldest_point else ""
            click.echo(f"The secondary {secondary} lacks {lag.objects} objects ({human_size(lag.bytes)}):"
                       f" {lag.points} point(s){since}.")
        if not as_json and lag.missing_on_primary:
            click.echo(missing_line(lag.missing_on_primary))
        return
    progress = progress_messages(as_json, progress_flag, progress_json)
    bound = replication_timeout()
    try:
        report = vault.replicate(timeout=None if wait or not bound else bound, progress=progress.show)
    finally:
        progress.done()
    if events_mode(as_json, progress_flag, progress_json):
        progress.summary({"secondary": secondary, **report.to_dict()})
        return
    if as_json:
        emit_json({"secondary": secondary, **report.to_dict()})
        return
    if report.complete:
        left = ""
    elif report.stopped == "primary changing":
        left = "; the vault kept changing meanwhile: its heads wait for the next run"
    else:
        left = "; the rest waits for the next run (--wait to finish now)"
    click.echo(f"Copied {report.copied} objects ({human_size(report.copied_bytes)}) to {secondary},"
               f" deleted {report.deleted}{left}.")
    if report.missing_on_primary:
        click.echo(missing_line(report.missing_on_primary))


def missing_line(count: int) -> str:
    """The line for objects the vault lacks that its secondary keeps (lost, not removed on purpose)."""
    return f"{count} object(s) missing on the primary kept on the secondary: run 'strongroom vault verify'"
