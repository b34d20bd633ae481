"""``strongroom items update ITEM [workload options] [--policy NAME]``: change a protected item.

The command's options are every workload's ``protect_params()`` (none required here),
collected when the command line is built, as ``restore`` collects its options.  The
options given on the command line replace the keys of the item's source of the same name
(``--path`` the ``paths``, ``--exclude`` the ``excludes``: a repeatable option gives the
whole new list); the workload checks the result (``validate_source``) and the next backup
follows it.  An option the item's workload does not take, or one that is not kept under
its own name in the source (a postgres connection option), is refused: protect the
source as a new item instead.  Writes a new item version (:meth:`Vault.update_item`).
"""

from __future__ import annotations

import copy

import click
from click.core import ParameterSource

from ..errors import UsageError
from ..plugins import PluginHost
from .common import app, json_option, ticket_option
from .completion import complete_item
from .output import emit_json


def _options(plugins: PluginHost) -> tuple[list[click.Parameter], dict[str, set[str]]]:
    """Every workload's protect options, none required, each help saying whose it is (an
    option several workloads have: all of them), and which workload takes which."""
    params: dict[str, click.Parameter] = {}
    owners: dict[str, list[str]] = {}
    taken: dict[str, set[str]] = {}
    for name in plugins.workloads.names():
        for param in plugins.workloads.get(name)().protect_params():
            taken.setdefault(name, set()).add(param.name or "")
            if param.name in ("policy", "item", "ticket", "as_json"):
                continue
            owners.setdefault(param.name or "", []).append(name)
            if param.name not in params:
                loose = copy.copy(param)
                loose.required = False
                params[param.name or ""] = loose
    for key, param in params.items():
        if isinstance(param, click.Option):
            param.help = f"[{', '.join(owners[key])}] {param.help or ''}".rstrip()
    return list(params.values()), taken


def build_update_command(plugins: PluginHost) -> click.Command:
    params, taken = _options(plugins)
    names = [p.name for p in params]

    @click.pass_context
    def update(ctx: click.Context, item: str, policy: str | None, ticket: str | None, as_json: bool, **options):
        """Change protected ITEM: its source (the workload's options, as for protect) or its
        policy; the next backup follows the change."""
        given = {n: options[n] for n in names
                 if ctx.get_parameter_source(n) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
        vault = app(ctx).open_vault()
        found = vault.item(item)
        source = _new_source(vault, found, given, taken.get(found.workload, set())) if given else None
        updated = vault.update_item(item, source=source, policy=policy, ticket=ticket)
        if as_json:
            emit_json({**updated.to_dict(), "changed": updated.version != found.version})
        elif updated.version == found.version:
            click.echo(f"'{item}' is unchanged.")
        else:
            described = vault.workload(updated.workload).describe(updated.source)
            following = f"; policy '{updated.policy}'" if updated.policy else ""
            click.echo(f"Updated '{item}': {described}{following}; the next backup follows it.")

    command = click.Command(
        "update", callback=update, help=update.__doc__,
        params=[click.Argument(["item"], shell_complete=complete_item),
                click.Option(["--policy"], metavar="NAME", help="Follow policy NAME from now on."),
                *params])
    return json_option(ticket_option(command))


def _shown(name: str) -> str:
    """The option of parameter ``name`` as typed (``--disk`` for ``disks``)."""
    param = next((p for p in click.get_current_context().command.params if p.name == name), None)
    return max(param.opts, key=len) if param is not None and param.opts else f"--{name.replace('_', '-')}"


def _new_source(vault, item, given: dict, accepted: set[str]) -> dict:
    """``item``'s source with the keys ``given`` replaced (see the module docstring)."""
    foreign = sorted(n for n in given if n not in accepted)
    if foreign:
        raise UsageError(message=f"item '{item.name}' is a {item.workload} item: {_shown(foreign[0])}"
                                 f" is not one of its options")
    built = vault.workload(item.workload).source_from_options(given)
    # a key the workload builds under the option's name is kept, even if the item's source
    # predates it (an item protected before the workload had that option)
    unkept = sorted(n for n in given if n not in built)
    if unkept:
        raise UsageError(message=f"{_shown(unkept[0])} of a {item.workload} item cannot be changed"
                                 " in place: protect the source again as a new item")
    return {**item.source, **{n: built[n] for n in given}}
