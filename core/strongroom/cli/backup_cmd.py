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
from .meter import events_mode, progress_for, progress_options
from .output import emit_json, human_size, info, warn


@click.command()
@click.argument("item", shell_complete=complete_item)
@click.option("--retain-until", metavar="WHEN",
              help="Keep this point at least until WHEN: a date (kept through that day), a date and time, or a duration (30d).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", callback=lambda ctx, param, value: _tags(value),
              help="Tag the point (repeatable; 'points --tag' finds it): no spaces or commas.")
@json_option
@progress_options
@click.pass_context
def backup(ctx, item, retain_until, tags, as_json, progress_flag, progress_json):
    """Back up ITEM now and create a recovery point.

    On a terminal a line shows the bytes and files done of the expected total (from the
    latest point, or a quick scan of the paths), the rate and the ETA; --progress-json
    prints them as JSON events instead.
    """
    v = app(ctx).open_vault()
    until = None
    if retain_until is not None:
        from ..policy.durations import parse_until
        from ..policy.schedule import load_timezone

        found = v.item(item)
        policy = v.policies.find(found.policy) if found.policy else None
        until = parse_until(retain_until, v.clock(), load_timezone(policy.timezone if policy else "UTC"))
    progress = progress_for(as_json, progress_flag, progress_json)
    events = events_mode(as_json, progress_flag, progress_json)
    estimate = None
    seen = []  # the engine's live counters, once it has reported

    def show(stats) -> None:
        seen[:] = [stats]
        progress.update(bytes=stats.bytes_done, files=stats.files_read + stats.files_unchanged,
                        total=max(stats.bytes_estimate, estimate.bytes) or None,
                        total_files=max(stats.files, estimate.files) or None, current=stats.current)

    if progress.active:
        from .estimate import backup_estimate

        estimate = backup_estimate(v, item)
    try:
        point = v.backup(item, progress=show if estimate is not None else None, retain_until=until, tags=tags)
        if seen:  # everything is read: what was done is the total, whatever the estimate said
            done = seen[0]
            progress.update(bytes=done.bytes_done, total=done.bytes_done, files=done.files_read + done.files_unchanged,
                            total_files=done.files_read + done.files_unchanged, current="")
    finally:
        if estimate is not None:
            estimate.stop()
        progress.done()
    for message in point.warnings:
        warn(message)
    if events:
        progress.summary({"id": point.point_id, **point.to_dict()})
    elif as_json:
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
