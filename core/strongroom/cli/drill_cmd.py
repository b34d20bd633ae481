"""``strongroom drill ITEM [--point ID] [--from-secondary] [--json]``: a restore drill of one point.

The point (default: the latest intact one) is restored into a scratch folder, checked
against the point by the item's workload, and the folder removed
(:mod:`strongroom.services.drill`); the drill is a ``drill`` job.  A mismatch is one
error line naming it, exit 50 (with ``--json`` the report is printed first); a failed
drill also raises a ``drill.failed`` alert.  ``--from-secondary`` drills the vault's geo
secondary (read-only: the job is recorded on this machine), as ``restore`` reads it.
"""

from __future__ import annotations

import click

from ..errors import IntegrityError
from .common import app, json_option
from .completion import complete_item
from .output import Progress, emit_json, human_size, warn


@click.command()
@click.argument("item", shell_complete=complete_item)
@click.option("--point", "ref", metavar="ID", help="The point to drill (an id prefix; default: the latest).")
@click.option("--scratch", "scratch_root", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="Make the scratch folder under DIR (default: the system's temporary folder).")
@click.option("--from-secondary", is_flag=True,
              help="Drill from the vault's geo secondary (read-only), as this machine recorded it.")
@json_option
@click.pass_context
def drill(ctx, item, ref, scratch_root, from_secondary, as_json):
    """Restore a point into a scratch folder, check it against the point, remove it."""
    app(ctx).from_secondary = app(ctx).from_secondary or from_secondary
    progress = Progress(not as_json)

    def show(stats) -> None:
        progress.show(f"restoring: {stats.files} files, {human_size(stats.bytes_written)} written")

    try:
        report = app(ctx).open_vault().drill(item, ref, scratch_root=scratch_root, progress=show)
    except IntegrityError as exc:
        progress.done()
        failed = getattr(exc, "report", None)
        if as_json and failed is not None:
            emit_json(failed.to_dict())
        raise
    progress.done()
    if not report.scratch_removed:
        warn(f"the scratch folder {report.scratch} could not be removed")
    if as_json:
        emit_json(report.to_dict())
    else:
        where = " from the secondary" if report.source == "secondary" else ""
        click.echo(f"Drill of {report.item}@{report.point[:8]} ({report.workload}){where}: passed;"
                   f" {report.files} files, {human_size(report.bytes)} checked in {report.seconds:.1f} s; scratch folder removed:"
                   f" {'yes' if report.scratch_removed else 'no'}")
        click.echo(f"  {report.method}")
    if not report.scratch_removed:
        ctx.exit(1)
