"""The WAL a restore's recovery will ask for, fetched into the restored data directory first.

A physical restore (:mod:`.pitr`) starts :class:`Prefetch` beside the writing of the base
backup: a thread with a view of the vault of its own reads, in the order recovery asks
for them, the archived files of ``ITEM.wal`` that recovery will replay, and writes each
into :data:`SPOOL` (``pg_wal/strongroom-restore/`` of the restored data directory:
a temporary name, then a rename, so a file there is always whole).  The
``restore_command`` the restore writes copies a file found there into place (``cp``, no
process started: see :func:`.walcmd.restore_command`) and starts
``strongroom wal get`` only for a file that is not there; ``recovery_end_command``
removes the folder when recovery ends (and ``restore --start`` removes it once the server
is promoted).  Left there by a recovery that never ended, it is skipped by
``pg_basebackup`` (a folder of ``pg_wal``) and removed with the data directory.

What is fetched (:func:`plan`): every ``.history`` file, then from the base backup's
first segment on, for each segment number the segment of the timeline that recovery
follows there: the timelines of the chain from the base backup's to the target timeline
(``recovery_target_timeline = 'latest'``: the newest timeline whose history files follow
one another from the base backup's; ``N`` (``restore --timeline N``): timeline N; the
base backup's own for ``'current'``), each up to the switch point the target's history
file names, then the target's own, up to

- the end of the archive (no target, ``--to-xid``, ``--to-name``);
- the segment of the target LSN and one more (``--to-lsn``);
- two segments archived after the target time (``--to-time``: a segment is archived
  after every record it holds, so the first commit after the target is in one of the
  segments archived after it, almost always the first);
- the segment of the base backup's end and one more (``recovery_target = 'immediate'``),

and never more than :data:`AHEAD` segments (1 GiB: the data directory holds them until recovery
ends); recovery asks ``wal get`` for the segments after them, as it did without this
(``wal get`` fetches :data:`.walstore.PREFETCH` ahead in its own cache).  A segment
missing before the end of the base backup is skipped (the base backup holds it); one
missing after it ends the plan.  A failure while fetching ends the prefetch
with a warning: recovery then asks ``wal get`` for the rest, as it did without it.
The listing of the archive is saved where ``wal get`` keeps it (:func:`.walstore.save_listing`)
once everything is fetched, so for :data:`.walstore.LISTING_FRESH` seconds the files
recovery asks for that the archive does not have (the end of the archive, the next
timeline's history file) are answered by the shell as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading

import attrs

from . import walstore

#: the folder of the restored data directory that the prefetched WAL goes into
SPOOL = os.path.join("pg_wal", "strongroom-restore")
SEGMENT_BYTES = 16 * 2**20
#: segments fetched ahead at most
AHEAD = 64

log = logging.getLogger(__name__)


def lsn_value(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def parse_history(text: str) -> list[tuple[int, int]]:
    """(timeline, switch LSN) of each line of a timeline history file, oldest first."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) < 2:
            continue
        try:
            out.append((int(fields[0]), lsn_value(fields[1])))
        except ValueError:
            continue
    return out


def _target(histories: dict[int, str], start: int, target: int | None) -> int:
    """The timeline recovery from timeline ``start`` heads for: ``target``, else the newest
    one whose history files follow one another from ``start`` (``'latest'``)."""
    if target is not None:
        return target
    newest = start
    while newest + 1 in histories:
        newest += 1
    return newest


def chain(histories: dict[int, str], start: int, target: int | None = None) -> list[tuple[int, int]]:
    """(timeline, first segment number) of the timelines recovery follows from timeline
    ``start`` to timeline ``target`` (None: ``'latest'``, PostgreSQL's ``findNewestTimeLine``),
    newest first: the ancestors its history file names, each from the switch to it."""
    newest = _target(histories, start, target)
    if newest == start or newest not in histories:
        return [(newest, 0)]
    out = []
    begin = 0
    for tli, switch in parse_history(histories[newest]):
        out.append((tli, begin))
        begin = switch // SEGMENT_BYTES
    out.append((newest, begin))
    return out[::-1]


def histories(vault, item: str, have: dict[str, tuple[str, str, str]]) -> dict[int, str]:
    """The text of every archived timeline history file, by timeline."""
    out = {}
    for name in sorted(n for n in have if n.endswith(".history")):
        view = vault.point_view(walstore.companion(item), have[name][1])
        out[int(name[:8], 16)] = view.read_bytes(name).decode("utf-8", "replace")
    return out


