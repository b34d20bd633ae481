"""Helpers every command uses: the app context, ITEM[@POINT] parsing."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help="Make every check and say what would change; change nothing (no confirmation asked).")


def app(ctx: click.Context):
    return ctx.obj  # an AppContext, set by the root group


def command_vault():
    """The vault the running ``strongroom`` command works on, opened as the core commands
    open it (``--vault``, ``STRONGROOM_VAULT`` or ``default_vault``; the passphrase and
    storage options of the command line), once per command.

    For a plugin's command (``strongroom_register_commands``) and for a workload that
    needs more of the vault than its context gives (another point of the item) while a
    command runs.  Outside a command: :class:`~strongroom.errors.UsageError`."""
    from ..errors import UsageError

    ctx = click.get_current_context(silent=True)
    root = ctx.find_root().obj if ctx is not None else None
    if not callable(getattr(root, "open_vault", None)):
        raise UsageError(message="no strongroom command is running: open the vault with strongroom.open_vault(URL)")
    return root.open_vault()


def confirm_destructive(question: str, what: str) -> None:
    """Ask ``question`` on a terminal (no: exit 130, "Aborted."); without a terminal to ask on,
    refuse with :class:`~strongroom.errors.ConfirmationNeeded` naming ``--yes``."""
    import sys

    from ..errors import ConfirmationNeeded

    if not sys.stdin.isatty():
        raise ConfirmationNeeded(what=what)
    click.confirm(question, abort=True)


def split_item_point(spec: str) -> tuple[str, str | None]:
    """``web@1a2b`` -> ("web", "1a2b"); ``web`` -> ("web", None)."""
    item, sep, point = spec.partition("@")
    if not item or (sep and not point):
        raise click.BadParameter(f"expected ITEM or ITEM@POINT, got {spec!r}")
    return item, point or None


def _read_ticket(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The text of the ticket file ``value`` ("-": standard input), bounded; None without one."""
    if value is None:
        return None
    from ..errors import UsageError

    try:
        if value == "-":
            text = click.get_text_stream("stdin").read(65537)
        else:
            with open(value, encoding="utf-8", errors="replace") as f:
                text = f.read(65537)
    except OSError as exc:
        raise UsageError(message=f"cannot read ticket {value}: {exc.strerror}") from None
    if len(text) > 65536:
        raise UsageError(message=f"{value} is not a guard ticket (too large)")
    return text.strip()


#: ``--ticket FILE``: the guard ticket a critical operation needs on a vault linked to a guard.
ticket_option = click.option(
    "--ticket", "ticket", metavar="FILE", callback=_read_ticket, expose_value=True,
    help="A guard ticket for this operation (strongroom guard sign; needed when the vault has a guard; - reads stdin).")
