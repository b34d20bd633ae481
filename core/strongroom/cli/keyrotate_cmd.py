"""``strongroom vault key rotate``: a new data key for everything written from now on.

Old objects stay readable through their key id; nothing is re-encrypted, no key slot is
rewritten (slots this client cannot open keep opening the vault), and the id key stays,
so deduplication goes on against everything stored (:mod:`strongroom.services.datakeys`).
Needs a vault of format 3 (``vault upgrade``) that can be written here: a geo secondary,
``--from-secondary`` or a read-only store is refused with one line (exit code 37), as is a
server role below owner (exit code 24).  Journaled as ``key.rotate``; raises a security
alert.
"""

from __future__ import annotations

import click

from .common import app, json_option
from .output import emit_json


@click.command("rotate")
@json_option
@click.pass_context
def key_rotate(ctx, as_json):
    """Start a new data key for everything written from now on (old data stays readable)."""
    v = app(ctx).open_vault()
    key = v.rotate_data_key()
    if as_json:
        emit_json({"key_id": key.key_id.hex(), "created": key.created, "object": key.name})
        return
    click.echo(f"Data key {key.key_id.hex()} is current: everything written from now on is sealed with it;"
               " what was written before stays readable under its own key.")
