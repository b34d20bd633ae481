"""The WAL archive of a physical item: segments stored as points of a companion item.

The segments of item ``ITEM`` are the files of the points of item ``ITEM.wal``
(workload ``postgres-wal``, protected on the first push): each push commits one point
holding the segments it archives (one, or a batch), compressed and encrypted as every
chunk of the vault.  The point header's ``extra["wal"]`` maps each segment name to its
SHA-256, so finding a segment reads headers only.

Promises:

- :func:`push` returns only once the segment is committed in the vault (sync), or
  fsync'd into the local spool (``async_=True``: ``$STRONGROOM_HOME/wal-spool/URLHASH/ITEM``;
  once the spool exists a push into it opens no vault, :func:`spool_only`;
  the spool is committed as one point by the push that finds ``batch`` segments
  there, or by :func:`flush`).  Any failure raises, so ``archive_command`` exits
  non-zero and PostgreSQL keeps the segment and retries.
- A segment already archived with the same content is success; with other content it
  is :class:`~.errors.WalSegmentConflict` (nothing replaced).
- A segment of timeline N > 1 brings the history files of timelines 2..N found beside
  it (``pg_wal``) that the archive lacks, in the same point: a server promoted while
  ``archive_mode`` was off (a restored copy) never archives its own.  A history file
  archived with other content (two copies promoted to the same timeline) is
  :class:`~.errors.WalSegmentConflict`, so the second copy's archiving stops there.
- :func:`fetch` writes a segment (from the spool first, then the vault) to a temporary
  name beside the destination and renames it; it returns False for a segment the
  archive does not hold (``restore_command`` then exits 1, as PostgreSQL expects).
  It also fetches the next :data:`PREFETCH` segments into a cache
  (``$STRONGROOM_HOME/wal-cache/``) that the next ``wal get`` takes from without
  opening the vault (:func:`take_cached`): recovery asks for segments in order, and a
  process per segment costs more than reading it.  The listing of the archive it read
  answers "not archived" for :data:`LISTING_FRESH` seconds without the vault.
- A push that leaves a gap before its segment (on its timeline), and ``wal list``
  finding gaps, raise a ``job`` alert of kind ``postgres.wal-gap`` (:func:`alert_gap`).
- A push that fails for any reason but a refusal (the vault unreachable or unreadable,
  a commit that fails) records the failure in ``$STRONGROOM_HOME/wal-alerts/URLHASH/ITEM.json``
  (first and last failure, count, last reason; :func:`record_failure`) and tries, quietly,
  to raise a ``job`` alert of kind ``postgres.wal-push-failed`` in the vault (and so to
  its sinks, whose settings are in the vault); the next push or flush that commits
  raises it (:func:`report_failures`: one alert per outage, deduplicated by its first
  failure) and removes the record.  An async push whose segment is safe in the spool
  exits 0 even when the commit of the batch fails (recorded the same way).
- Refused: an item that is not protected (:class:`~.errors.WalItemUnknown`) or not
  physical (:class:`~.errors.NotPhysical`).
- **Retention follows the base backups** (:func:`expire`, run after each base backup):
  a point of ``ITEM.wal`` whose segments all come before the start of the oldest base
  backup the vault still has is deleted as ``points delete`` deletes (soft delete,
  immutability and the guard apply: a refusal keeps it, with a warning).  Points holding
  a timeline history file are kept; with no base backup nothing is deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import re
import time
from typing import Iterator

import logging

import attrs
from strongroom import FILE, Entry, ItemNotFound, StreamSource, StrongroomError, strongroom_home

from .errors import NotPhysical, WalItemUnknown, WalPushFailed, WalSegmentConflict

SUFFIX = ".wal"
WORKLOAD = "postgres-wal"  # walcmd.WORKLOAD
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
#: names restore_command is asked for besides segments
NAME = re.compile(r"^[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history)$")
SEGMENTS_PER_LOG = 256  # 16 MiB segments: 0x100000000 / 16 MiB


def companion(item: str) -> str:
    return item + SUFFIX


def check_item(vault, item: str):
    """The physical item ``item`` (refusals: see the module docstring)."""
    try:
        found = vault.item(item)
    except ItemNotFound:
        raise WalItemUnknown(item=item) from None
    if found.workload != "postgres" or found.state != "protected":
        raise WalItemUnknown(item=item)
    if found.source.get("mode") != "physical":
        raise NotPhysical(item=item, reason="is a logical (pg_dump) item: WAL archiving and point-in-time"
                                            " restore need a physical one (protect postgres ITEM --physical)")
    return found


def _ensure_companion(vault, item: str) -> str:
    name = companion(item)
    try:
        vault.item(name)
    except ItemNotFound:
        vault.protect(WORKLOAD, name, {"of": item})
    return name


def archived(vault, item: str) -> dict[str, tuple[str, str, str]]:
    """Segment name -> (sha256, point id, point created) of every archived segment."""
    try:
        points = vault.points(companion(item))
    except ItemNotFound:
        return {}
    found: dict[str, tuple[str, str, str]] = {}
    for point in points:
        for name, digest in (point.extra or {}).get("wal", {}).items():
            found.setdefault(name, (digest, point.point_id, point.created))
    return found


def alert_gap(vault, item: str, gaps: list[tuple[str, str]]) -> None:
    """A ``job`` alert (kind ``postgres.wal-gap``) naming the gaps; one open alert per set
    of gaps.  Never raises: archiving goes on whatever the alerts do."""
    if not gaps:
        return
    text = ", ".join(f"{a}..{b}" if a != b else a for a, b in gaps)
    with contextlib.suppress(Exception):
        vault.alerts.raise_alert("job", "postgres.wal-gap", f"WAL archive of item '{item}' has gaps: {text};"
                                 " a point-in-time restore cannot cross them (take a base backup)",
                                 item=item, dedupe=f"postgres.wal-gap:{item}:{text}", severity="error")


def _gap_before(have: dict, segment: str) -> list[tuple[str, str]]:
    """The missing segments between ``segment`` and the last archived one before it on
    its timeline (none when it is the first)."""
    if not SEGMENT.match(segment):
        return []
    tli, number = position(segment)
    earlier = [position(n)[1] for n in have if SEGMENT.match(n) and position(n)[0] == tli and position(n)[1] < number]
    if not earlier or max(earlier) == number - 1:
        return []
    return [(segment_name(tli, max(earlier) + 1), segment_name(tli, number - 1))]


def _entry(name: str, size: int) -> Entry:
    now = time.time_ns()
    return Entry(name=name, type=FILE, mode=0o600, mtime_ns=now, ctime_ns=now, size=size)


def _commit(vault, item: str, segments: list[tuple[str, bytes]]) -> None:
    """One point of the companion item holding ``segments`` (name, content)."""
    if not segments:
        return
    name = _ensure_companion(vault, item)
    digests = {n: hashlib.sha256(c).hexdigest() for n, c in segments}

    def produce(ctx) -> Iterator[object]:
        for seg, content in segments:
            yield StreamSource(seg, _entry(seg, len(content)), lambda c=content: io.BytesIO(c))

    vault.copy_in(name, produce, header={"extra": {"wal": digests}, "consistency": "wal segments"})


def _read(path: str, segment: str, item: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise WalPushFailed(segment=segment, item=item, reason=f"cannot read {path}: {exc.strerror}") from None


def _known(have: dict, item: str, segment: str, content: bytes) -> bool:
    """True when ``segment`` is archived with this content; conflict if with another."""
    if segment not in have:
        return False
    if have[segment][0] != hashlib.sha256(content).hexdigest():
        raise WalSegmentConflict(segment=segment, item=item)
    return True


# --- the spool (async) -------------------------------------------------------------------


def spool_dir(vault, item: str) -> str:
    """The spool of ``item``: by vault URL (``vault`` is an open vault or its URL), so a
    push into an existing spool needs no vault opened (:func:`spool_only`)."""
    url = vault if isinstance(vault, str) else vault.url
    return os.path.join(str(strongroom_home()), "wal-spool", hashlib.sha256(url.encode()).hexdigest()[:16], item)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _spooled(folder: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if NAME.match(n))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def _flush_lock(folder: str, wait: bool) -> Iterator[bool]:
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


@attrs.frozen
class Pushed:
    segment: str
    how: str  # "archived", "already archived", "spooled", "spooled and flushed N"


def push(vault, item: str, path: str, *, async_: bool = False, batch: int = 8) -> Pushed:
    """Archive the WAL file at ``path`` (see the module docstring)."""
    segment = os.path.basename(path)
    if not NAME.match(segment):
        raise WalPushFailed(segment=segment, item=item, reason="not a WAL file name (archive_command passes %p)")
    folder = spool_dir(vault, item)
    if not (async_ and os.path.isdir(folder)):  # a spool exists only for an item already checked
        check_item(vault, item)
    content = _read(path, segment, item)
    if not async_:
        have: dict = {}
        try:
            have = archived(vault, item)
            histories = [h for h in _histories_beside(path, segment, item) if h[0] not in have]
            if _known(have, item, segment, content) and not histories:
                return Pushed(segment, "already archived")
            _commit(vault, item, [*histories, *([] if segment in have else [(segment, content)])])
        except (WalSegmentConflict, WalItemUnknown, NotPhysical):
            raise
        except Exception as exc:
            record_failure(vault, [vault.url], item, segment, str(exc))
            raise WalPushFailed(segment=segment, item=item, reason=str(exc)) from None
        alert_gap(vault, item, _gap_before(have, segment))
        report_failures(vault, item)
        return Pushed(segment, "archived")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for name, text in _histories_beside(path, segment, item):
        _spool(folder, item, name, text)
    how = _spool(folder, item, segment, content)
    if len(_spooled(folder)) >= batch:
        try:
            done = flush(vault, item, wait=False)
        except WalPushFailed as exc:  # the segment is safe in the spool: the batch goes later
            return Pushed(segment, f"{how}; not committed ({exc})")
        return Pushed(segment, f"{how}; {done} segment(s) committed")
    return Pushed(segment, how)


def _histories_beside(path: str, segment: str, item: str) -> list[tuple[str, bytes]]:
    """The timeline history files in the folder of ``path`` (the server's ``pg_wal``) up to
    the timeline of ``segment``, when it is not timeline 1: a server promoted while
    ``archive_mode`` was off never archives the history file of its timeline, and without
    it a restore cannot follow that timeline."""
    if not SEGMENT.match(segment) or position(segment)[0] == 1:
        return []
    tli = position(segment)[0]
    folder = os.path.dirname(os.path.abspath(path))
    out = []
    for n in range(2, tli + 1):
        name = f"{n:08X}.history"
        if os.path.exists(os.path.join(folder, name)):
            out.append((name, _read(os.path.join(folder, name), name, item)))
    return out


def _spool(folder: str, item: str, segment: str, content: bytes) -> str:
    final = os.path.join(folder, segment)
    if os.path.exists(final):
        with open(final, "rb") as fh:
            if fh.read() != content:
                raise WalSegmentConflict(segment=segment, item=item)
        return "already spooled"
    temp = os.path.join(folder, f".{segment}.tmp")
    with open(temp, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, final)
    _fsync_dir(folder)
    return "spooled"


def spool_only(url: str, item: str, path: str, batch: int) -> bool:
    """``wal push --async`` without opening the vault: True when the segment went into
    the existing spool of ``item`` and the spool holds fewer than ``batch`` segments;
    False when the vault is needed (no spool yet: the item is checked first; or a batch
    to commit)."""
    folder = spool_dir(url, item)
    segment = os.path.basename(path)
    if not NAME.match(segment) or not os.path.isdir(folder):
        return False
    for name, text in _histories_beside(path, segment, item):
        _spool(folder, item, name, text)
    _spool(folder, item, segment, _read(path, segment, item))
    return len(_spooled(folder)) < batch


def flush(vault, item: str, *, wait: bool = True) -> int:
    """Commit the spooled segments of ``item`` as one point; the number committed (0
    when another flush holds the spool and ``wait`` is false)."""
    folder = spool_dir(vault, item)
    if not os.path.isdir(folder):
        check_item(vault, item)
        return 0
    with _flush_lock(folder, wait) as locked:
        if not locked:
            return 0
        names = _spooled(folder)
        if not names:
            return 0
        have = archived(vault, item)
        batch = []
        for name in names:
            content = _read(os.path.join(folder, name), name, item)
            if not _known(have, item, name, content):
                batch.append((name, content))
        try:
            _commit(vault, item, batch)
        except Exception as exc:
            record_failure(vault, [vault.url], item, f"{len(batch)} spooled segment(s)", str(exc))
            raise WalPushFailed(segment=f"{len(batch)} spooled segment(s)", item=item, reason=str(exc)) from None
        for name in names:
            os.unlink(os.path.join(folder, name))
        _fsync_dir(folder)
        report_failures(vault, item)
        return len(batch)


# --- failed pushes -----------------------------------------------------------------------


FAILED_KIND = "postgres.wal-push-failed"


def _failures_file(url: str, item: str) -> str:
    return os.path.join(str(strongroom_home()), "wal-alerts", hashlib.sha256(url.encode()).hexdigest()[:16],
                        f"{item}.json")


def _failure_alert(vault, item: str, doc: dict, *, now: bool) -> None:
    """Raise the alert of the outage ``doc`` describes; never raises, prints nothing."""
    if now:
        summary = (f"WAL archiving of item '{item}' failed: {doc['segment']} could not be archived"
                   f" ({doc['reason']}); PostgreSQL keeps the segment and retries")
    else:
        summary = (f"WAL archiving of item '{item}' failed {doc['count']} time(s) from {doc['first']} to"
                   f" {doc['last']} (last: {doc['reason']}); PostgreSQL kept the segments, archived since")
    alerts = vault.alerts
    quiet, alerts.notify = alerts.notify, (lambda message: None)
    try:
        with contextlib.suppress(Exception):
            alerts.raise_alert("job", FAILED_KIND, summary, item=item, severity="error",
                               dedupe=f"{FAILED_KIND}:{item}:{doc['first']}",
                               details={k: doc[k] for k in ("first", "last", "count", "segment", "reason")})
    finally:
        alerts.notify = quiet


def record_failure(vault, urls: list[str | None], item: str, segment: str, reason: str) -> None:
    """Record a failed push of ``segment`` (see the module docstring); ``vault`` is the
    open vault, or None when it could not be opened.  Never raises."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for url in dict.fromkeys(u for u in urls if u):
        path = _failures_file(url, item)
        with contextlib.suppress(Exception):
            try:
                with open(path) as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                doc = {"first": now, "count": 0}
            doc.update(last=now, count=int(doc.get("count", 0)) + 1, segment=segment, reason=reason)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            _write(path, json.dumps(doc).encode())
            if vault is not None and doc["count"] == 1:
                _failure_alert(vault, item, doc, now=True)


def report_failures(vault, item: str, urls: list[str | None] = ()) -> None:
    """After a commit: raise the alert of the failures recorded for ``item`` on this
    machine (if it is not in the vault yet) and forget them.  Never raises."""
    for url in dict.fromkeys(u for u in [vault.url, *urls] if u):
        path = _failures_file(url, item)
        try:
            with open(path) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            continue
        _failure_alert(vault, item, doc, now=False)
        with contextlib.suppress(OSError):
            os.unlink(path)


# --- restore_command ---------------------------------------------------------------------


#: segments fetched ahead into the cache by a ``wal get`` that reads the vault
PREFETCH = 8


def cache_dir(url: str, item: str) -> str:
    """Where ``wal get`` keeps segments fetched ahead: by vault URL, so that a hit needs
    no vault opened."""
    return os.path.join(str(strongroom_home()), "wal-cache", hashlib.sha256(url.encode()).hexdigest()[:16], item)


def _write(destination: str, content: bytes) -> None:
    temp = destination + ".strongroom-tmp"
    with open(temp, "wb") as fh:
        fh.write(content)
    os.replace(temp, destination)


#: seconds a listing of the archive written by a ``wal get`` answers "not archived"
LISTING_FRESH = 30.0
LISTING = ".listing"


def take_cached(url: str, item: str, name: str, destination: str) -> bool | None:
    """Move WAL file ``name`` fetched ahead to ``destination`` (True); False when a
    listing of the archive younger than :data:`LISTING_FRESH` seconds does not have it
    (the end of the archive, a ``.history`` file never made: PostgreSQL asks for those
    at every start and promotion); None when only the vault can tell."""
    if not NAME.match(name):
        return False
    folder = cache_dir(url, item)
    cached = os.path.join(folder, name)
    if os.path.exists(cached):
        with open(cached, "rb") as fh:
            _write(destination, fh.read())
        os.unlink(cached)
        return True
    listing = os.path.join(folder, LISTING)
    try:
        if time.time() - os.stat(listing).st_mtime < LISTING_FRESH:
            with open(listing) as fh:
                if name not in fh.read().split():
                    return False
    except OSError:
        pass
    return None


def forget_listing(urls: list[str], item: str) -> None:
    """A push on this machine makes the listing of the archive out of date: drop it."""
    for url in dict.fromkeys(u for u in urls if u):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cache_dir(url, item), LISTING))


