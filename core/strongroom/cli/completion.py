"""Shell completion of item names and point ids, from the vault the command line names.

click completes commands and options itself (``_STRONGROOM_COMPLETE=bash_source strongroom``
prints the script: see ``docs/cli.md``, "Shell completion"); these functions are the
``shell_complete=`` of the arguments that name an item (:func:`complete_item`) or a point
(:func:`complete_point`: ``ITEM`` before the ``@``, then ``ITEM@ID`` with the point's
short id, newest first).

The vault is the one ``--vault`` or ``STRONGROOM_VAULT`` gives, opened with the global
``--passphrase-env``, ``--storage-option``, ``--token-file`` and ``--disable-plugin`` of the
same command line, as the command would open it, but **never asking**: no passphrase
prompt (``$STRONGROOM_PASSPHRASE``, the variable ``--passphrase-env`` names, or a local key
slot opens it, or nothing does), and read-only.  Whatever goes wrong - no vault, a vault
that cannot be opened, a storage out of reach - completes nothing, silently: nothing is
printed to the terminal the user is typing on (standard error and log records are
swallowed while the vault is read).
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Callable, Iterator

import click
from click.shell_completion import CompletionItem

__all__ = ["complete_item", "complete_point"]


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def _open_vault(ctx: click.Context):
    """The vault of the command line being completed, or None."""
    from ..config import parse_storage_option
    from ..plugins import PluginHost
    from ..repository.keyproviders import PassphraseSource
    from ..vault import Vault

    from ..config import default_vault

    root = ctx.find_root().params
    url = root.get("vault_url") or default_vault()
    if not url:
        return None
    options = dict(parse_storage_option(text) for text in root.get("storage_option") or ())
    if root.get("token_file"):
        options["token_file"] = root["token_file"]
    plugins = PluginHost.create(disabled=list(root.get("disabled") or ()))
    return Vault.open(url, passphrase=PassphraseSource(env_var=root.get("passphrase_env"), prompt=None),
                      plugins=plugins, storage_options=options)


def _from_vault(ctx: click.Context, read: Callable[[object], list[CompletionItem]]) -> list[CompletionItem]:
    try:
        with _silenced():
            vault = _open_vault(ctx)
            return read(vault) if vault is not None else []
    except Exception:  # completion never fails out loud
        return []


def _items(vault, incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(item.name) for item in sorted(vault.items(), key=lambda i: i.name)
            if item.name.startswith(incomplete)]


def complete_item(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The names of the vault's items that start with ``incomplete``."""
    return _from_vault(ctx, lambda vault: _items(vault, incomplete))


def complete_point(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Before an ``@``: the item names (as :func:`complete_item`); after it, ``ITEM@ID`` for
    each point of ITEM whose id starts with what follows, newest first, with its time as help."""
    item, sep, prefix = incomplete.partition("@")
    if not sep:
        return complete_item(ctx, param, incomplete)

    def points(vault) -> list[CompletionItem]:
        found = sorted(vault.points(item), key=lambda p: p.created, reverse=True)
        return [CompletionItem(f"{item}@{p.short_id}", help=str(p.created)) for p in found
                if p.point_id.lower().startswith(prefix.lower())]

    return _from_vault(ctx, points)
