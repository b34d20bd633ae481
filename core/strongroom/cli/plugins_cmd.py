"""``strongroom plugins``: list the installed plugins, what they hook and what they registered.

The command reads the :class:`~strongroom.plugins.PluginHost` that the root group stores as
``ctx.obj.plugins``, so ``--disable-plugin`` given to the root group shows here as
"disabled".
"""

from __future__ import annotations

import click

from strongroom.cli.output import emit_json, table
from strongroom.markers import PROJECT_NAME
from strongroom.plugins import PluginHost, PluginInfo

HEADERS = ("NAME", "VERSION", "DISTRIBUTION", "STATUS", "REGISTERED", "HOOKS")
HOOK_PREFIX = f"{PROJECT_NAME}_"


def plugin_record(info: PluginInfo) -> dict[str, object]:
    """The ``--json`` form of one plugin."""
    return {
        "name": info.name,
        "version": info.version,
        "distribution": info.distribution,
        "disabled": info.blocked,
        "hooks": list(info.hooks),
        "registered": list(info.registered),
    }


def plugin_row(info: PluginInfo) -> tuple[str, ...]:
    """The table row of one plugin; hook names are shown without the common prefix."""
    hooks = [hook.removeprefix(HOOK_PREFIX) for hook in info.hooks]
    return (
        info.name,
        info.version or "-",
        info.distribution or "-",
        "disabled" if info.blocked else "enabled",
        ", ".join(info.registered) or "-",
        ", ".join(hooks) or "-",
    )


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins with their versions, hooks and registrations."""
    host = getattr(ctx.obj, "plugins", None)
    if not isinstance(host, PluginHost):
        raise RuntimeError("the root command must store a PluginHost as ctx.obj.plugins")
    infos = host.plugin_infos()
    if as_json:
        emit_json([plugin_record(info) for info in infos])
    elif not infos:
        click.echo("No plugins installed.")
    else:
        table(HEADERS, [plugin_row(info) for info in infos])


__all__ = ["plugins_command"]
