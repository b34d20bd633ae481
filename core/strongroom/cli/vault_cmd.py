"""``strongroom vault``: create, info, verify, repair, rebuild-index, key management."""

from __future__ import annotations

import click

from ..errors import DataLost, RollbackDetected, VerifyFailed
from ..models import iso, utcnow
from .common import app, confirm_destructive, dry_run_option, json_option, ticket_option
from .keyoptions import key_option
from .meter import events_mode, progress_messages, progress_options
from .output import Progress, emit_json, human_size, short_time, table, warn


@click.group()
def vault() -> None:
    """Create and inspect vaults, manage their keys."""


@vault.command("create")
@click.argument("url")
@click.option("--name", help="A name for the vault (default: the last part of URL).")
@click.option("--passphrase-env", "create_passphrase_env", metavar="VAR",
              help="Protect the vault key with the passphrase in environment variable VAR"
                   " instead of the local key store.")
@click.option("--passphrase", "ask_passphrase", is_flag=True,
              help="Protect the vault key with a passphrase typed at a prompt.")
@click.option("--key-provider", default=None, metavar="NAME",
              help="Key provider of the first key slot (default: local).")
@key_option
@click.option("--redundancy", "redundancy_kind", type=click.Choice(("local", "zonal", "geo")), default="local",
              show_default=True, help="How the storage keeps copies: zonal is the storage's own replication"
                                      " across failure domains (S3-compatible stores); geo needs --secondary.")
@click.option("--secondary", metavar="URL", default=None, help="For --redundancy geo: the store in another location.")
@json_option
@click.pass_context
def create(ctx, url, name, create_passphrase_env, ask_passphrase, key_provider, key_options, redundancy_kind,
           secondary, as_json):
    """Create a new vault at URL (a local folder or an fsspec URL)."""
    from ..policy.redundancy import check_redundancy
    from ..repository.keyproviders import PassphraseSource
    from ..vault import Vault

    redundancy = check_redundancy(redundancy_kind, secondary, url)  # before anything is written
    obj = app(ctx)
    env = create_passphrase_env or obj.passphrase_env
    provider = key_provider or ("passphrase" if (env or ask_passphrase) else "local")
    source = PassphraseSource(env_var=env, prompt=obj.passphrase.prompt)
    v = Vault.create(url, name=name, key_provider=provider, passphrase=source, plugins=obj.plugins,
                     storage_options=obj.storage_options, redundancy=redundancy, key_options=key_options)
    if as_json:
        emit_json({"url": v.url, "vault_id": v.vault_id, "name": v.settings.name, "key_provider": provider,
                   "redundancy": redundancy.to_dict()})
        return
    click.echo(f"Created vault '{v.settings.name}' ({v.vault_id}) at {v.url}")
    if redundancy.kind != "local":
        click.echo(f"Redundancy: {redundancy.describe()}")
    if provider == "local":
        from ..repository.keyproviders import LocalKeyProvider

        click.echo(f"Its key is in {LocalKeyProvider.key_path(v.keys.context)}.")
        click.echo("Keep a copy elsewhere: 'strongroom vault key export --output FILE' writes a recovery kit.")


@vault.command("delete")
@click.option("--yes", is_flag=True, help="Do not ask first.")
@ticket_option
@dry_run_option
@json_option
@click.pass_context
def delete(ctx, yes, ticket, dry_run, as_json):
    """Delete the vault: only an empty one (every item deleted, no recovery point left, soft-deleted
    ones purged), and with the guard's vault.delete ticket when a guard is linked."""
    v = app(ctx).open_vault()
    if not yes and not dry_run:
        confirm_destructive(f"Delete vault '{v.settings.name}' at {v.url} and everything in it?",
                            f"Deleting vault '{v.settings.name}'")
    report = v.delete(ticket=ticket, dry_run=dry_run)
    if as_json:
        emit_json({"url": v.url, **report.to_dict()})
        return
    if dry_run:
        click.echo(f"Would delete vault '{v.settings.name}' at {v.url}: {report.deleted} object(s)"
                   f"{f'; {len(report.foreign)} foreign object(s) would be left' if report.foreign else ''}.")
        return
    click.echo(f"Deleted vault {v.url}: {report.deleted} object(s).")
    if report.kept:
        warn(f"the storage keeps {len(report.kept)} object(s) (object lock or the server's records), "
             f"e.g. {report.kept[0]}")
    if report.foreign:
        warn(f"{len(report.foreign)} object(s) that are not the vault's were left, e.g. {report.foreign[0]}")