def save_listing(cache: str, have: dict) -> None:
    """Keep the names of ``have`` (:func:`archived`) as the fresh listing of the archive."""
    os.makedirs(cache, mode=0o700, exist_ok=True)
    _write(os.path.join(cache, LISTING), "\n".join(sorted(have)).encode())


def fetch(vault, item: str, name: str, destination: str, *, cache: str | None = None) -> bool:
    """Write WAL file ``name`` to ``destination``; False when the archive lacks it.  With
    ``cache`` (a folder), the next :data:`PREFETCH` segments of the timeline that the
    archive holds are written there (``restore_command`` asks for them next)."""
    if not NAME.match(name):
        return False
    spooled = os.path.join(spool_dir(vault, item), name)
    if os.path.exists(spooled):
        with open(spooled, "rb") as fh:
            _write(destination, fh.read())
        return True
    have = archived(vault, item)
    if cache:
        save_listing(cache, have)
    where = have.get(name)
    if where is None:
        if cache and SEGMENT.match(name):  # the end of the archive: nothing ahead
            for left in os.listdir(cache):
                if NAME.match(left):
                    os.unlink(os.path.join(cache, left))
        return False
    views: dict[str, object] = {}

    def read(segment: str, point_id: str) -> bytes:
        if point_id not in views:
            views[point_id] = vault.point_view(companion(item), point_id)
        return views[point_id].read_bytes(segment)  # type: ignore[attr-defined]

    _write(destination, read(name, where[1]))
    if cache and SEGMENT.match(name):
        os.makedirs(cache, mode=0o700, exist_ok=True)
        tli, number = position(name)
        for ahead in range(number + 1, number + 1 + PREFETCH):
            segment = segment_name(tli, ahead)
            if segment not in have:
                break
            if not os.path.exists(os.path.join(cache, segment)):
                _write(os.path.join(cache, segment), read(segment, have[segment][1]))
    return True


