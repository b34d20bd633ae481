"""``strongroom vault redundancy``: show or set how the vault's storage keeps copies.

- ``vault redundancy [show] [--json]``: the kind (``local``, ``zonal``, ``geo``) and, for
  ``geo``, the secondary URL.
- ``vault redundancy set KIND [--secondary URL] [--json]``: change it, only while no item
  is protected (every item deleted; exit 16 otherwise) and as the rules of
  :mod:`strongroom.policy.redundancy` allow for this vault's URL (exit 15: zonal on a
  store that cannot replicate by itself, geo without a secondary or with the vault's own
  URL).  Journaled as ``vault.redundancy``.

The secondary's storage options are the user's (``[storage."URL"]`` in
``$STRONGROOM_HOME/config.toml``), never written to the vault.
"""

from __future__ import annotations

import click

from ..policy.redundancy import KINDS
from .common import app, json_option
from .output import emit_json

__all__ = ["redundancy"]


def _echo(v, record, as_json: bool, message: str | None = None) -> None:
    if as_json:
        emit_json({"url": v.url, **record.to_dict()})
        return
    if message:
        click.echo(message)
    click.echo(f"Redundancy: {record.describe()}")


@click.group("redundancy", invoke_without_command=True)
@json_option
@click.pass_context
def redundancy(ctx, as_json) -> None:
    """How the vault's storage keeps copies: local, zonal (the storage's own replication) or geo."""
    if ctx.invoked_subcommand is None:
        v = app(ctx).open_vault()
        _echo(v, v.redundancy, as_json)


@redundancy.command("show")
@json_option
@click.pass_context
def show(ctx, as_json):
    """Show the vault's redundancy."""
    v = app(ctx).open_vault()
    _echo(v, v.redundancy, as_json)


@redundancy.command("set")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--secondary", metavar="URL", default=None,
              help="For geo: the store in another location that holds the second copy.")
@json_option
@click.pass_context
def set_(ctx, kind, secondary, as_json):
    """Set the redundancy to KIND (only while no item is protected)."""
    v = app(ctx).open_vault()
    record = v.set_redundancy(kind, secondary)
    _echo(v, record, as_json, "Changed the vault's redundancy.")
