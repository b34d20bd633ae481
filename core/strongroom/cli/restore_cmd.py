"""``strongroom restore ITEM[@POINT] [--target DIR] [PATH ...]``.

The command's options are the core's (``--target``, ``--force``, ``--overwrite``,
``--json``) plus every workload's ``restore_params()``, collected when the command line
is built; workloads read their values, and ``force`` and ``overwrite``, from the
``options`` given to ``Workload.restore`` (``overwrite`` also reaches
``PointContext.restore_paths`` and ``write_entries`` by itself).  ``--help`` (and the
manual page) shows the core's options first, then each workload's in a section named
after it ("postgres options"); an option two workloads declare is shown once, in a
section naming both.
"""

from __future__ import annotations

import click

from ..models import OVERWRITE_MODES
from ..plugins import PluginHost
from .common import app, json_option, split_item_point
from .completion import complete_point
from .meter import events_mode, progress_for, progress_options
from .output import emit_json, human_size, info, warn


def build_restore_command(plugins: PluginHost) -> click.Command:
    extra: list[click.Parameter] = []
    owners: dict[str, list[str]] = {}  # a workload option's name -> the workloads that declare it
    core = {"target", "as_json", "spec", "paths", "force", "overwrite", "from_secondary", "progress_flag",
            "progress_json"}
    for name in plugins.workloads.names():
        for param in plugins.workloads.get(name)().restore_params():
            if param.name in core:
                continue
            if param.name not in owners:
                extra.append(param)
            if name not in owners.setdefault(param.name, []):
                owners[param.name].append(name)
    extra_names = [p.name for p in extra] + ["force", "overwrite"]

    @click.pass_context
    def restore(ctx, spec, paths, target, as_json, from_secondary=False, progress_flag=False,
                progress_json=False, **options):
        """Restore a recovery point (default: the latest), or only PATHs of it.

        For files, paths keep their place in the point: restoring
        'srv/www/index.html' into DIR writes DIR/srv/www/index.html.
        """
        item, point = split_item_point(spec)
        app(ctx).from_secondary = app(ctx).from_secondary or from_secondary
        progress = progress_for(as_json, progress_flag, progress_json)
        events = events_mode(as_json, progress_flag, progress_json)
        vault = app(ctx).open_vault()
        total = total_files = None
        if progress.active and not paths:  # the whole point: its counters are the total
            try:
                counters = vault.point(item, point).stats or {}
                total, total_files = counters.get("bytes_total") or None, counters.get("files") or None
            except Exception:  # noqa: BLE001 - the restore itself reports what is wrong
                pass

        def show(stats) -> None:
            progress.update(bytes=stats.bytes_written, files=stats.files, total=total, total_files=total_files,
                            current=stats.current)

        try:
            result = vault.restore(
                item, point, target, paths, options={k: options.get(k) for k in extra_names},
                progress=show if progress.active else None,
            )
            s = result.stats  # everything is written: what was written is the total
            progress.update(bytes=s.bytes_written, total=s.bytes_written, files=s.files, total_files=s.files,
                            current="")
        finally:
            progress.done()
        for message in result.warnings:
            warn(message)
        s = result.stats
        if events:
            progress.summary({"target": target, "stats": s.to_dict(), "warnings": list(result.warnings),
                              "summary": result.summary or None})
        elif as_json:
            emit_json({"target": target, "stats": s.to_dict(), "warnings": list(result.warnings),
                       "summary": result.summary or None})
        elif result.summary:
            info(result.summary)
        else:
            kept = f"; {s.skipped} kept as they were (--overwrite {options.get('overwrite')})" if s.skipped else ""
            info(
                f"Restored {s.files} files, {s.dirs} folders, {s.links} links"
                f" ({human_size(s.bytes_written)}) into {target} in {s.seconds:.1f} s{kept}"
            )
        if result.warnings:
            ctx.exit(1)  # completed with warnings, as for backup

    params = [
        click.Argument(["spec"], metavar="ITEM[@POINT]", shell_complete=complete_point),
        click.Argument(["paths"], nargs=-1, metavar="[PATH ...]"),
        click.Option(["--target"], type=click.Path(file_okay=False), metavar="DIR",
                     help="Folder to restore into (created if missing)."),
        click.Option(["--force"], is_flag=True, default=False,
                     help="Replace what already exists where the restore writes, where the workload"
                          " refuses to by default (a database, the tables being restored, a file)."),
        click.Option(["--overwrite"], type=click.Choice(OVERWRITE_MODES), default="always", show_default=True,
                     help="What to do about entries that already exist in the target: replace them 'always',"
                          " only 'if-newer' (the point's is modified later), or 'never'. A folder that is not"
                          " empty is never replaced."),
        click.Option(["--from-secondary"], is_flag=True, default=False,
                     help="Restore from the vault's geo secondary (read-only), as this machine recorded it."),
        *extra,
    ]
    return progress_options(json_option(RestoreCommand("restore", callback=restore, params=params, help=restore.__doc__,
                                      owners=owners)))


class RestoreCommand(click.Command):
    """``restore``, its help showing the options in sections: those for every workload,
    then each workload's own ("postgres options", "vm options"...), the names unchanged."""

    def __init__(self, *args, owners: dict[str, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.owners = owners

    def option_sections(self, ctx: click.Context) -> list[tuple[str, list[click.Parameter]]]:
        """(title, options) in the order shown; the manual page (:mod:`.manpage`) uses them too."""
        common: list[click.Parameter] = []
        by_workloads: dict[tuple[str, ...], list[click.Parameter]] = {}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue
            names = tuple(self.owners.get(param.name, ()))
            (by_workloads.setdefault(names, []) if names else common).append(param)
        return [("Options (every workload)", common)] + [
            (f"{' and '.join(names)} options", params) for names, params in by_workloads.items()]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, params in self.option_sections(ctx):
            records = [record for param in params if (record := param.get_help_record(ctx))]
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
