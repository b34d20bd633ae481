"""``strongroom items``: the protected items of the vault."""

from __future__ import annotations

import click

from .common import app, json_option
from .output import emit_json, table


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def items(ctx, as_json):
    """List protected items."""
    if ctx.invoked_subcommand is not None:
        return
    v = app(ctx).open_vault()
    found = v.items()
    if as_json:
        emit_json([i.to_dict() for i in found])
        return
    rows = []
    for i in found:
        try:
            source = v.workload(i.workload).describe(i.source)
        except Exception:  # a workload whose plugin is not installed
            source = "(workload plugin not installed)"
        rows.append((i.name, i.workload, i.state, i.policy or "-", source))
    table(("ITEM", "WORKLOAD", "STATE", "POLICY", "SOURCE"), rows)
