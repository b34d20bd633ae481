"""``strongroom vault key rewrap SLOT``: the slot's master key under a new key-encryption key.

A passphrase slot gets a new passphrase (``--new-passphrase-env VAR`` or a prompt), a
slot of a provider with options a new key named by ``--key-option`` (a pkcs11 slot:
``--key-option key=NEWLABEL``; the other options are kept from the old slot unless given),
a local slot a new key in the local key store.  The new slot is written before the old one
is removed, so the vault opens at every moment.  With a guard it needs the ``key.remove``
ticket of the old slot (``--ticket``), as removing it does.  ``--dry-run`` checks the slot,
its provider and the ticket, asks for no passphrase and writes nothing.
"""

from __future__ import annotations

import click

from .common import app, dry_run_option, json_option, ticket_option
from .keyoptions import key_option
from .output import emit_json


@click.command("rewrap")
@click.argument("slot")
@click.option("--new-passphrase-env", metavar="VAR", help="A passphrase slot's new passphrase, from VAR.")
@key_option
@ticket_option
@dry_run_option
@json_option
@click.pass_context
def key_rewrap(ctx, slot, new_passphrase_env, key_options, ticket, dry_run, as_json):
    """Re-wrap key slot SLOT (an id or unique prefix) under a new key of its provider."""
    from ..repository.keyproviders import PassphraseSource

    v = app(ctx).open_vault()
    found = v.keys.find(slot)
    passphrase = None
    if new_passphrase_env:
        passphrase = PassphraseSource(env_var=new_passphrase_env, use_default_env=False)
    elif found.provider == "passphrase" and not dry_run:
        passphrase = PassphraseSource(prompt=app(ctx).passphrase.prompt, use_default_env=False)
    old, new = v.keys.rewrap(found.slot_id, passphrase=passphrase, options=key_options, ticket=ticket,
                             dry_run=dry_run)
    if dry_run:
        if as_json:
            emit_json({"old_slot": old.slot_id, "slot": None, "provider": old.provider, "dry_run": True})
        else:
            click.echo(f"Would re-wrap key slot {old.slot_id} ({old.provider}) under a new key, then remove it:"
                       " the old key would no longer open the vault.")
        return
    if as_json:
        emit_json({"old_slot": old.slot_id, "slot": new.slot_id, "provider": new.provider, "dry_run": False})
        return
    click.echo(f"Re-wrapped key slot {old.slot_id} ({old.provider}) as {new.slot_id}: the old key no longer"
               " opens the vault.")
