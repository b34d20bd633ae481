"""``strongroom vault guard``: link a vault to a guard, unlink it, show the link.

- ``vault guard link PUBLIC_KEY_FILE`` links the vault to the guard's public key (made by
  ``strongroom guard keygen``).  Linking a vault that has no guard needs nothing; linking
  it to another key replaces the guard, which needs a ``guard.unlink`` ticket signed by
  the guard linked now (``--ticket FILE``).  Linking the same key again changes nothing.
- ``vault guard unlink --ticket FILE [--json]`` removes the link (a ``guard.unlink`` ticket).
- ``vault guard show [--json]`` says whether a guard is linked, its key and since when.

Every change goes through :meth:`strongroom.services.security.SecurityService.change`:
it is journaled, refused without the ticket it needs (exit 66/67, journaled and
alerted), and an unlink raises a security alert.
"""

from __future__ import annotations

import attrs
import click

from ..models import iso
from ..policy.security import GuardLink
from .common import app, json_option, ticket_option
from .output import emit_json, short_time


@click.group("guard")
def guard() -> None:
    """The vault's guard: the key whose tickets critical operations need."""


@guard.command("link")
@click.argument("public_key_file", type=click.Path(dir_okay=False))
@ticket_option
@json_option
@click.pass_context
def link(ctx, public_key_file, ticket, as_json):
    """Link the vault to the guard whose public key is in PUBLIC_KEY_FILE (guard keygen's FILE.pub)."""
    from pathlib import Path

    from ..services.tickets import load_public_key

    key = load_public_key(Path(public_key_file))
    v = app(ctx).open_vault()
    current = v.security.settings
    if current.guard.public_key == key:
        message = "The vault is already linked to this guard: nothing changed."
    else:
        new = attrs.evolve(current, guard=GuardLink(public_key=key, linked_at=iso(v.clock())))
        v.security.change(new, ticket=ticket, operation="guard.link", params={"public_key": key})
        message = f"Linked vault {v.vault_id} to the guard {key}: critical operations now need its tickets."
    if as_json:
        emit_json(_show(v))
    else:
        click.echo(message)


@guard.command("unlink")
@ticket_option
@json_option
@click.pass_context
def unlink(ctx, ticket, as_json):
    """Unlink the vault's guard (needs a guard.unlink ticket)."""
    v = app(ctx).open_vault()
    current = v.security.settings
    if not current.guard.linked:
        if as_json:
            emit_json({**_show(v), "unlinked": None})
        else:
            click.echo("The vault has no guard: nothing changed.")
        return
    v.security.change(attrs.evolve(current, guard=GuardLink()), ticket=ticket, operation="guard.unlink",
                      params={"public_key": current.guard.public_key})
    if as_json:
        emit_json({**_show(v), "unlinked": current.guard.public_key})
    else:
        click.echo(f"Unlinked the guard {current.guard.public_key} from vault {v.vault_id}.")


@guard.command("show")
@json_option
@click.pass_context
def show(ctx, as_json):
    """Show whether the vault is linked to a guard, and to which key."""
    data = _show(app(ctx).open_vault())
    if as_json:
        emit_json(data)
    elif data["linked"]:
        click.echo(f"Guard:     strongroom-guard-ed25519 {data['public_key']}")
        click.echo(f"Linked at: {short_time(data['linked_at'])}")
        click.echo(f"Vault id:  {data['vault_id']} (what guard sign --vault-id takes)")
    else:
        click.echo("No guard is linked: critical operations need no ticket"
                   " (link one with 'strongroom vault guard link PUBLIC_KEY_FILE').")


def _show(v) -> dict:
    link = v.security.settings.guard
    return {"vault_id": v.vault_id, "linked": link.linked, "public_key": link.public_key, "linked_at": link.linked_at}