# --- listing -----------------------------------------------------------------------------


log = logging.getLogger(__name__)


def expire(vault, item: str) -> list[str]:
    """Delete the points of ``ITEM.wal`` no base backup needs (see the module docstring);
    the ids deleted."""
    from .pitr import base_backups

    starts = [position(doc["start_wal_file"])[1] for _, doc in base_backups(vault, item)
              if SEGMENT.match(doc.get("start_wal_file") or "")]
    if not starts:
        return []
    needed = min(starts)
    try:
        points = vault.points(companion(item))
    except ItemNotFound:
        return []
    deleted: list[str] = []
    for point in points:
        names = list((point.extra or {}).get("wal", {}))
        segments = [name[:24] for name in names if SEGMENT.match(name[:24])]
        if not names or len(segments) != len(names) or max(position(s)[1] for s in segments) >= needed:
            continue
        try:
            vault.delete_point(companion(item), point.point_id)
        except StrongroomError as exc:
            log.warning("warning: WAL point %s of item '%s' is no longer needed but was kept: %s",
                        point.short_id, companion(item), exc)
            break
        deleted.append(point.point_id)
    return deleted


def position(segment: str) -> tuple[int, int]:
    """(timeline, segment number) of a segment name."""
    return int(segment[:8], 16), int(segment[8:16], 16) * SEGMENTS_PER_LOG + int(segment[16:24], 16)


