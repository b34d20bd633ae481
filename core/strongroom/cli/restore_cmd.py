"""``strongroom restore ITEM[@POINT] --target DIR [PATH ...]``."""

from __future__ import annotations

import click

from .common import app, json_option, split_item_point
from .output import Progress, emit_json, human_size, warn


@click.command()
@click.argument("spec", metavar="ITEM[@POINT]")
@click.argument("paths", nargs=-1, metavar="[PATH ...]")
@click.option("--target", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder to restore into (created if missing).")
@json_option
@click.pass_context
def restore(ctx, spec, paths, target, as_json):
    """Restore a recovery point (default: the latest), or only PATHs of it, under DIR.

    Paths keep their place in the point: restoring 'srv/www/index.html' into DIR
    writes DIR/srv/www/index.html.
    """
    item, point = split_item_point(spec)
    progress = Progress(not as_json)

    def show(stats) -> None:
        progress.show(f"{stats.files} files, {human_size(stats.bytes_written)} written")

    result = app(ctx).open_vault().restore(item, point, target, paths, progress=show)
    progress.done()
    for message in result.warnings:
        warn(message)
    s = result.stats
    if as_json:
        emit_json({"target": target, "stats": s.to_dict(), "warnings": list(result.warnings)})
    else:
        click.echo(
            f"Restored {s.files} files, {s.dirs} folders, {s.links} links"
            f" ({human_size(s.bytes_written)}) into {target} in {s.seconds:.1f} s"
        )
