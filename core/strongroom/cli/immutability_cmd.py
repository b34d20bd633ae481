"""``strongroom vault immutability`` and ``strongroom vault recover-objects``.

- ``vault immutability enable [--lock-days N]``: no point may be deleted before it
  expires, retention may only grow; on storage with S3 object lock every object is
  locked too (GOVERNANCE, ``N`` days, extended while points need it), starting with
  the objects already there.
- ``vault immutability disable [--ticket FILE]``: a weakening (an
  ``immutability.disable`` ticket when the vault has a guard; refused once locked).
  Object locks already set stay until they lapse.
- ``vault immutability lock [--client-side-only]``: irreversible; objects are locked in
  COMPLIANCE.  Refused (:class:`~strongroom.errors.ObjectLockUnavailable`, nothing
  changed) on storage without object lock unless ``--client-side-only`` is given:
  strongroom then refuses early deletes itself, but anyone holding the storage
  credentials can still delete the objects.
- ``vault immutability show [--json]``: the state and what the storage enforces.
- ``vault recover-objects [--apply] [--json]``: the vault's objects hidden by a delete
  marker (a raw ``DeleteObject`` by someone holding the storage credentials, on a
  versioned bucket); ``--apply`` removes the markers, which brings the objects back.
  It works without the key (the vault's identity may be hidden too) and is journaled
  once the vault opens again.

Every settings change goes through :meth:`strongroom.services.security.SecurityService.change`
(journaled, tickets and irreversible states checked there).
"""

from __future__ import annotations

import attrs
import click

from .common import app, json_option, ticket_option
from .output import emit_json, short_time, table

__all__ = ["immutability", "recover_objects"]


@click.group("immutability")
def immutability() -> None:
    """Immutability: no point deleted before it expires, enforced by S3 object lock where the storage has it."""


def _show(v) -> dict:
    return v.object_locks.describe()


def _echo_state(v, message: str, as_json: bool, extension=None) -> None:
    if as_json:
        emit_json({**_show(v), **({"extension": extension.to_dict()} if extension is not None else {})})
        return
    click.echo(message)
    click.echo(v.object_locks.summary())
    if extension is not None and extension.ran:
        line = f"Locked {extension.extended} object(s) in {extension.mode} until {short_time(extension.until)}"
        if extension.kept_governance:
            line += (f"; {extension.kept_governance} stay GOVERNANCE (changing their mode needs credentials "
                     "with BypassGovernanceRetention)")
        click.echo(line + ".")


def _change(v, ticket: str | None, operation: str, params: dict, **changes):
    from ..policy.security import Immutability

    current = v.security.settings
    new_imm = Immutability(**{**attrs.asdict(current.immutability), **changes})
    v.security.change(attrs.evolve(current, immutability=new_imm), ticket=ticket, operation=operation,
                      params=params)
    return new_imm


@immutability.command("enable")
@click.option("--lock-days", type=click.IntRange(min=1), default=None, metavar="N",
              help="How long objects are locked on storage, extended while points need them (default: 30).")
@json_option
@click.pass_context
def enable(ctx, lock_days, as_json):
    """Turn immutability on (GOVERNANCE object locks on storage that has object lock)."""
    v = app(ctx).open_vault()
    current = v.security.settings.immutability
    days = lock_days if lock_days is not None else current.lock_days
    if current.state == "enabled" and days == current.lock_days:
        _echo_state(v, "Immutability is already enabled: nothing changed.", as_json)
        return
    state = "locked" if current.state == "locked" else "enabled"
    _change(v, None, "immutability.enable", {"lock_days": str(days)}, state=state, lock_days=days)
    extension = v.object_locks.extend(reason="immutability enabled")
    _echo_state(v, f"Immutability {state}: no recovery point may be deleted before it expires.", as_json, extension)


@immutability.command("disable")
@ticket_option
@json_option
@click.pass_context
def disable(ctx, ticket, as_json):
    """Turn immutability off (needs an immutability.disable ticket when the vault has a guard)."""
    v = app(ctx).open_vault()
    if v.security.settings.immutability.state == "disabled":
        _echo_state(v, "Immutability is already disabled: nothing changed.", as_json)
        return
    _change(v, ticket, "immutability.disable", {}, state="disabled")
    _echo_state(v, "Immutability disabled; object locks already set stay until they lapse.", as_json)


@immutability.command("lock")
@click.option("--client-side-only", is_flag=True,
              help="Lock even though the storage has no object lock: strongroom refuses early deletes, "
                   "but whoever holds the storage credentials can still delete objects.")
@json_option
@click.pass_context
def lock(ctx, client_side_only, as_json):
    """Lock immutability for good (irreversible): COMPLIANCE object locks nobody can lift."""
    from ..errors import ObjectLockUnavailable

    v = app(ctx).open_vault()
    current = v.security.settings.immutability
    if current.state == "locked":
        _echo_state(v, "Immutability is already locked: nothing changed.", as_json)
        return
    storage = v.object_locks.storage_lock()
    if not storage.enabled and not client_side_only:
        raise ObjectLockUnavailable(
            reason=f"{v.url} has no object lock ({storage.describe()}), so the lock could not be enforced by "
                   "the storage; create the vault in a bucket with object lock, or give --client-side-only")
    _change(v, None, "immutability.lock", {"client_side_only": str(not storage.enabled)},
            state="locked", client_side_only=not storage.enabled)
    extension = v.object_locks.extend(reason="immutability locked")
    _echo_state(v, "Immutability locked: this cannot be undone.", as_json, extension)


@immutability.command("show")
@json_option
@click.pass_context
def show(ctx, as_json):
    """Show immutability and what the storage enforces."""
    v = app(ctx).open_vault()
    data = _show(v)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key + ':':22} {value}")


@click.command("recover-objects")
@click.option("--apply", is_flag=True, help="Remove the delete markers (without it: only list the hidden objects).")
@json_option
@click.pass_context
def recover_objects(ctx, apply, as_json):
    """List (and with --apply bring back) the vault's objects hidden by a raw S3 DeleteObject."""
    from ..errors import NoVaultGiven
    from ..services.objectlocks import hidden_vault_objects, unhide_objects
    from ..vault import open_vault_store

    obj = app(ctx)
    if not obj.vault_url:
        raise NoVaultGiven()
    store = open_vault_store(obj.vault_url, obj.storage_options, obj.plugins)
    found = hidden_vault_objects(store)
    recovered = unhide_objects(store, found) if apply and found else 0
    if apply and found:
        v = obj.open_vault()
        v.journal.record("objects.recover", {"objects": len(found)}, "succeeded",
                         detail=f"removed the delete markers of {recovered} object(s): "
                                + ", ".join(h.name for h in found[:20]) + (" ..." if len(found) > 20 else ""))
    if as_json:
        emit_json({"hidden": [h.to_dict() for h in found], "applied": bool(apply), "recovered": recovered})
        return
    if not found:
        click.echo("No object of the vault is hidden by a delete marker.")
        return
    table(["object", "hidden at"], [[h.name, short_time(h.hidden_at)] for h in found])
    if apply:
        click.echo(f"Recovered {recovered} object(s): their delete markers are removed.")
    else:
        click.echo(f"{len(found)} object(s) hidden; run again with --apply to bring them back.")