@vault.command("info")
@json_option
@click.pass_context
def info(ctx, as_json):
    """Show the vault's identity, format and contents."""
    from .inforeport import info_lines

    data = app(ctx).open_vault().info()
    if as_json:
        emit_json(data)
        return
    for line in info_lines(data):
        click.echo(line)


@vault.command("verify")
@click.option("--read-data", is_flag=True, help="Also read, decrypt and re-hash every pack on storage.")
@click.option("--read-data-subset", "subset", metavar="N/M|N%",
              help="Read only some packs: the N-th of M groups (N/M), or about N% per run, going round"
                   " every pack over repeated runs (N%). Implies --read-data.")
@click.option("--from-secondary/--no-secondary", "from_secondary", default=True,
              help="With data read: say whether the geo secondary holds an intact copy of what is damaged or"
                   " missing (default: when the vault has one).")
@json_option
@progress_options
@click.pass_context
def verify(ctx, read_data, subset, from_secondary, as_json, progress_flag, progress_json):
    """Check the vault's structure (and with --read-data, all of its data)."""
    progress = progress_messages(as_json, progress_flag, progress_json)
    try:
        report = app(ctx).open_vault().verify(read_data=read_data, subset=subset, progress=progress.show,
                                              from_secondary=from_secondary)
    finally:
        progress.done()
    if events_mode(as_json, progress_flag, progress_json):
        progress.summary(report.to_dict())
    elif as_json:
        emit_json(report.to_dict())
    else:
        for note in report.notes:
            click.echo(f"note: {note}")
        for problem in report.problems:
            click.echo(f"damaged: {problem}", err=True)
        read = read_data or subset is not None
        click.echo(
            f"Checked {report.points} point(s), {report.trees} tree(s), {report.packs} pack(s)"
            + (f", read {report.packs_read} pack(s) ({human_size(report.bytes_read)})" if read else "")
            + (": no problems." if report.ok else f": {len(report.problems)} problem(s).")
        )
    rollback = getattr(report, "rollback", None)  # what the vault head's check found (services/head.py)
    if rollback is not None:
        raise rollback.error()
    if not report.ok:
        raise VerifyFailed(count=len(report.problems))


@vault.command("repair")
@click.option("--apply", is_flag=True, help="Do the repair (without it: only say what it would do).")
@click.option("--accept-rollback", is_flag=True,
              help="Where the storage went back to an older state (a point header gone, a removed key slot"
                   " back...), take it as it is from now on. With --apply; decide after a dry run.")
@click.option("--from-secondary/--no-secondary", "from_secondary", default=True,
              help="Heal what this vault lost from intact copies on its geo secondary (default: when the vault"
                   " has one).")
@json_option
@click.pass_context
def repair(ctx, apply, accept_rollback, from_secondary, as_json):
    """Index an intact copy of every blob, move damage aside, name what is lost."""
    progress = Progress(not as_json)
    report = app(ctx).open_vault().repair(apply=apply, progress=progress.show, accept_rollback=accept_rollback,
                                          from_secondary=from_secondary)
    progress.done()
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.secondary_error:
            click.echo(f"note: the geo secondary {report.secondary} could not be reached ({report.secondary_error}):"
                       " repaired from this vault's own copies only", err=True)
        for line in report.rollback:
            click.echo(f"rollback: {line}", err=True)
        if report.rollback_accepted:
            click.echo("Accepted the storage as it is: a new vault head records it.")
        _show_repair(report, "Would move aside" if report.dry_run else "Moved aside")
        if not report.changes:
            click.echo("Nothing to repair.")
        elif report.dry_run:
            click.echo("Dry run: nothing was changed; run 'strongroom vault repair --apply' to repair.")
        else:
            click.echo(f"Repaired: the index names {report.blobs_indexed + report.blobs_healed} intact blob(s).")
    if report.rollback_open:
        advice = ("run 'strongroom vault repair --apply --accept-rollback' to take the storage as it is"
                  if not report.dry_run else "'strongroom vault repair --apply' rewrites the index from the packs;"
                  " with --accept-rollback it takes the rest as it is")
        raise RollbackDetected(what=report.rollback_open, advice=advice)
    _raise_if_lost(report)


