"""Physical base backups: ``pg_basebackup`` streamed into the vault, one entry per file.

:func:`physical_entries` runs ``pg_basebackup -D - -Ft -X fetch --checkpoint=fast`` (a
child tied to strongroom) and reads its tar stream from standard output as it comes:
every member becomes one entry of the point, read by the engine straight from the
pipe (no staging copy), so a relation segment that did not change since the previous
base backup cuts into the same chunks and costs nothing.  ``-X fetch``: the base
backup holds the WAL from ``start_lsn`` to ``stop_lsn`` (under ``late/pg_wal``), so it
restores by itself, without the archive, and the backup never waits for archiving
(with ``-X none`` pg_basebackup waits until the archive has the last segment: forever
when archiving is broken).  A point-in-time restore replays the archive after it.
After the backup the server is asked to switch WAL segment (``pg_switch_wal()``) so
the segment holding the stop LSN reaches the archive at once.

Point layout::

    physical.json      what a restore needs (see :func:`record`)
    backup_manifest    pg_basebackup's manifest (pg_verifybackup can check a restore)
    data/...           the data directory, in tar order
    late/...           members whose folder was already complete (pg_basebackup sends
                       global/pg_control last): late/global/pg_control is global/pg_control

Refused: a cluster with tablespaces outside the data directory (a tar stream on
standard output carries only the main one): :class:`~.errors.TablespacesNotSupported`.
``pg_basebackup`` verifies page checksums when the cluster has them; its failure (a bad
checksum, a lost connection, no replication permission) is
:class:`~.errors.BaseBackupFailed` with its own error line, and no point is written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import threading
import time
from typing import Iterator

from strongroom import DIR, FILE, SYMLINK, BackupContext, Entry, FolderSource, LinkSource, StreamSource, start_child

from . import server as pgserver
from .conninfo import Connection
from .errors import BaseBackupFailed, TablespacesNotSupported

PHYSICAL = "physical.json"
MANIFEST = "backup_manifest"
DATA = "data"
LATE = "late"
FORMAT = 1
#: members up to this size are read whole and handed over as bytes
SMALL = 256 * 1024

_PROBE_SQL = """select json_build_object(
  'system_identifier', (select system_identifier::text from pg_control_system()),
  'timeline', (select timeline_id from pg_control_checkpoint()),
  'wal_level', current_setting('wal_level'), 'archive_mode', current_setting('archive_mode'),
  'checksums', current_setting('data_checksums'), 'version', current_setting('server_version'),
  'version_num', current_setting('server_version_num')::int,
  'tablespaces', (select coalesce(json_agg(spcname order by spcname), '[]'::json) from pg_tablespace
                  where spcname not in ('pg_default', 'pg_global')))"""
_LABEL = re.compile(r"^([A-Z ]+): (.*)$", re.M)


def probe(conn: Connection, bindir: str | None) -> tuple[dict, pgserver.Toolset]:
    """The server's identity and settings, and client tools that can back it up."""
    server = pgserver.Server(conn, pgserver.find_toolsets(bindir)[0])
    info = server.query(_PROBE_SQL)
    tools = pgserver.for_server(info["version_num"], info["version"], conn.describe(), bindir)
    if info["tablespaces"]:
        raise TablespacesNotSupported(server=conn.describe(), names=", ".join(info["tablespaces"]))
    return info, tools


def _entry(name: str, member: tarfile.TarInfo | None = None, kind: str = FILE, size: int = 0) -> Entry:
    base = name.rsplit("/", 1)[-1]
    if member is None:
        now = time.time_ns()
        return Entry(name=base, type=kind, mode=0o700 if kind == DIR else 0o600, mtime_ns=now, ctime_ns=now,
                     size=size)
    mtime = int(member.mtime) * 1_000_000_000
    if member.isdir():
        return Entry(name=base, type=DIR, mode=member.mode & 0o7777, mtime_ns=mtime, ctime_ns=mtime)
    if member.issym():
        return Entry(name=base, type=SYMLINK, mode=0o777, mtime_ns=mtime, ctime_ns=mtime, target=member.linkname)
    return Entry(name=base, type=FILE, mode=member.mode & 0o7777, mtime_ns=mtime, ctime_ns=mtime, size=member.size)


class _MemberStream(io.RawIOBase):
    """One tar member's content, read by the engine; ``done`` is set when it is closed."""

    def __init__(self, fh) -> None:
        super().__init__()
        self._fh = fh
        self.done = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._fh.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.done.set()
        super().close()


class _Order:
    """Places tar members in the point's tree so that it stays pre-order (see the module
    docstring): a member whose folder is no longer open goes under ``late/``."""

    def __init__(self) -> None:
        self.stack = [""]
        self.closed: set[str] = set()

    def place(self, path: str) -> tuple[str, list[str]]:
        """The point path for data member ``path``, and the folders to open before it."""
        target = f"{DATA}/{path}"
        parent = target.rpartition("/")[0]
        if parent not in self.stack:
            target = f"{LATE}/{path}"
            parent = target.rpartition("/")[0]
        opened: list[str] = []
        if parent not in self.stack:
            parts = parent.split("/")
            chain = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            start = next((i for i, p in enumerate(chain) if p not in self.stack), len(chain))
            if start > 0:
                self._unwind(chain[start - 1])
            else:
                self._unwind("")
            for folder in chain[start:]:
                if folder in self.closed:
                    raise BaseBackupFailed(reason=f"pg_basebackup sent {path} after its folder: not supported")
                self.stack.append(folder)
                opened.append(folder)
        else:
            self._unwind(parent)
        return target, opened

    def open_dir(self, path: str) -> None:
        self.stack.append(path)

    def _unwind(self, parent: str) -> None:
        while self.stack[-1] != parent:
            self.closed.add(self.stack.pop())


