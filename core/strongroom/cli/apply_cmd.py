"""``strongroom apply FILE [--dry-run]`` and ``strongroom export-config``: declarative configuration.

``apply`` reads the file strictly (:mod:`strongroom.declarative.spec`; a bad file is one
line and exit code 6 before any vault is opened), plans every vault before changing any
(so an error in the second vault's plan changes nothing in the first), prints one line
per change, and without ``--dry-run`` makes them.  A vault that does not exist yet is
created with its key from the usual sources (``--passphrase-env``: a passphrase slot;
otherwise the local key store).  Items, policies and vaults are never deleted.

``export-config`` writes the file that describes the vaults given (``--vault``, repeatable;
default: the vault of the command line, ``STRONGROOM_VAULT`` or ``default_vault``), with
mode 0600 since sink options may hold secrets.
"""

from __future__ import annotations

import os

import click

from ..errors import UsageError, VaultNotFound
from .common import app, json_option, ticket_option
from .output import emit_json


def _open(obj, url: str):
    from ..vault import Vault

    try:
        return Vault.open(url, passphrase=obj.passphrase, plugins=obj.plugins)
    except VaultNotFound:
        return None


def _creator(obj):
    def create(spec):
        from ..policy.redundancy import Redundancy
        from ..vault import Vault

        provider = "passphrase" if obj.passphrase_env else "local"
        return Vault.create(spec.url, name=spec.name, key_provider=provider, passphrase=obj.passphrase,
                            plugins=obj.plugins, redundancy=Redundancy(spec.redundancy, spec.secondary))
    return create


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only show the changes; change nothing.")
@ticket_option
@json_option
@click.pass_context
def apply(ctx, file, dry_run, ticket, as_json):
    """Make the vaults what FILE (strongroom.toml) describes: create missing vaults, create or
    update policies, protect new items and update changed ones, add, change or remove alert
    sinks. One line per change; never deletes an item, a policy or a vault."""
    obj = app(ctx)
    from ..declarative import apply_plan, plan_vault, read_config

    config = read_config(file, obj.plugins)
    opened = [(spec, _open(obj, spec.url)) for spec in config.vaults]
    plans = [(plan_vault(spec, vault, obj.plugins, ticket=ticket), vault) for spec, vault in opened]
    total = sum(len(plan.changes) for plan, _ in plans)
    if not dry_run:
        for plan, vault in plans:
            if plan.changes:
                apply_plan(plan, vault, _creator(obj))
    if as_json:
        emit_json({"file": file, "dry_run": dry_run, "changes": total, "vaults": [p.to_dict() for p, _ in plans]})
        return
    for plan, _ in plans:
        click.echo(f"vault {plan.spec.name} ({plan.spec.url}): "
                   + (f"{len(plan.changes)} change(s)" if plan.changes else "no change"))
        for change in plan.changes:
            click.echo(f"  {change.line}")
        for what in plan.not_in_file:
            click.echo(f"  = {what}: not in the file, left alone")
    if not total:
        click.echo("Nothing to change.")
    elif dry_run:
        click.echo(f"Dry run: {total} change(s) not made; run without --dry-run to make them.")
    else:
        click.echo(f"Applied {total} change(s).")


@click.command("export-config")
@click.option("--vault", "urls", multiple=True, metavar="URL",
              help="A vault to describe (repeatable; default: the vault of --vault before the command,"
                   " STRONGROOM_VAULT or default_vault).")
@click.option("--output", metavar="FILE", help="Write the file here (mode 0600) instead of standard output.")
@json_option
@click.pass_context
def export_config(ctx, urls, output, as_json):
    """Write a declarative file (strongroom.toml) that describes existing vaults: applying it
    back changes nothing. Sink options are written as stored, secrets included."""
    obj = app(ctx)
    urls = list(urls) or ([obj.vault_url] if obj.vault_url else [])
    if not urls:
        raise UsageError(message="no vault to describe: give --vault URL")
    from ..declarative import describe_vault, to_toml
    from ..vault import Vault

    vaults: dict[str, dict] = {}
    for url in urls:
        vault = Vault.open(url, passphrase=obj.passphrase, plugins=obj.plugins)
        name = vault.settings.name
        if name in vaults:
            raise UsageError(message=f"two vaults are named {name!r}: rename one ('vault' settings) to export both")
        vaults[name] = describe_vault(vault, obj.plugins)
    doc = {"vaults": vaults}
    text = to_toml(doc, header="strongroom declarative configuration: 'strongroom apply FILE' (docs/declarative.md)."
                               "\nIt may hold alert sink secrets: keep it private.")
    if output:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(output, 0o600)
        if as_json:
            emit_json({"output": output, "vaults": list(vaults)})
        else:
            click.echo(f"Wrote {output}: {len(vaults)} vault(s).", err=True)
    elif as_json:
        emit_json(doc)
    else:
        click.echo(text, nl=False)