@vault.command("rebuild-index")
@dry_run_option
@json_option
@click.pass_context
def rebuild_index(ctx, dry_run, as_json):
    """Rewrite the index from every pack, naming only intact copies (after index damage)."""
    progress = Progress(not as_json)
    report = app(ctx).open_vault().rebuild_index(progress=progress.show, dry_run=dry_run)
    progress.done()
    if as_json:
        emit_json(report.to_dict())
        return
    if dry_run:
        _show_repair(report, "Would move aside")
        click.echo(f"Would rebuild the index from {report.packs_read} pack(s) ({report.blobs_indexed} blob(s),"
                   f" {human_size(report.bytes_read)} read): {report.index_files_written} index file(s) written,"
                   f" {report.index_files_removed} index file(s) replaced.")
        if report.blobs_lost:
            click.echo(f"{report.blobs_lost} damaged blob(s) have no intact copy:"
                       " 'strongroom vault repair' names the points and files that need them.", err=True)
        return
    _show_repair(report, "Moved aside")
    click.echo(f"Indexed {report.blobs_indexed} blob(s) from {report.packs_read} pack(s)"
               f" ({human_size(report.bytes_read)} read).")
    if report.blobs_lost:
        click.echo(f"{report.blobs_lost} damaged blob(s) have no intact copy:"
                   " 'strongroom vault repair' names the points and files that need them.", err=True)


def _show_repair(report, moved: str) -> None:
    for line in report.damage:
        click.echo(f"damaged: {line}", err=True)
    for name in report.moved_aside:
        click.echo(f"{moved}: {name} -> quarantine/{name}")
    if report.blobs_rescued:
        click.echo(f"{'Would copy' if report.dry_run else 'Copied'} {report.blobs_rescued} intact blob(s)"
                   " out of damaged packs.")
    restored = getattr(report, "objects_restored", [])
    for name in restored[:20]:
        click.echo(f"{'Would restore' if report.dry_run else 'Restored'} {name} from the secondary.")
    if len(restored) > 20:
        click.echo(f"... {len(restored)} document(s) in all {'would be ' if report.dry_run else ''}restored"
                   " from the secondary (--json lists them).")
    if report.blobs_healed:
        source = "the secondary" if getattr(report, "secondary", None) else "elsewhere"
        click.echo(f"{'Would heal' if report.dry_run else 'Healed'} {report.blobs_healed} blob(s) from {source}.")
    for loss in report.lost_points + report.lost_files:
        click.echo(f"lost: {loss['description']}", err=True)


def _raise_if_lost(report) -> None:
    points = sorted({f"{loss['item']}@{loss['point'][:8]}" for loss in report.lost_points + report.lost_files})
    if points:
        shown = ", ".join(points[:5]) + (f" and {len(points) - 5} more" if len(points) > 5 else "")
        raise DataLost(count=len(points), points=shown)


@vault.group("key")
def key() -> None:
    """Key slots: each wraps the vault key for one way of unlocking it."""


@key.command("list")
@click.option("--data-keys", "with_data_keys", is_flag=True,
              help="With --json: an object {slots, data_keys} instead of the list of slots.")
@json_option
@click.pass_context
def key_list(ctx, with_data_keys, as_json):
    """List the key slots (with when this client last opened the vault with each: "last used
    here"; objects under keys/ that are not slots of this vault) and the data keys."""
    from ..services.slotuse import last_uses

    v = app(ctx).open_vault()
    keys = v.keys
    found = keys.survey()
    for _, problem in found.damaged + found.foreign:
        warn(problem)
    in_use = keys.opened_with.slot_id if keys.opened_with is not None else None
    used_here = last_uses(keys.context.home, keys.context.vault_id)
    data_keys = v.data_keys.list()
    for info in data_keys:
        if info.problem:
            warn(info.problem)
    if as_json:
        slots = ([{"slot": s.slot_id, "provider": s.provider, "label": s.label, "created": s.created,
                   "last_used_here": used_here.get(s.slot_id), "in_use": s.slot_id == in_use, "format": s.version,
                   "object": s.object_name, "foreign": False} for s in found.slots]
                 + [{"slot": None, "provider": None, "label": "", "created": "", "last_used_here": None,
                     "in_use": False, "format": None, "object": name, "foreign": True, "reason": why}
                    for name, why in found.foreign])
        emit_json({"slots": slots, "data_keys": [d.to_dict() for d in data_keys]} if with_data_keys else slots)
        return
    rows = []
    for s in found.slots:
        used = "*" if s.slot_id == in_use else ""
        details = keys.describe(s) + (f"; old format {s.version}: run 'vault key upgrade'" if s.is_old else "")
        last = used_here.get(s.slot_id)
        rows.append((used + s.slot_id, s.provider, s.label, short_time(s.created), short_time(last) if last else "never",
                     details))
    for name, _ in found.foreign:
        rows.append((name, "FOREIGN", "", "", "", "not a key slot of this vault: never used to open it"))
    table(("SLOT", "PROVIDER", "LABEL", "CREATED", "LAST USED HERE", "DETAILS"), rows)
    click.echo()
    table(("DATA KEY", "CREATED", "STATE"),
          [(d.key_id, short_time(d.created), ("current" if d.current else "missing or damaged" if d.problem else "old")
            + (" (the master key's)" if d.first else "")) for d in data_keys])