def segment_name(timeline: int, number: int) -> str:
    return f"{timeline:08X}{number // SEGMENTS_PER_LOG:08X}{number % SEGMENTS_PER_LOG:08X}"


def summary(vault, item: str) -> dict:
    """Timelines with first/last segment and the gaps between, the history files, and
    when the last segment was archived."""
    have = archived(vault, item)
    folder = spool_dir(vault, item)
    spooled = _spooled(folder)
    names = set(have) | set(spooled)
    timelines: dict[int, list[int]] = {}
    for name in names:
        if SEGMENT.match(name):
            tli, number = position(name)
            timelines.setdefault(tli, []).append(number)
    rows = []
    for tli in sorted(timelines):
        numbers = sorted(timelines[tli])
        present = set(numbers)
        gaps = []
        for number in range(numbers[0], numbers[-1] + 1):
            if number not in present:
                if gaps and gaps[-1][1] == number - 1:
                    gaps[-1][1] = number
                else:
                    gaps.append([number, number])
        rows.append({"timeline": tli, "first": segment_name(tli, numbers[0]), "last": segment_name(tli, numbers[-1]),
                     "segments": len(numbers),
                     "gaps": [{"from": segment_name(tli, a), "to": segment_name(tli, b)} for a, b in gaps]})
    last = max((created for _, _, created in have.values()), default=None)
    return {"item": item, "timelines": rows, "history": sorted(n for n in names if n.endswith(".history")),
            "spooled": len(spooled), "last_archived": last}


def last_archived_time(vault, item: str) -> dt.datetime | None:
    """When the newest segment reached the archive (or the spool)."""
    times = [dt.datetime.fromisoformat(c) for _, _, c in archived(vault, item).values()]
    for name in _spooled(spool_dir(vault, item)):
        times.append(dt.datetime.fromtimestamp(os.stat(os.path.join(spool_dir(vault, item), name)).st_mtime,
                                               dt.timezone.utc))
    return max(times) if times else None
