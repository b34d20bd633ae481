"""``strongroom backup ITEM [--tag T ...]``: an on-demand backup.

``--tag`` (repeatable) puts the operator's tags into the point header (``user_tags``),
which ``points --tag`` filters on: 1 to 64 characters each, no spaces, no commas.
"""

from __future__ import annotations

import re
import sys

import click

from .common import app, json_option
from .completion import complete_item
from .output import Progress, emit_json, human_size, info, warn


@click.command()
@click.argument("item", shell_complete=complete_item)
@click.option("--retain-until", metavar="WHEN",
              help="Keep this point at least until WHEN: a date (kept through that day), a date and time, or a duration (30d).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", callback=lambda ctx, param, value: _tags(value),
              help="Tag the point (repeatable; 'points --tag' finds it): no spaces or commas.")
@json_option
@click.pass_context
def backup(ctx, item, retain_until, tags, as_json):
    """Back up ITEM now and create a recovery point."""
    v = app(ctx).open_vault()
    until = None
    if retain_until is not None:
        from ..policy.durations import parse_until
        from ..policy.schedule import load_timezone

        found = v.item(item)
        policy = v.policies.find(found.policy) if found.policy else None
        until = parse_until(retain_until, v.clock(), load_timezone(policy.timezone if policy else "UTC"))
    progress = Progress(not as_json)

    def show(stats) -> None:
        progress.show(
            f"{stats.files} files, {human_size(stats.bytes_read)} read,"
            f" {stats.files_unchanged} unchanged"
        )

    point = v.backup(item, progress=show, retain_until=until, tags=tags)
    progress.done()
    for message in point.warnings:
        warn(message)
    if as_json:
        emit_json({"id": point.point_id, **point.to_dict()})
    else:
        s = point.stats
        info(
            f"Backed up '{item}': point {point.short_id}, {s['files']} files"
            f" ({s['files_unchanged']} unchanged), {human_size(s['bytes_read'])} read,"
            f" {human_size(s['new_bytes'])} new ({human_size(s['stored_bytes'])} stored)"
            f" in {s['seconds']:.1f} s"
            + (f", {len(point.warnings)} warning(s)" if point.warnings else "")
        )
    if point.warnings:
        sys.exit(1)  # completed with warnings


_TAG = re.compile(r"[^\s,]{1,64}")


def _tags(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _TAG.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not a tag: 1 to 64 characters, no spaces or commas",
                                     param_hint="'--tag'")
    return values
