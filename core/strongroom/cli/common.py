"""Helpers every command uses: the app context, ITEM[@POINT] parsing."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def app(ctx: click.Context):
    return ctx.obj  # an AppContext, set by the root group


def split_item_point(spec: str) -> tuple[str, str | None]:
    """``web@1a2b`` -> ("web", "1a2b"); ``web`` -> ("web", None)."""
    item, sep, point = spec.partition("@")
    if not item or (sep and not point):
        raise click.BadParameter(f"expected ITEM or ITEM@POINT, got {spec!r}")
    return item, point or None