def ends(histories: dict[int, str], start: int, target: int | None = None) -> dict[int, int | None]:
    """Timeline -> the LSN where recovery from timeline ``start`` to timeline ``target``
    (None: ``'latest'``) leaves it (None: the target, followed to its end)."""
    newest = _target(histories, start, target)
    out: dict[int, int | None] = {newest: None}
    if newest != start and newest in histories:
        out.update(dict(parse_history(histories[newest])))
    return out


def on_path(histories: dict[int, str], doc: dict, stop_lsn: int, target: int | None = None) -> bool:
    """Whether recovery from base backup ``doc`` can follow timeline ``target`` (None: the
    newest): its timeline is in that timeline's history and it ended before leaving it
    (else PostgreSQL stops: "requested timeline N is not a child of this server's history")."""
    tli = int(doc.get("timeline") or 1)
    left = ends(histories, tli, target)
    return tli in left and (left[tli] is None or stop_lsn <= left[tli])  # type: ignore[operator]


@attrs.frozen
class Until:
    """Where the plan stops (see the module docstring): a segment number, or a time."""

    segment: int | None = None
    time: dt.datetime | None = None


def plan(have: dict[str, tuple[str, str, str]], histories: dict[int, str], doc: dict, until: Until,
         timeline: int | None = None) -> list[str]:
    """The names to fetch, in the order recovery asks for them (history files first), for
    recovery to timeline ``timeline`` (None: ``'latest'``)."""
    names = sorted(n for n in have if n.endswith(".history"))
    start_file = doc.get("start_wal_file") or ""
    if not walstore.SEGMENT.match(start_file):
        return names
    tli, number = walstore.position(start_file)
    timelines = chain(histories, int(doc.get("timeline") or tli), timeline)
    stop_lsn = doc.get("stop_lsn") or ""
    backup_end = lsn_value(stop_lsn) // SEGMENT_BYTES if stop_lsn else number
    late = 0
    first = len(names)
    current = 0  # recovery never goes back to an older timeline than the last file's
    while (until.segment is None or number <= until.segment) and len(names) - first < AHEAD:
        found = next((name for name in (walstore.segment_name(t, number) for t, first in timelines
                                        if first <= number and t >= current) if name in have), None)
        if found is None:
            if number <= backup_end:
                number += 1
                continue
            break
        names.append(found)
        current = int(found[:8], 16)
        if until.time is not None and dt.datetime.fromisoformat(have[found][2]) > until.time:
            late += 1
            if late == 2:
                break
        number += 1
    return names


class Prefetch:
    """The fetching thread of one restore (see the module docstring)."""

    def __init__(self, vault, item: str, data_dir: str, doc: dict, until: Until,
                 have: dict[str, tuple[str, str, str]], histories: dict[int, str],
                 timeline: int | None = None) -> None:
        self.folder = os.path.join(data_dir, SPOOL)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self.fetched = 0
        self.bytes = 0
        self.warning = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(vault.reopen(), vault.url, item, doc, until, have,
                                              histories, timeline),
                                        name="wal-prefetch", daemon=True)
        self._thread.start()

    def _run(self, vault, url: str, item: str, doc: dict, until: Until, have: dict, histories: dict,
             timeline: int | None) -> None:
        try:
            views: dict[str, object] = {}

            def read(name: str) -> bytes:
                point_id = have[name][1]
                if point_id not in views:
                    views[point_id] = vault.point_view(walstore.companion(item), point_id)
                return views[point_id].read_bytes(name)  # type: ignore[attr-defined]

            for name in plan(have, histories, doc, until, timeline):
                if self._stop.is_set():
                    return
                content = histories[int(name[:8], 16)].encode() if name.endswith(".history") else read(name)
                temp = os.path.join(self.folder, f".{name}.tmp")
                with open(temp, "wb") as fh:
                    fh.write(content)
                os.replace(temp, os.path.join(self.folder, name))
                self.fetched += 1
                self.bytes += len(content)
            walstore.save_listing(walstore.cache_dir(url, item), walstore.archived(vault, item))
        except Exception as exc:  # recovery asks wal get for what is not here
            self.warning = f"WAL not fetched ahead ({exc}); recovery fetches it with 'strongroom wal get'"

    def wait(self) -> None:
        self._thread.join()

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()

