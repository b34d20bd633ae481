"""``strongroom vault security`` and ``strongroom vault soft-delete``.

- ``vault security [--json]``: the vault's security settings in force (soft delete state
  and days, immutability state, lock days and client-side-only, whether a guard is linked
  and its public key's fingerprint), how many points are soft-deleted, and what object
  lock the storage has.
- ``vault soft-delete --days N | --enable | --disable | --always-on [--ticket FILE]``:
  change soft delete.  ``--days`` outside 14-180 is refused with one line (exit 3) and
  nothing changes; turning it off or shortening its days is a weakening (a guard ticket
  ``soft-delete.disable`` / ``soft-delete.shorten days=N`` when the vault has a guard,
  and a security alert); ``--always-on`` is irreversible.

Every change goes through :meth:`strongroom.services.security.SecurityService.change`
(journaled; tickets and irreversible states checked there).
"""

from __future__ import annotations

import base64
import hashlib

import attrs
import click

from .common import app, json_option, ticket_option
from .output import emit_json

__all__ = ["security", "soft_delete"]


def fingerprint(public_key: str | None) -> str | None:
    """A short, stable name of a guard public key: ``SHA256:`` and 16 hex digits of its hash."""
    if not public_key:
        return None
    return "SHA256:" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def _storage_lock(vault) -> dict:
    """What object lock the vault's storage has (:func:`strongroom.storage.locking.describe_locking`)."""
    from ..errors import StrongroomError
    from ..storage.locking import describe_locking

    try:
        return describe_locking(vault.store)
    except (StrongroomError, OSError) as exc:
        return {"enabled": None, "description": f"unknown ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"}


def security_report(vault) -> dict:
    """The ``vault security --json`` document."""
    settings = vault.security.settings
    return {
        "soft_delete": {"state": settings.soft_delete.state, "days": settings.soft_delete.days},
        "immutability": {"state": settings.immutability.state, "lock_days": settings.immutability.lock_days,
                         "client_side_only": settings.immutability.client_side_only},
        "guard": {"linked": settings.guard.linked, "fingerprint": fingerprint(settings.guard.public_key),
                  "linked_at": settings.guard.linked_at},
        "soft_deleted_points": len(vault.deleted_points()),
        "storage_object_lock": _storage_lock(vault),
    }


@click.command("security")
@json_option
@click.pass_context
def security(ctx, as_json):
    """Show the vault's security settings: soft delete, immutability, guard, object lock."""
    report = security_report(app(ctx).open_vault())
    if as_json:
        emit_json(report)
        return
    sd, im, guard = report["soft_delete"], report["immutability"], report["guard"]
    lines = [
        ("soft delete", f"{sd['state']}, {sd['days']} days"),
        ("soft-deleted", f"{report['soft_deleted_points']} point(s)"),
        ("immutability", f"{im['state']}, objects locked {im['lock_days']} days"
                         + (" (client side only: the storage does not enforce it)" if im["client_side_only"] else "")),
        ("guard", f"linked, key {guard['fingerprint']}" if guard["linked"] else "none"),
        ("storage", report["storage_object_lock"].get("description", "-")),
    ]
    for key, value in lines:
        click.echo(f"{key + ':':14}{value}")


@click.command("soft-delete")
@click.option("--days", type=int, metavar="N", help="Keep soft-deleted points N days (14 to 180) before purging them.")
@click.option("--enable", "state", flag_value="enabled", help="Turn soft delete on.")
@click.option("--disable", "state", flag_value="disabled",
              help="Turn soft delete off (a weakening: a guard ticket when the vault has a guard).")
@click.option("--always-on", "state", flag_value="always-on", help="Turn soft delete on for good: irreversible.")
@ticket_option
@json_option
@click.pass_context
def soft_delete(ctx, days, state, ticket, as_json):
    """Change soft delete: how long deleted points stay recoverable, or whether they do."""
    from ..errors import UsageError
    from ..policy.security import SoftDelete

    if days is None and state is None:
        raise UsageError(message="give --days N, --enable, --disable or --always-on")
    v = app(ctx).open_vault()
    old = v.security.settings
    wanted = SoftDelete(state=state or old.soft_delete.state,
                        days=old.soft_delete.days if days is None else days)  # --days 7: UsageError, nothing written
    params = {"state": wanted.state, "days": wanted.days}
    new = v.security.change(attrs.evolve(old, soft_delete=wanted), ticket=ticket, operation="soft-delete.change",
                            params=params)
    if as_json:
        emit_json({"state": new.soft_delete.state, "days": new.soft_delete.days})
    else:
        click.echo(f"Soft delete: {new.soft_delete.state}, {new.soft_delete.days} days.")
