"""``strongroom guard``: the guard's own commands, run offline by the security admin.

- ``guard keygen --out FILE`` writes a new Ed25519 key pair: the private key to FILE
  (mode 0600) and the public key to FILE.pub; it never writes over an existing file.
- ``guard sign --key FILE --vault-id ID --operation OP [--param K=V ...] --valid 1h``
  writes a ticket (:mod:`strongroom.services.tickets`) for one critical operation on one
  vault to standard output, or to ``--output FILE`` (a new file of mode 0600).

Neither opens a vault: the private key stays on the guard's machine, and the ticket
travels to the backup admin, who passes it to the operation with ``--ticket FILE``.
An unknown operation, a bad duration or a malformed ``K=V`` is one line, exit 3.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from ..errors import UsageError
from ..models import utcnow
from ..policy.security import OPERATIONS
from .common import json_option
from .output import emit_json

_OPERATIONS_HELP = "\b\nOperations:\n" + "\n".join(f"  {name:22} {what}" for name, what in OPERATIONS.items())


@click.group()
def guard() -> None:
    """Guard keys and tickets: a second person's consent for critical operations."""


@guard.command("keygen")
@click.option("--out", "out", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="Where to write the private key (mode 0600); the public key goes to FILE.pub.")
@json_option
def keygen(out: str, as_json: bool) -> None:
    """Make a guard key pair. Keep FILE away from the backup admins; link vaults to FILE.pub."""
    from ..services.tickets import new_guard_key

    public = new_guard_key(Path(out))
    if as_json:
        emit_json({"private_key_file": out, "public_key_file": f"{out}.pub", "public_key": public})
        return
    click.echo(f"Wrote the guard's private key to {out} (mode 0600) and its public key to {out}.pub:")
    click.echo(public)
    click.echo(f"Link a vault to it with: strongroom vault guard link {out}.pub")


def _params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or key.strip() in params:
            raise UsageError(message=f"--param {text!r}: expected KEY=VALUE, each key once")
        params[key.strip()] = value
    return params


def _validity(text: str) -> dt.timedelta:
    from ..errors import StrongroomError
    from ..policy.durations import parse_duration

    try:
        seconds = parse_duration(text, what="validity")
    except StrongroomError as exc:
        raise UsageError(message=f"--valid {text!r} is not a duration: use a number with s, m, h, d or w"
                                 " (30m, 1h, 2d)") from None
    return dt.timedelta(seconds=seconds)


def _write_new(path: str, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(message=f"{path} exists; not overwritten") from None
    except OSError as exc:
        raise UsageError(message=f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")


@guard.command("sign", epilog=_OPERATIONS_HELP)
@click.option("--key", "key", required=True, metavar="FILE", help="The guard's private key (guard keygen).")
@click.option("--vault-id", required=True, metavar="ID", help="The vault the ticket is for (vault info shows it).")
@click.option("--operation", required=True, metavar="OP", help="The critical operation the ticket allows (below).")
@click.option("--param", "param", multiple=True, metavar="K=V",
              help="A parameter of the operation, exactly as the refusal names it (repeatable).")
@click.option("--valid", default="1h", show_default=True, metavar="DURATION",
              help="How long the ticket stays valid (90s, 30m, 1h, 2d; at most 30d).")
@click.option("--output", "-o", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the ticket to FILE, a new file of mode 0600 (default: standard output).")
def sign(key: str, vault_id: str, operation: str, param: tuple[str, ...], valid: str, output: str | None) -> None:
    """Sign a ticket for one critical operation on one vault; it is good once."""
    from ..services.tickets import load_private_key, sign_ticket

    if operation not in OPERATIONS:
        raise UsageError(message=f"unknown operation {operation!r}: one of {', '.join(OPERATIONS)}")
    params = _params(param)
    validity = _validity(valid)
    vault_id = vault_id.strip()
    if not vault_id:
        raise UsageError(message="--vault-id is empty")
    ticket = sign_ticket(load_private_key(Path(key)), vault_id, operation, params, validity, utcnow())
    if output is None:
        click.echo(ticket)
        return
    _write_new(output, ticket)
    click.echo(f"Wrote a ticket for {operation} on vault {vault_id}, valid for {valid}, to {output} (mode 0600).",
               err=True)
