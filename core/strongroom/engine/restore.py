"""Restore: write the entries of a recovery point into a target folder.

The restorer first lays out the structure (directories, empty files of the right
size, symlinks, special files), then plans the content by pack: every pack that holds
a needed blob is read once, with one ranged request, by a pool of threads; each blob
is decrypted, checked against its id, and written with ``pwrite`` to every place that
needs it, out of order.  All-zero chunks of sparse files become holes.  A blob that
fails authentication is never written: the files that need it are removed and named
in the error.  Metadata is applied when a file is complete, and directories last,
deepest first.  Every path goes through :class:`TreeWriter`, which refuses to write
outside the target.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import attrs

from ..catalog.entry import BLOCKDEV, CHARDEV, DIR, DISK, FIFO, HARDLINK, SOCKET, SYMLINK, Entry
from ..catalog.tree import TreeReader, normalize_path
from ..errors import IntegrityError
from ..repository.repository import Repository
from .fswrite import TreeWriter
from .progress import Throttled

SPECIAL = (FIFO, CHARDEV, BLOCKDEV, SOCKET)


@attrs.define
class RestoreStats:
    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes_written: int = 0
    packs_read: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class RestoreResult:
    """What a restore did.  ``summary`` (set by workloads that restore to something
    other than a folder, such as a database) replaces the CLI's files line."""

    stats: RestoreStats
    damaged: tuple[str, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    summary: str = ""


@attrs.define
class _FilePlan:
    entry: Entry
    remaining: int
    damaged: str | None = None


class Restorer:
    def __init__(
        self,
        repo: Repository,
        tree: TreeReader,
        target: str,
        *,
        threads: int | None = None,
        restore_owner: bool | None = None,
        progress: Callable[[RestoreStats], None] | None = None,
    ) -> None:
        self.repo = repo
        self.tree = tree
        self.writer = TreeWriter(target, restore_owner=restore_owner)
        self.stats = RestoreStats()
        self._threads = threads or repo.io_threads
        self._report = Throttled(progress)
        self._lock = threading.Lock()
        self._files: dict[str, _FilePlan] = {}

    def selection(self, paths: Iterable[str]) -> list[tuple[str, Entry]]:
        """Entries to restore, pre-order, without duplicates (paths may overlap)."""
        seen: set[str] = set()
        out: list[tuple[str, Entry]] = []
        for path in sorted({normalize_path(p) for p in paths} or {""}):
            for relpath, entry in self.tree.walk(path):
                if relpath not in seen:
                    seen.add(relpath)
                    out.append((relpath, entry))
        return out

    def run(self, paths: Iterable[str] = ()) -> RestoreResult:
        started = time.monotonic()
        entries = self.selection(paths)
        errors: list[str] = []
        links: list[tuple[str, Entry]] = []
        for relpath, entry in entries:
            parent = relpath.rpartition("/")[0]
            if parent:
                os.makedirs(self.writer.path_for(parent), exist_ok=True)
            if entry.type == DIR:
                self.writer.make_dir(relpath, entry)
                self.stats.dirs += 1
            elif entry.type == SYMLINK:
                self.writer.make_symlink(relpath, entry)
                self.stats.links += 1
            elif entry.type in SPECIAL:
                self.writer.make_special(relpath, entry)
            elif entry.type == HARDLINK and entry.target in self._files:
                links.append((relpath, entry))
            else:
                self.writer.create_file(relpath, entry)
                self._files[relpath] = _FilePlan(entry, remaining=len(entry.chunks))
                self.stats.files += 1
        self._write_contents(errors)
        for relpath, plan in self._files.items():
            if plan.remaining == 0 and plan.damaged is None:
                self.writer.finish_file(relpath, plan.entry)
        damaged = sorted(p for p, plan in self._files.items() if plan.damaged is not None)
        for relpath in damaged:
            os.unlink(self.writer.path_for(relpath))
            errors.append(f"{relpath}: {self._files[relpath].damaged}")
        for relpath, entry in links:
            if self._files[entry.target].damaged is None:
                self.writer.make_hardlink(relpath, entry, entry.target)
                self.stats.links += 1
        self.writer.close()
        self.stats.seconds = round(time.monotonic() - started, 3)
        return RestoreResult(
            self.stats, tuple(damaged), tuple(errors), tuple(self.writer.warnings)
        )

    def _raw_length(self, chunk: bytes) -> int:
        index_entry = self.repo.index.lookup(chunk)
        return 0 if index_entry is None else index_entry.raw_length

    def _write_contents(self, errors: list[str]) -> None:
        by_pack: dict[str, dict[bytes, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
        entries_by_blob = {}
        for relpath, plan in self._files.items():
            for offset, _, chunk in plan.entry.spans(self._raw_length):
                if not chunk:  # a hole: left unwritten in the sparse file
                    plan.remaining -= 1
                    continue
                index_entry = self.repo.index.lookup(chunk)
                if index_entry is None:
                    plan.damaged = plan.damaged or f"chunk {chunk.hex()[:16]} is missing from the vault"
                    break
                entries_by_blob[chunk] = index_entry
                by_pack[index_entry.pack_id][chunk].append((relpath, offset))

        def restore_pack(pack_id: str) -> None:
            wanted = by_pack[pack_id]
            needed = [entries_by_blob[b] for b in wanted]
            for index_entry, data in self.repo.read_pack_blobs(pack_id, needed):
                for relpath, offset in wanted[index_entry.blob_id]:
                    plan = self._files[relpath]
                    if isinstance(data, IntegrityError):
                        with self._lock:
                            plan.damaged = plan.damaged or "{what}: {reason}".format(**data.fields)
                        continue
                    if plan.damaged is None:
                        sparse = plan.entry.sparse or plan.entry.type == DISK
                        self.writer.write(relpath, offset, data, sparse=sparse)
                    with self._lock:
                        plan.remaining -= 1
                        self.stats.bytes_written += len(data)
            with self._lock:
                self.stats.packs_read += 1
            self._report(self.stats)

        with ThreadPoolExecutor(self._threads, thread_name_prefix="restore") as pool:
            for future in [pool.submit(restore_pack, p) for p in sorted(by_pack)]:
                future.result()
