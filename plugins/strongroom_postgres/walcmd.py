"""``strongroom wal``: the WAL archive of a physical postgres item, and its workload.

- ``wal push ITEM PATH [--async]``: ``archive_command``; exit 0 only once the segment
  is safe (committed, or fsync'd into the spool with ``--async``), non-zero otherwise
  (PostgreSQL keeps the segment and retries).
- ``wal flush ITEM [--json]``: commit the spooled segments as one point.
- ``wal get ITEM NAME PATH``: ``restore_command``; exit 1 silently for a file the
  archive does not hold (the end of the archive, a ``.history`` file that was never
  made), as PostgreSQL expects.
- ``wal list ITEM [--json]``: timelines, first/last segment, gaps.
- ``wal setup ITEM [--apply | --json]``: print (or set with ``ALTER SYSTEM``) ``archive_mode`` and
  ``archive_command``.

The workload ``postgres-wal`` of the companion items is not ``protectable``: the first
push makes the item, ``strongroom protect`` has no command for it.

The commands the server runs name the vault, the strongroom home and the program
itself, so they work from the server's environment (see :func:`command_line`).
"""

from __future__ import annotations

import os
import shlex
import sys

import click
from strongroom import StrongroomError, UsageError, Workload, command_vault, emit_json, strongroom_home

#: the companion items' workload (:data:`.walstore.WORKLOAD`; named here so that registering
#: it imports no more than this module: ``wal get`` starts for every file recovery asks for)
WORKLOAD = "postgres-wal"


class PostgresWalWorkload(Workload):
    """The companion item ``ITEM.wal`` that holds the WAL of physical item ``ITEM``."""

    name = WORKLOAD
    description = "the WAL archive of a physical postgres item (made by strongroom wal push)"
    consistency = "wal segments"
    protectable = False  # made by the first 'wal push'

    def describe(self, source: dict) -> str:
        return f"WAL archive of postgres item {source.get('of')}"

    def backup(self, ctx):
        raise UsageError(message=f"item '{ctx.item.name}' holds WAL that 'strongroom wal push' archives;"
                                 f" back up item '{ctx.item.source.get('of')}' instead")