@key.command("add")
@click.option("--provider", default="passphrase", show_default=True, help="Key provider of the new slot.")
@click.option("--label", default="", help="A label for the slot.")
@click.option("--new-passphrase-env", metavar="VAR", help="Take the new slot's passphrase from VAR.")
@key_option
@json_option
@click.pass_context
def key_add(ctx, provider, label, new_passphrase_env, key_options, as_json):
    """Add a key slot (a passphrase by default, or 'local')."""
    from ..repository.keyproviders import PassphraseSource

    passphrase = None
    if new_passphrase_env:
        passphrase = PassphraseSource(env_var=new_passphrase_env)
    elif provider == "passphrase":
        passphrase = PassphraseSource(prompt=app(ctx).passphrase.prompt, use_default_env=False)
    slot = app(ctx).open_vault().keys.add(provider, label=label, passphrase=passphrase, options=key_options)
    if as_json:
        emit_json({"slot": slot.slot_id, "provider": slot.provider})
    else:
        click.echo(f"Added key slot {slot.slot_id} ({slot.provider}).")


@key.command("remove")
@click.argument("slot")
@click.option("--force", is_flag=True,
              help="Accepted for old scripts; the last slot that can open the vault is never removed"
                   " (add another slot first).")
@ticket_option
@dry_run_option
@json_option
@click.pass_context
def key_remove(ctx, slot, force, ticket, dry_run, as_json):
    """Remove key slot SLOT (an id or unique prefix); with a guard, needs a key.remove ticket."""
    removed = app(ctx).open_vault().keys.remove(slot, force=force, ticket=ticket, dry_run=dry_run)
    if as_json:
        emit_json({"slot": removed.slot_id, "provider": removed.provider, "label": removed.label,
                   "removed": not dry_run, "dry_run": dry_run})
        return
    if dry_run:
        click.echo(f"Would remove key slot {removed.slot_id} ({removed.provider}"
                   f"{', ' + repr(removed.label) if removed.label else ''}); other slots still open the vault.")
        return
    click.echo(f"Removed key slot {removed.slot_id} ({removed.provider}).")


@key.command("upgrade")
@json_option
@click.pass_context
def key_upgrade(ctx, as_json):
    """Rewrite old-format key slots in the current format (those this client can open now)."""
    done = app(ctx).open_vault().keys.upgrade()
    if as_json:
        emit_json([{"slot": u.old.slot_id, "provider": u.old.provider, "upgraded": u.new is not None,
                    "new_slot": u.new.slot_id if u.new is not None else None, "reason": u.reason} for u in done])
        return
    for u in done:
        if u.new is not None:
            click.echo(f"Upgraded key slot {u.old.slot_id} ({u.old.provider}) to format {u.new.version}"
                       + (f" as {u.new.slot_id}" if u.new.slot_id != u.old.slot_id else "") + ".")
        else:
            warn(f"key slot {u.old.slot_id} ({u.old.provider}) left in the old format: {u.reason}")
    if not done:
        click.echo("Every key slot is in the current format.")


