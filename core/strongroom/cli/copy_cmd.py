"""``strongroom copy ITEM[@POINT] --to VAULT_URL``: copy points into another vault.

Every intact point of ITEM (or POINT only), oldest first, re-encrypted and re-chunked for
the other vault and deduplicated against it; points copied before are skipped (the rules:
:mod:`strongroom.copying`).  The other vault is opened with the user's storage options for
its URL (config file, ``STRONGROOM_STORAGE_OPTIONS``) and the passphrase from
``--to-passphrase-env VAR``, else the same source as this vault's (``--passphrase-env``,
``STRONGROOM_PASSPHRASE``, the local key store, a prompt); ``--limit-upload`` and
``--limit-download`` hold for it too.  Prints a line per point, or
with ``--json`` one document: ``item``, ``to``, ``created_item``, ``copied`` (each
``point``, ``copy``, ``created``), ``skipped``.
"""

from __future__ import annotations

import click

from .common import app, json_option, split_item_point
from .completion import complete_point
from .output import emit_json


@click.command()
@click.argument("spec", metavar="ITEM[@POINT]", shell_complete=complete_point)
@click.option("--to", "to_url", required=True, metavar="VAULT_URL", help="The vault to copy into (it must exist).")
@click.option("--to-passphrase-env", metavar="VAR",
              help="Read the other vault's passphrase from environment variable VAR (default: as for this vault).")
@json_option
@click.pass_context
def copy(ctx, spec, to_url, to_passphrase_env, as_json):
    """Copy the points of ITEM (or ITEM@POINT only) into the vault at VAULT_URL, re-encrypted
    for it; points copied before are skipped."""
    from ..copying import copy_points
    from ..repository.keyproviders import PassphraseSource
    from ..storage.base import redact_url
    from ..storage.ratelimit import LIMIT_OPTIONS
    from ..vault import Vault
    from . import _prompt

    item, ref = split_item_point(spec)
    obj = app(ctx)
    source = obj.open_vault()
    passphrase = PassphraseSource(env_var=to_passphrase_env, prompt=_prompt) if to_passphrase_env else obj.passphrase
    # --limit-upload/--limit-download hold for the other vault's storage too (its puts are the copy's)
    limits = {k: v for k, v in obj.storage_options.items() if k in LIMIT_OPTIONS}
    target = Vault.open(to_url, passphrase=passphrase, plugins=obj.plugins, storage_options=limits)

    def shown(point, made) -> None:
        if as_json:
            return
        if made is None:
            click.echo(f"{point.short_id} ({point.created}): already in the target, skipped")
        else:
            click.echo(f"{point.short_id} ({point.created}): copied as {made.short_id}")

    report = copy_points(source, target, item, ref, on_point=shown)
    created = {p.point_id: p.created for p in source.points(item)}
    if as_json:
        emit_json({"item": item, "to": redact_url(to_url), "created_item": report.created_item,
                   "copied": [{"point": src, "copy": new, "created": created.get(src)} for src, new in report.copied],
                   "skipped": list(report.skipped)})
        return
    made = f"; protected '{item}' there" if report.created_item else ""
    click.echo(f"Copied {len(report.copied)} point(s) of '{item}' to {redact_url(to_url)},"
               f" skipped {len(report.skipped)} already there{made}.")