def program() -> str:
    """The strongroom program running now (its absolute path)."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    return exe if os.access(exe, os.X_OK) else (os.path.abspath(sys.argv[0]) if sys.argv else "strongroom")


def command_line(vault, *args: str) -> str:
    """A shell command running ``strongroom ARGS`` on this vault with this home."""
    env = f"STRONGROOM_HOME={shlex.quote(str(strongroom_home()))}"
    return " ".join([env, shlex.quote(program()), "--vault", shlex.quote(vault.url), *args])


def archive_command(vault, item: str, async_: bool = False) -> str:
    return command_line(vault, "wal", "push", shlex.quote(item), *(["--async"] if async_ else []), "%p")


def restore_command(vault, item: str, spool: str | None = None) -> str:
    """``wal get``, behind shell tests that take a file a restore fetched ahead into
    ``spool`` (a folder, relative to the data directory: :mod:`.recoverywal`), or a
    segment ``wal get`` fetched ahead, or answer "not archived" from the fresh listing of
    the archive, without starting strongroom (a process costs more than the segment; see
    :func:`.walstore.take_cached`)."""
    from . import walstore

    cache = shlex.quote(walstore.cache_dir(vault.url, item))
    fresh = f"-newermt '-{int(walstore.LISTING_FRESH)} seconds'"
    command = (f"c={cache}; if [ -f \"$c/%f\" ]; then mv -f \"$c/%f\" \"%p\";"
               f" elif [ -n \"$(find \"$c/{walstore.LISTING}\" {fresh} 2>/dev/null)\" ]"
               f" && ! grep -qxF \"%f\" \"$c/{walstore.LISTING}\"; then exit 1;"
               f" else {command_line(vault, 'wal', 'get', shlex.quote(item), '%f', '%p')}; fi")
    if not spool:
        return command
    # cp, not mv: recovery asks for its last segment again when it ends
    return f"s={shlex.quote(spool)}; if [ -f \"$s/%f\" ]; then cp \"$s/%f\" \"%p\"; else {command}; fi"


@click.group(name="wal")
def wal() -> None:
    """The WAL archive of a physical postgres item (archive_command, restore_command)."""


@wal.command(name="push")
@click.argument("item")
@click.argument("path")
@click.option("--async", "async_", is_flag=True, default=False,
              help="Spool the segment locally (fsync'd) and return; spooled segments are committed in batches.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="--async: commit the spool once it holds this many segments.")
def push_cmd(item: str, path: str, async_: bool, batch: int) -> None:
    """Archive WAL file PATH (archive_command = 'strongroom wal push ITEM %p')."""
    from . import walstore

    url = click.get_current_context().find_root().params.get("vault_url")
    if async_ and url and walstore.spool_only(url, item, path, batch):
        walstore.forget_listing([url], item)
        return
    try:
        vault = command_vault()
    except StrongroomError as exc:  # unreachable, unreadable, no key: PostgreSQL keeps the segment
        from .errors import WalPushFailed

        segment = os.path.basename(path)
        walstore.record_failure(None, [url, os.environ.get("STRONGROOM_VAULT")], item, segment, str(exc))
        if async_ and os.path.exists(os.path.join(walstore.spool_dir(url or "", item), segment)):
            return  # safe in the spool: the batch is committed once the vault answers
        raise WalPushFailed(segment=segment, item=item, reason=str(exc)) from None
    walstore.push(vault, item, path, async_=async_, batch=batch)
    walstore.report_failures(vault, item, [url])
    walstore.forget_listing([url, vault.url], item)


@wal.command(name="flush")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def flush_cmd(item: str, as_json: bool) -> None:
    """Commit the segments spooled by 'wal push --async' as one point."""
    from . import walstore

    vault = command_vault()
    count = walstore.flush(vault, item)
    walstore.report_failures(vault, item, [click.get_current_context().find_root().params.get("vault_url")])
    walstore.forget_listing([click.get_current_context().find_root().params.get("vault_url"), vault.url], item)
    if as_json:
        emit_json({"item": item, "committed": count})
    else:
        click.echo(f"{count} segment(s) committed")


@wal.command(name="get")
@click.argument("item")
@click.argument("name")
@click.argument("path")
def get_cmd(item: str, name: str, path: str) -> None:
    """Write archived WAL file NAME to PATH (restore_command = 'strongroom wal get ITEM %f %p')."""
    from . import walstore

    url = click.get_current_context().find_root().params.get("vault_url")
    cached = walstore.take_cached(url, item, name, path) if url else None
    if cached is not None:
        if not cached:
            sys.exit(1)
        return
    vault = command_vault()
    walstore.check_item(vault, item)
    if not walstore.fetch(vault, item, name, path, cache=walstore.cache_dir(url or vault.url, item)):
        sys.exit(1)


@wal.command(name="list")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_cmd(item: str, as_json: bool) -> None:
    """Timelines, first and last segment and gaps of the WAL archive of ITEM."""
    from . import walstore

    vault = command_vault()
    walstore.check_item(vault, item)
    doc = walstore.summary(vault, item)
    if as_json:
        emit_json(doc)
        return
    if not doc["timelines"]:
        click.echo(f"{item}: no WAL archived")
    for row in doc["timelines"]:
        gaps = ", ".join(f"{g['from']}..{g['to']}" for g in row["gaps"]) or "none"
        click.echo(f"timeline {row['timeline']}: {row['first']} .. {row['last']}, {row['segments']} segment(s),"
                   f" gaps: {gaps}")
    if doc["history"]:
        click.echo("history files: " + ", ".join(doc["history"]))
    click.echo(f"last archived: {doc['last_archived'] or '-'}; spooled, not yet committed: {doc['spooled']}")
    gaps = [(g["from"], g["to"]) for row in doc["timelines"] for g in row["gaps"]]
    if gaps:
        walstore.alert_gap(vault, item, gaps)
        sys.exit(1)


@wal.command(name="setup")
@click.argument("item")
@click.option("--apply", is_flag=True, default=False,
              help="Set them on the item's server (ALTER SYSTEM, then reload; archive_mode needs a restart).")
@click.option("--async", "async_", is_flag=True, default=False, help="Use 'wal push --async'.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON (without --apply).")
def setup_cmd(item: str, apply: bool, async_: bool, as_json: bool) -> None:
    """Print (or apply) archive_mode and archive_command for ITEM's server."""
    from . import walstore

    vault = command_vault()
    found = walstore.check_item(vault, item)
    command = archive_command(vault, item, async_)
    if as_json and apply:
        raise UsageError(message="wal setup: --json prints the settings; it does not go with --apply")
    if as_json:
        emit_json({"item": item, "archive_mode": "on", "archive_command": command,
                   "restore_command": restore_command(vault, item)})
        return
    if not apply:
        click.echo("archive_mode = on")
        click.echo("archive_command = '" + command.replace("'", "''") + "'")
        return
    from .conninfo import Connection
    from .server import Server, find_toolsets, quote_literal

    conn = Connection.from_dict(found.source["connection"], vault.workload("postgres").secrets)
    server = Server(conn, find_toolsets(found.source.get("bindir"))[0])
    before = server.query("select to_json(current_setting('archive_mode'))")
    server.execute("alter system set archive_mode = 'on'")
    server.execute(f"alter system set archive_command = {quote_literal(command)}")
    server.execute("select pg_reload_conf()")
    click.echo(f"archive_command set on {conn.describe()}"
               + ("" if before in ("on", "always") else "; restart the server to turn archive_mode on"))