@key.command("export")
@click.option("--output", "-o", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the kit to FILE, a new file of mode 0600 (never over an existing one).")
@click.option("--print", "to_terminal", is_flag=True,
              help="Print the kit even when standard output is a terminal.")
@click.option("--passphrase-env", "kit_env", metavar="VAR",
              help="Protect the kit with the passphrase in environment variable VAR.")
@click.option("--passphrase", "kit_prompt", is_flag=True, help="Protect the kit with a passphrase typed at a prompt.")
@click.pass_context
def key_export(ctx, output, to_terminal, kit_env, kit_prompt):
    """Write a recovery kit: the vault key itself. Store it offline; it opens the vault."""
    import sys

    from ..errors import KitNotWritten, UsageError
    from ..repository.recoverykit import write_kit

    if output and to_terminal:
        raise UsageError(message="--output and --print: give one of them")
    if output is None and not to_terminal and sys.stdout.isatty():
        raise KitNotWritten(reason="standard output is a terminal, where the vault key would stay on screen and"
                                   " in its scrollback: write it with --output FILE, or pass --print")
    v = app(ctx).open_vault()
    passphrase = _kit_passphrase(kit_env, kit_prompt, v.vault_id, confirm=True)
    protected = ", protected by a passphrase" if passphrase is not None else ""
    text = "\n".join([
        f"# strongroom recovery kit for vault {v.vault_id}, exported {iso(utcnow())[:19]}{protected}",
        "# Anyone with this text" + (" and its passphrase" if protected else "")
        + " and the storage can read every backup in the vault.",
        "# Restore access with: strongroom --vault URL vault key import FILE"
        + (" (asks for the passphrase, or --passphrase-env VAR)" if protected else ""),
        v.keys.recovery_kit(passphrase),
    ])
    if output is None:
        click.echo(text, nl=False)
        return
    path = write_kit(output, text)
    click.echo(f"Wrote the recovery kit of vault {v.vault_id}{protected} to {path} (mode 0600).")


def _kit_passphrase(env_var, ask, vault_id, *, confirm):
    """The kit's passphrase from ``env_var`` or a prompt (``ask``), None for neither."""
    import sys

    from ..errors import KeyNotAvailable, UsageError
    from ..repository.keyproviders import PassphraseSource
    from ..secrets import Secret

    if env_var and ask:
        raise UsageError(message="--passphrase-env and --passphrase: give one of them")
    if env_var:
        secret = PassphraseSource(env_var=env_var, use_default_env=False).get(vault_id=vault_id)
    elif ask:
        if not sys.stdin.isatty():
            raise KeyNotAvailable(vault_id=vault_id, reason="the kit's passphrase is asked on a terminal:"
                                                            " pass --passphrase-env VAR instead")
        secret = Secret(click.prompt("Passphrase for the recovery kit", hide_input=True,
                                     confirmation_prompt=confirm).encode())
    else:
        return None
    if not secret.value:
        raise UsageError(message="the kit's passphrase is empty")
    return secret


@key.command("import")
@click.argument("kit", type=click.File("r"))
@click.option("--passphrase-env", "kit_env", metavar="VAR",
              help="The passphrase of a protected kit, from environment variable VAR (else it is asked).")
@json_option
@click.pass_context
def key_import(ctx, kit, kit_env, as_json):
    """Regain access with a recovery kit: adds a local key slot on this machine."""
    from ..errors import IntegrityError, KeySlotError, NoVaultGiven
    from ..repository.recoverykit import MAX_KIT_CHARS, is_protected, read_recovery_kit
    from ..vault import Vault

    obj = app(ctx)
    if not obj.vault_url:
        raise NoVaultGiven()
    text = kit.read(MAX_KIT_CHARS + 1)
    ask = not kit_env and is_protected(text)
    vault_id, master = read_recovery_kit(
        text, passphrase=lambda vault_id: _kit_passphrase(kit_env, ask, vault_id, confirm=False))
    try:
        v = Vault.open(obj.vault_url, plugins=obj.plugins, master=master,
                       storage_options=obj.storage_options)  # reads settings
    except IntegrityError:
        raise KeySlotError(message=f"this recovery kit (vault {vault_id}) does not open the vault at {obj.vault_url}") from None
    if v.vault_id != vault_id:
        raise KeySlotError(message=f"this kit is for vault {vault_id}, not {v.vault_id}")
    slot = v.keys.add("local", label="recovery kit import")
    if as_json:
        emit_json({"vault_id": v.vault_id, "slot": slot.slot_id, "provider": slot.provider, "label": slot.label})
        return
    click.echo(f"Added local key slot {slot.slot_id}; the vault opens on this machine again.")


def _register() -> None:
    from .audit_cmd import audit
    from .guard_link_cmd import guard

    vault.add_command(guard)
    vault.add_command(audit)


_register()


def _register_immutability() -> None:
    from .immutability_cmd import immutability, recover_objects

    vault.add_command(immutability)
    vault.add_command(recover_objects)


_register_immutability()


def _register_security() -> None:
    from .security_cmd import security, soft_delete

    vault.add_command(security)
    vault.add_command(soft_delete)


_register_security()


def _register_redundancy() -> None:
    from .redundancy_cmd import redundancy

    vault.add_command(redundancy)


_register_redundancy()


def _register_replication() -> None:
    from .replicate_cmd import replicate

    vault.add_command(replicate)


_register_replication()


def _register_key_rewrap() -> None:
    from .keyrewrap_cmd import key_rewrap

    key.add_command(key_rewrap)


_register_key_rewrap()


def _register_key_rotate() -> None:
    from .keyrotate_cmd import key_rotate

    key.add_command(key_rotate)


_register_key_rotate()


def _register_upgrade() -> None:
    from .upgrade_cmd import upgrade

    vault.add_command(upgrade)


_register_upgrade()
