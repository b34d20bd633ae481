"""``strongroom prune``: expire points whose retention ended, free unneeded data; its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..policy.durations import format_duration, parse_duration
from ..policy.schedule import Schedule
from .common import app, json_option, ticket_option
from .meter import events_mode, progress_messages, progress_options
from .output import emit_json, human_size, short_time

if TYPE_CHECKING:
    from ..policy.prunesettings import PruneSettings


@click.group(invoke_without_command=True)
@click.option("--dry-run", is_flag=True, help="Show what would go; change nothing.")
@click.option("--grace", metavar="DURATION",
              help="Override the grace period for this run (6h, 30m; 0 only when nothing else writes to the vault).")
@click.option("--keep-last", type=click.IntRange(min=0), metavar="N",
              help="Also expire, this run, every point of each item but its newest N (soft-deleted while soft"
                   " delete is on; refused by immutability; needs a retention.shorten ticket with a guard).")
@ticket_option
@json_option
@progress_options
@click.pass_context
def prune(ctx, dry_run, grace, keep_last, ticket, as_json, progress_flag, progress_json):
    """Expire points whose retention ended, then free the data no point needs."""
    if ctx.invoked_subcommand is not None:
        return
    progress = progress_messages(as_json, progress_flag, progress_json)
    seconds = parse_duration(grace, what="grace") if grace is not None else None
    try:
        report = app(ctx).open_vault().prune(dry_run=dry_run, grace=seconds, keep_last=keep_last, ticket=ticket,
                                             progress=progress.show)
    finally:
        progress.done()
    if events_mode(as_json, progress_flag, progress_json):
        progress.summary(report.to_dict())
        return
    if as_json:
        emit_json(report.to_dict())
        return
    would = "would be " if dry_run else ""
    soft = {point["point"]: point["purge_at"] for point in report.points_soft_deleted}
    for point in report.points_expired:
        kept = f"; soft-deleted until {short_time(soft[point['point']])}" if point["point"] in soft else ""
        click.echo(f"{'would expire' if dry_run else 'expired'} {point['item']}@{point['point'][:8]}"
                   f" from {short_time(point['created'])}{kept}")
    for point in report.points_purged:
        click.echo(f"{'would purge' if dry_run else 'purged'} {point['item']}@{point['point'][:8]}"
                   f" (soft-deleted by {point['deleted_by']}, purge time {short_time(point['purge_at'])})")
    click.echo(
        f"{len(report.points_expired)} point(s) {would}expired"
        + (f" ({len(report.points_soft_deleted)} soft-deleted)" if report.points_soft_deleted else "")
        + (f", {len(report.points_purged)} {would}purged" if report.points_purged else "")
        + f"; {report.packs_deleted} pack(s) {would}deleted,"
        f" {report.packs_repacked} {would}repacked, {human_size(max(report.bytes_freed, 0))} {would}freed;"
        f" {report.blobs_marked} unneeded blob(s) ({human_size(report.bytes_marked)}) {would}marked"
        f" for a later prune; {report.cycles_pending} mark(s) waiting for their grace period"
        + ("" if dry_run else f" ({report.seconds:.1f} s)")
    )


@prune.command("settings")
@click.option("--every", metavar="Nh", help="Run prune from run-due every N hours.")
@click.option("--daily", metavar="HH:MM[,...]", help="Run prune from run-due daily at these times (default 03:00).")
@click.option("--weekly", metavar="DAYS@TIMES", help="Run prune from run-due weekly, e.g. sun@04:00.")
@click.option("--timezone", metavar="ZONE", help="Timezone of the prune schedule (default UTC).")
@click.option("--unscheduled", is_flag=True, help="run-due never prunes; run 'strongroom prune' yourself.")
@click.option("--grace", metavar="DURATION", help="Grace period before marked data is deleted (default 6h).")
@click.option("--repack-threshold", type=float, metavar="FRACTION",
              help="Repack a pack once this share of its bytes is unneeded (default 0.2).")
@click.option("--lease-ttl", metavar="DURATION", help="How long prune's lease lasts without renewal (default 5m).")
@json_option
@click.pass_context
def settings(ctx, every, daily, weekly, timezone, unscheduled, grace, repack_threshold, lease_ttl, as_json):
    """Show or change when run-due prunes and how carefully."""
    import attrs

    v = app(ctx).open_vault()
    current = v.prune_settings
    kinds = [(k, t) for k, t in (("every", every), ("daily", daily), ("weekly", weekly)) if t]
    if len(kinds) + bool(unscheduled) > 1:
        raise click.UsageError("give one of --every, --daily, --weekly or --unscheduled")
    changes: dict = {}
    if kinds:
        changes["schedule"] = getattr(Schedule, kinds[0][0])(kinds[0][1], timezone or "UTC")
    elif timezone and current.schedule is not None:
        changes["schedule"] = attrs.evolve(current.schedule, timezone=timezone)
    if unscheduled:
        changes["schedule"] = None
    if grace is not None:
        changes["grace"] = parse_duration(grace, what="grace")
    if lease_ttl is not None:
        changes["lease_ttl"] = parse_duration(lease_ttl, what="lease time")
    if repack_threshold is not None:
        changes["repack_threshold"] = repack_threshold
    if changes:
        try:
            current = v.set_prune_settings(attrs.evolve(current, **changes))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    if as_json:
        emit_json(current.to_dict())
        return
    click.echo(f"schedule:         {current.schedule.describe() if current.schedule else 'not run by run-due'}")
    click.echo(f"grace:            {format_duration(current.grace)}")
    click.echo(f"repack threshold: {current.repack_threshold:g}")
    click.echo(f"lease ttl:        {format_duration(current.lease_ttl)}")


def __getattr__(name: str):
    # PruneSettings is still importable from here, without loading the engine at start-up.
    if name == "PruneSettings":
        from ..policy.prunesettings import PruneSettings

        return PruneSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PruneSettings", "prune"]
