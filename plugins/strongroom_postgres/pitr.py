"""Point-in-time restore of a physical item: a base backup, recovery settings, a server.

``strongroom restore ITEM[@POINT] --data-dir DIR [--to-time TS | --to-lsn LSN |
--to-xid XID | --to-name NAME] [--timeline N|latest|current] [--start --port N]``:

1. Refuses, one line each: a data directory that exists and is not empty
   (:class:`~.errors.DataDirNotEmpty`), a point that is not physical
   (:class:`~.errors.NotPhysical`), a target time or LSN before the end of the first
   base backup (:class:`~.errors.TargetBeforeFirstBackup`), a target time after the
   last archived WAL (:class:`~.errors.TargetAfterArchive`; with ``--timeline``, after
   the last archived segment of the timeline recovery heads for).
2. Picks the base backup: for ``--to-time``/``--to-lsn`` the newest one that ended
   before the target (whatever ``@POINT`` says); for ``--to-xid``/``--to-name`` and
   without a target, the point asked for (the latest without ``@POINT``).  Recovery
   follows the timeline of ``--timeline`` (``recovery_target_timeline``): ``latest``
   (the default) the newest timeline of the archive (a promoted copy archiving into the
   item makes one), ``N`` timeline N's history, ``current`` the base backup's own.  A
   base backup on another timeline past the switch cannot lead there
   (:func:`.recoverywal.on_path`), so the newest one that can is taken instead, and
   without one the restore is refused (:class:`~.errors.TimelineNotFollowed`), as is a
   timeline N > 1 the archive has no history file of and no base backup is on; a
   ``--timeline`` that is not a number, ``latest`` or ``current`` is a usage error.
   ``recovery_target = 'immediate'`` restores stay on their own timeline (``--timeline``
   does not apply).  The summary says which timelines recovery follows.
3. Writes its files into DIR (created 0700; files 0600 as in the backup) while a thread
   fetches the WAL recovery will replay into ``DIR/pg_wal/strongroom-restore``
   (:mod:`.recoverywal`), then ``recovery.signal`` and, appended to
   ``postgresql.auto.conf``: ``restore_command`` (a copy from that folder, else
   ``strongroom wal get`` on this vault and home), ``recovery_end_command`` (removes the
   folder), the ``recovery_target_*`` setting,
   ``recovery_target_action = 'promote'``, and ``archive_mode = 'off'`` (a restored
   copy must not archive into the item it came from: turn it on for a new item).
   Without a target and with ``@POINT`` naming an older base backup than the latest,
   recovery stops as soon as that backup is consistent (``recovery_target =
   'immediate'``); without either, it replays every archived segment.
With ``--to-database NAME`` instead of ``--data-dir``, a database, schema or table of
the cluster as of the target is restored into a server (:mod:`.itemlevel`).

4. With ``--start``: ``pg_ctl start`` on ``--port`` (sockets in ``--host`` when it is a
   folder), then waits until recovery is over (``pg_is_in_recovery()`` false); a server
   that stops or fails is :class:`~.errors.RecoveryFailed` with its last FATAL line.
   PostgreSQL refuses to run as root: run the restore as the server's OS user.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from typing import Any, Iterator, Sequence

from strongroom import FILE, RestoreResult, UsageError, command_vault, run_child

from . import server as pgserver
from .conninfo import Connection
from .errors import (
    DataDirNotEmpty, NotPhysical, PostgresError, RecoveryFailed, TargetAfterArchive, TargetBeforeFirstBackup,
    TimelineNotFollowed,
)
from .physical import DATA, LATE, PHYSICAL, cluster_version
from . import recoverywal, walcmd, walstore

READ = 1 << 20


def lsn(text: str) -> int:
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise UsageError(message=f"--to-lsn {text!r}: expected a WAL location such as 0/16B3748") from None


def parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(message=f"--to-time {text!r}: expected a time such as '2026-12-04 15:04:05+00'") from None
    return when if when.tzinfo else when.astimezone()


def base_backups(vault, item: str) -> list[tuple[Any, dict]]:
    """(point, physical.json) of every physical point of ``item``, oldest first."""
    out = []
    for point in vault.points(item):
        view = vault.point_view(item, point.point_id)
        if view.exists(PHYSICAL):
            out.append((point, json.loads(view.read_bytes(PHYSICAL))))
    return out


def _target(options: dict[str, Any]) -> tuple[str, str] | None:
    given = [(k, options.get(f"to_{k}")) for k in ("time", "lsn", "xid", "name") if options.get(f"to_{k}")]
    if len(given) > 1:
        raise UsageError(message="give one recovery target: --to-time, --to-lsn, --to-xid or --to-name")
    return (given[0][0], str(given[0][1])) if given else None


def _timeline(options: dict[str, Any]) -> int | str | None:
    """``--timeline``: None (``latest``, the default), ``'current'`` or a timeline number."""
    value = str(options.get("timeline") or "latest").strip().lower()
    if value == "latest":
        return None
    if value == "current":
        return value
    try:
        number = int(value, 10)
    except ValueError:
        number = 0
    if number < 1:
        raise UsageError(message=f"--timeline {options.get('timeline')!r}: expected a timeline number (1, 2, ...),"
                                 " latest or current")
    return number


def _check_data_dir(path: str) -> str:
    path = os.path.abspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise DataDirNotEmpty(path=path)
    return path


def _files(view) -> Iterator[tuple[str, Any, Any]]:
    """The data directory's entries of a base backup, as ``write_entries`` takes them."""
    for path, entry in view.walk(""):
        top, _, rest = path.partition("/")
        if top not in (DATA, LATE) or not rest:
            continue
        content = _content(view, path) if entry.type == FILE else None
        yield rest, entry, content