def parse_label(text: str) -> dict:
    fields = dict(_LABEL.findall(text))
    start = fields.get("START WAL LOCATION", "")
    lsn, _, rest = start.partition(" ")
    return {"start_lsn": lsn, "start_wal_file": rest.strip("()").replace("file ", ""),
            "start_time": fields.get("START TIME", ""), "timeline": int(fields.get("START TIMELINE", "0") or 0),
            "label": fields.get("LABEL", "")}


def physical_entries(ctx: BackupContext, conn: Connection, source: dict) -> Iterator[object]:
    """The entries of a physical point (see the module docstring)."""
    info, tools = probe(conn, source.get("bindir"))
    argv = [tools.path("pg_basebackup"), f"--dbname={conn.conninfo()}", "--no-password", "-D", "-", "-F", "t",
            "-X", "fetch", "--checkpoint=fast", "--label=strongroom"]
    stderr = tempfile.TemporaryFile()
    proc = start_child(argv, env=conn.environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=stderr, bufsize=0)
    started = dt.datetime.now(dt.timezone.utc)
    label: dict = {}
    manifest: dict = {}
    order = _Order()
    yield FolderSource(DATA, _entry(DATA, kind=DIR))
    order.open_dir(DATA)
    try:
        try:
            stream = tarfile.open(fileobj=proc.stdout, mode="r|")
            for member in stream:
                path = member.name.strip("/")
                if path.startswith("./"):
                    path = path[2:]
                if not path or path == ".":
                    continue
                if path == MANIFEST:
                    content = stream.extractfile(member).read()  # type: ignore[union-attr]
                    manifest = json.loads(content)
                    order._unwind("")
                    yield StreamSource(MANIFEST, _entry(MANIFEST, member), lambda c=content: io.BytesIO(c))
                    continue
                target, opened = order.place(path)
                for folder in opened:
                    yield FolderSource(folder, _entry(folder, kind=DIR))
                entry = _entry(target, member)
                if member.isdir():
                    order.open_dir(target)
                    yield FolderSource(target, entry)
                elif member.issym():
                    yield LinkSource(target, entry)
                elif member.isfile():
                    fh = stream.extractfile(member)
                    if member.size <= SMALL:
                        content = fh.read()  # type: ignore[union-attr]
                        if path == "backup_label":
                            label = parse_label(content.decode("utf-8", "replace"))
                        yield StreamSource(target, entry, lambda c=content: io.BytesIO(c))
                    else:
                        reader = _MemberStream(fh)
                        yield StreamSource(target, entry, lambda r=reader: r)
                        while not reader.done.wait(0.5):  # the tar stream goes on once it is read
                            if proc.poll() not in (None, 0):
                                break
        except tarfile.TarError as exc:
            proc.wait()
            raise _failure(stderr, proc, f"unreadable tar stream ({exc})") from None
        if proc.wait() != 0:
            raise _failure(stderr, proc, "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        stderr.close()
    stopped = dt.datetime.now(dt.timezone.utc)
    doc = record(info, tools, label, manifest, started, stopped)
    order._unwind("")
    content = json.dumps(doc, indent=1, sort_keys=True).encode()
    yield StreamSource(PHYSICAL, _entry(PHYSICAL, size=len(content)), lambda: io.BytesIO(content))
    ctx.consistency = "crash-consistent base backup; consistent with the WAL up to stop_lsn"
    if info.get("archive_mode") not in ("on", "always"):
        ctx.warn("archive_mode is off: this base backup restores only with the WAL up to its stop LSN archived"
                 " (strongroom wal setup ITEM)")
    else:
        try:
            pgserver.Server(conn, tools).execute("select pg_switch_wal()")
        except Exception as exc:  # the segment is archived when it fills up anyway
            ctx.warn(f"could not switch WAL segment after the backup ({exc}); its last WAL is archived when"
                     " the segment fills up")


def _failure(stderr, proc, reason: str) -> BaseBackupFailed:
    stderr.seek(0)
    text = stderr.read(64 * 1024).decode("utf-8", "replace")
    line = pgserver.tool_error(text) if text.strip() else reason or f"exit status {proc.returncode}"
    return BaseBackupFailed(reason=line)


def cluster_version(data_dir: str) -> tuple[int, str]:
    """(server_version_num-style number, major) of the cluster in ``data_dir`` (its PG_VERSION)."""
    with open(os.path.join(data_dir, "PG_VERSION")) as fh:
        major = int(fh.read().strip())
    return major * 10000, str(major)


def record(info: dict, tools, label: dict, manifest: dict, started: dt.datetime, stopped: dt.datetime) -> dict:
    """``physical.json``: the cluster's identity and the WAL range a restore needs."""
    ranges = manifest.get("WAL-Ranges") or [{}]
    last = ranges[-1]
    return {
        "format": FORMAT,
        "system_identifier": info["system_identifier"],
        "server_version": info["version"], "version_num": info["version_num"],
        "checksums": info.get("checksums") == "on",
        "timeline": int(last.get("Timeline") or label.get("timeline") or info.get("timeline") or 1),
        "start_lsn": last.get("Start-LSN") or label.get("start_lsn", ""),
        "stop_lsn": last.get("End-LSN", ""),
        "start_wal_file": label.get("start_wal_file", ""),
        "label_start_time": label.get("start_time", ""),
        "started": started.isoformat(timespec="microseconds"),
        "stopped": stopped.isoformat(timespec="microseconds"),
        "tools": {"pg_basebackup": tools.version, "bindir": tools.bindir},
        "wal_method": "fetch",
    }
