"""``strongroom protect WORKLOAD ITEM ...``: one subcommand per registered workload."""

from __future__ import annotations

import click

from ..plugins import PluginHost
from .common import app, json_option
from .output import emit_json


def _policy_option() -> click.Option:
    """The option every ``protect <workload>`` command has."""
    return click.Option(["--policy"], metavar="NAME",
                        help="Back the item up and keep its points as policy NAME says.")


def _workload_command(name: str, plugins: PluginHost) -> click.Command:
    workload = plugins.workloads.get(name)()

    @click.pass_context
    def callback(ctx: click.Context, item: str, as_json: bool, policy: str | None, **options) -> None:
        v = app(ctx).open_vault()
        source = v.workload(name).source_from_options(options)
        protected = v.protect(name, item, source, policy=policy)
        if as_json:
            emit_json(protected.to_dict())
        else:
            following = f"; policy '{policy}'" if policy else ""
            click.echo(f"Protected '{protected.name}' ({name}): {v.workload(name).describe(protected.source)}{following}")

    params = [click.Argument(["item"]), _policy_option()] + workload.protect_params()
    command = click.Command(name, callback=callback, params=params,
                            help=f"Protect {workload.description or name} as item ITEM.")
    return json_option(command)


def build_protect_group(plugins: PluginHost) -> click.Group:
    group = click.Group("protect", help="Put a source under protection as a new item.")
    for name in plugins.workloads.names():
        if getattr(plugins.workloads.get(name), "protectable", True):
            group.add_command(_workload_command(name, plugins))
    return group