def _content(view, path: str) -> Iterator[bytes]:
    with view.open(path) as reader:
        while True:
            data = reader.read(READ)
            if not data:
                return
            yield data


def _conf_line(key: str, value: str) -> str:
    return f"{key} = '" + value.replace("'", "''") + "'\n"


def restore_physical(ctx, target: str | None, paths: Sequence[str], options: dict[str, Any],
                     secrets=None) -> RestoreResult:
    item = ctx.item.name
    if ctx.item.source.get("mode") != "physical":
        raise NotPhysical(item=item, reason="is a logical (pg_dump) item: --data-dir and the --to-* targets are"
                                            " for physical items (protect postgres ITEM --physical)")
    if options.get("to_database") and not options.get("data_dir") and not target and not paths:
        from .itemlevel import restore_items

        def physical(data: str, opts: dict[str, Any]) -> RestoreResult:
            return restore_physical(ctx, None, (), {**opts, "data_dir": data}, secrets)

        return restore_items(ctx, options, secrets, physical)
    data_dir = options.get("data_dir")
    if not data_dir:
        raise UsageError(message="a physical point restores into a data directory (--data-dir DIR), or a"
                                 " database of it into a server (--database DB --to-database NAME)")
    if target or paths or options.get("to_database"):
        raise UsageError(message="a physical point restores the whole cluster into --data-dir DIR"
                                 " (--target, --to-database and paths are for logical points)")
    data_dir = _check_data_dir(data_dir)
    wanted = _target(options)
    vault = command_vault()
    bases = base_backups(vault, item)
    if not bases:
        raise NotPhysical(item=item, reason="has no physical base backup yet (strongroom backup ITEM)")
    latest = bases[-1][0].point_id == ctx.point.point_id
    have = walstore.archived(vault, item)
    histories = recoverywal.histories(vault, item, have)
    asked = _timeline(options)

    def heads_for(doc: dict) -> int | None:  # the timeline recovery from base backup doc heads for
        return int(doc.get("timeline") or 1) if asked == "current" else asked  # type: ignore[return-value]

    if asked is None:
        follows = f"the newest timeline of the archive ({max(histories, default=1)})"
        aim = "the newest timeline"
    elif asked == "current":
        follows, aim = "the base backup's own timeline (--timeline current)", "its own timeline"
    else:
        follows, aim = f"timeline {asked} (--timeline {asked})", f"timeline {asked}"
        if asked != 1 and asked not in histories and all(int(d.get("timeline") or 1) != asked for _, d in bases):
            raise TimelineNotFollowed(item=item, timeline=follows,
                                      reason=f"the archive has no history file of it ({asked:08X}.history)"
                                             " and no base backup is on it")
    # base backups recovery can follow that timeline from (all of them without a switch)
    followed = [(p, d) for p, d in bases if not d.get("stop_lsn")
                or recoverywal.on_path(histories, d, lsn(d["stop_lsn"]), heads_for(d))]

    def off_path(d: dict) -> str:  # why recovery from base backup d cannot follow that timeline
        tli = int(d.get("timeline") or 1)
        return (f"is on timeline {tli} past the switch" if tli in recoverywal.ends(histories, tli, heads_for(d))
                else f"is on timeline {tli}, which is not in its history")

    def refuse(p, d) -> TimelineNotFollowed:
        return TimelineNotFollowed(item=item, timeline=follows,
                                   reason=f"base backup {p.short_id} {off_path(d)} (it cannot lead there)")

    if asked is not None and asked != "current" and not followed:
        raise TimelineNotFollowed(item=item, timeline=follows,
                                  reason="no base backup kept is on its history before its switch or on it (the"
                                         f" newest, {bases[-1][0].short_id}, is on timeline"
                                         f" {bases[-1][1].get('timeline')})")
    chosen = next(((p, d) for p, d in bases if p.point_id == ctx.point.point_id), bases[-1])
    passed_over = ""
    if latest and chosen not in followed:
        if not followed:
            raise refuse(*chosen)
        passed_over = f" (base backup {chosen[0].short_id} {off_path(chosen[1])}: it cannot lead to {aim}, not taken)"
        chosen = followed[-1]
    settings: list[tuple[str, str]] = []
    until = recoverywal.Until()
    if wanted and wanted[0] == "time":
        when = parse_time(wanted[1])
        fits = [(p, d) for p, d in followed if dt.datetime.fromisoformat(d["stopped"]) <= when]
        if not fits:
            raise TargetBeforeFirstBackup(target=when.isoformat(), item=item, first=bases[0][1]["stopped"])
        last = walstore.last_archived_time(vault, item)
        if last is None or when > last:
            raise TargetAfterArchive(target=when.isoformat(), item=item, last=last.isoformat() if last else "none")
        chosen = fits[-1]
        on = _last_on_timeline(vault, item, have, heads_for(chosen[1])) if asked is not None else None
        if on is not None and when > on[1]:
            raise TargetAfterArchive(target=f"{when.isoformat()} on timeline {on[0]}", item=item,
                                     last=f"{on[1].isoformat()} on timeline {on[0]}")
        settings.append(("recovery_target_time", when.isoformat()))
        until = recoverywal.Until(time=when)
    elif wanted and wanted[0] == "lsn":
        at = lsn(wanted[1])
        fits = [(p, d) for p, d in followed if lsn(d["stop_lsn"]) <= at]
        if not fits:
            raise TargetBeforeFirstBackup(target=wanted[1], item=item, first=bases[0][1]["stop_lsn"])
        chosen = fits[-1]
        settings.append(("recovery_target_lsn", wanted[1]))
        until = recoverywal.Until(segment=at // recoverywal.SEGMENT_BYTES + 1)
    elif wanted:
        settings.append((f"recovery_target_{wanted[0]}", wanted[1]))
    elif not latest:
        settings += [("recovery_target", "immediate"), ("recovery_target_timeline", "current")]
    immediate = not wanted and not latest
    if not immediate and chosen not in followed:
        raise refuse(*chosen)
    if asked is not None and not immediate:
        settings.append(("recovery_target_timeline", str(asked)))
    point, doc = chosen
    if not wanted and not latest and doc.get("stop_lsn"):
        until = recoverywal.Until(segment=lsn(doc["stop_lsn"]) // recoverywal.SEGMENT_BYTES + 1)
    view = vault.point_view(item, point.point_id)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    os.chmod(data_dir, 0o700)
    heading = int(doc.get("timeline") or 1) if immediate else heads_for(doc)
    prefetch = recoverywal.Prefetch(vault, item, data_dir, doc, until, have, histories, heading)
    try:
        result = ctx.write_entries(data_dir, _files(view))
    except BaseException:
        prefetch.cancel()
        raise
    prefetch.wait()
    with open(os.path.join(data_dir, "recovery.signal"), "w"):
        pass
    conf = [f"# strongroom restore of {item}@{point.short_id} (base backup {doc['start_lsn']}..{doc['stop_lsn']})\n",
            _conf_line("restore_command", walcmd.restore_command(vault, item, recoverywal.SPOOL)),
            _conf_line("recovery_end_command", f"rm -rf {recoverywal.SPOOL}"),
            *(_conf_line(k, v) for k, v in settings),
            _conf_line("recovery_target_action", "promote"),
            _conf_line("archive_mode", "off")]
    with open(os.path.join(data_dir, "postgresql.auto.conf"), "a") as fh:
        fh.writelines(conf)
    what = {"time": "time", "lsn": "LSN", "xid": "transaction", "name": "restore point"}
    reached = (f"recovers to {what[wanted[0]]} {wanted[1]}" if wanted else
               "recovers to the end of the archived WAL" if latest else "recovers to the end of the base backup")
    summary = (f"base backup {point.short_id} ({doc['stopped']}) written to {data_dir}, and"
               f" {prefetch.fetched} archived WAL file(s) for its recovery; {reached}")
    timelines = recoverywal.ends(histories, int(doc.get("timeline") or 1), heading)
    if not immediate and (len(timelines) > 1 or asked is not None):
        path = ", ".join(f"timeline {t} until {_lsn_text(e)}" for t, e in sorted(timelines.items()) if e is not None)
        summary += f" following timeline {heading or max(timelines)}" + (f" ({path})" if path else "")
    summary += passed_over
    warnings = (*result.warnings, *([prefetch.warning] if prefetch.warning else []))
    if options.get("start"):
        _start(ctx, data_dir, options, secrets)
        shutil.rmtree(os.path.join(data_dir, recoverywal.SPOOL), ignore_errors=True)
        summary += f"; server started on port {options.get('port')}, recovery done"
    else:
        summary += f"; start it with: pg_ctl -D {data_dir} start"
    summary += f" (archive_mode is off in it: it must not archive into item '{item}')"
    return RestoreResult(result.stats, result.damaged, result.errors, warnings, summary=summary)


def _last_on_timeline(vault, item: str, have: dict[str, tuple[str, str, str]],
                      timeline: int) -> tuple[int, dt.datetime] | None:
    """(timeline, when its newest segment reached the archive), None when it has none there
    or some in the spool (recovery may reach them)."""
    def on(name: str) -> bool:
        return bool(walstore.SEGMENT.match(name)) and int(name[:8], 16) == timeline

    try:
        if any(on(name) for name in os.listdir(walstore.spool_dir(vault, item))):
            return None
    except OSError:
        pass
    times = [dt.datetime.fromisoformat(when) for name, (_, _, when) in have.items() if on(name)]
    return (timeline, max(times)) if times else None


def _lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _start(ctx, data_dir: str, options: dict[str, Any], secrets) -> None:
    if os.geteuid() == 0:
        raise RecoveryFailed(data_dir=data_dir, reason="PostgreSQL does not run as root: run the restore as the"
                                                       " server's OS user (files written, server not started)")
    port = options.get("port")
    if not port:
        raise UsageError(message="--start needs --port N (the restored server's port)")
    base = Connection.from_dict(ctx.item.source["connection"], secrets)
    conn = Connection.from_options(options, base=base)
    tools = pgserver.for_server(*cluster_version(data_dir), conn.describe(), options.get("bindir")
                                or ctx.item.source.get("bindir"))
    host = options.get("host") or base.to_dict().get("params", {}).get("host")
    server_options = f"-p {int(port)}" + (f" -k {host}" if host and os.path.isdir(host) else "")
    log = os.path.join(data_dir, "restore-start.log")
    done = run_child([tools.path("pg_ctl"), "-D", data_dir, "-l", log, "-w", "-t", "3600", "start",
                      "-o", server_options], capture_output=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RecoveryFailed(data_dir=data_dir, reason=_fatal(log) or done.stderr.decode("utf-8", "replace").strip())
    server = pgserver.Server(conn, tools)
    marker, pid = os.path.join(data_dir, "recovery.signal"), os.path.join(data_dir, "postmaster.pid")
    while os.path.exists(marker) and os.path.exists(pid):  # removed when archive recovery ends: no psql per look
        time.sleep(0.05)
    while True:
        try:
            if not server.query("select to_json(pg_is_in_recovery())"):
                return
        except PostgresError as exc:
            if not os.path.exists(pid):
                raise RecoveryFailed(data_dir=data_dir, reason=_fatal(log) or str(exc)) from None
        time.sleep(0.05)


def _fatal(log: str) -> str:
    try:
        with open(log, errors="replace") as fh:
            lines = [line.strip() for line in fh if "FATAL" in line or "PANIC" in line]
    except OSError:
        return ""
    return lines[-1] if lines else ""
