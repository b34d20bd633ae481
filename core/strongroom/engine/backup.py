"""The backup pipeline: source entries -> chunks -> blobs -> packs -> tree nodes.

The workload yields source entries in pre-order (a directory before its contents, a
directory's whole subtree before its next sibling).  The engine keeps a stack of open
directories; when the walk leaves a directory, the directory is *closed* and queued.
File contents are read, chunked, hashed, compressed and encrypted in a pool of reader
threads while the walk goes on (each thread takes a file from ``open`` to sealed blobs:
no hand-off per chunk, and the heavy steps release the GIL, so every core works); the
:class:`~strongroom.repository.blobwriter.BlobWriter` packs the blobs and uploads full
packs in the background.  Small files go to a pool of their own (so that they never
wait behind a folder's large files) in batches (one task for up to :data:`BATCH_FILES`
files), so a tree of many small files costs no thread hand-off per file: the task reads them one after the other, then adds all their blobs with one call of
the writer (:meth:`~strongroom.repository.blobwriter.BlobWriter.add_many`: one search of
the index for the batch).  When the walk is done the reader threads end, and their
buffers go, before the last pack is written and the point committed.  A closed
directory becomes a tree node as soon as all its children are done (:mod:`.slots`
holds what it waits for), deepest first, so memory holds only directories still in
progress.

A file whose size, mtime, ctime, inode and device equal those of the same path in the
parent point reuses the parent's chunk list without being opened (and the parent's
entry itself when all its metadata is the same).  A directory whose entries all equal
the parent point's reuses the parent's tree node without encoding it again.

The holes of a sparse file (:attr:`Entry.sparse`, fewer blocks than bytes) are not read
but filled in as zero bytes (:mod:`.holeread`): the same bytes, so the same chunks.

A DISK entry (``entry.chunk_size`` > 0) is read in a reader thread too, in fixed-size
chunks, by :class:`~.diskread.DiskReader` (holes for zeros, unchanged chunks reused).

Progress: ``progress(stats)`` is called (throttled, from the walk and from the reader
threads after each chunk, so one large stream moves it too) with the live counters:
``bytes_done`` of ``bytes_estimate`` (the walk's ``bytes_total``, or the workload's
estimate through :meth:`workload_progress`), ``current`` (the path being read); and
once more with the final counters when the walk is done.

A folder of the parent point whose tree node cannot be read (damaged, missing) is no
reason to fail: the folder (and everything below it) is backed up as if the parent
point did not have it - every file read again - with one warning on the point per
damaged folder.
"""

from __future__ import annotations

import collections
import itertools
import operator
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import attrs

from ..allocator import limit_retained_memory
from ..catalog.entry import DIR, DISK, FILE, HARDLINK, STREAM, SYMLINK, Entry, with_content
from ..catalog.tree import TreeReader, encode_row, encode_tree, encode_tree_rows, row_dict
from ..errors import BackupError, DamagedFolder
from ..processes import cpus
from ..repository.chunker import Chunker, ChunkerParams
from ..repository.envelope import KIND_DATA, KIND_TREE
from ..repository.repository import Repository
from ..results import BackupStats
from ..sources import FileRun, FileSource, SourceEntry
from .diskread import DiskReader
from .gcquiet import quiet_gc
from .holeread import HoleSkippingReader
from .parentfolders import ParentFolders
from .progress import Throttled
from .readslots import ReadSlots
from .sealprocs import SmallFileSealers, can_start
from .slots import Batch, HardLink, InBatch, OpenDir, Reused, is_ready, resolve
from .smallread import O_NOATIME, read_small_file


@attrs.frozen
class BackupResult:
    root: bytes
    stats: BackupStats
    warnings: tuple[str, ...]


class _Prepended:
    """A binary stream that first returns ``head``, then the rest of ``tail``."""

    def __init__(self, head: bytes, tail) -> None:
        self._head = memoryview(head)
        self._tail = tail

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._tail.readinto(buffer)


#: At most this many small files are read by one task of the reader pool ...
BATCH_FILES = 128
#: ... and at most about this many bytes.
BATCH_BYTES = 4 * 1024 * 1024
#: ... or once the folders closed while it was being filled hold this many entries: a
#: closed folder waits for its files' batch, with the rows of its unchanged files, and
#: after a day of changes (a file or two changed in a folder of a hundred) a batch of 128
#: files spanned some 60 folders (about 13 MiB of the peak of the 2 GiB corpus's backup).
#: Counted in entries, not folders, so that folders of a file or two still make full batches.
BATCH_ROWS = 1024
#: A batch whose files average fewer bytes than this is read by one thread at a time.
#: Its work is mostly Python (holding the GIL) between short calls that release it (open,
#: read, close, compress), and two threads handing the GIL to each other at every call
#: were slower than one: 100,000 files of 64-2,048 bytes took 5.7-6.0 s with two, 4.4-4.7 s
#: with one; the 2 GiB corpus's 48,000 text files of 13 KiB on average gain from two.
TINY_FILE_BYTES = 4096
#: From this batch of small files on, batches go to worker processes (:mod:`.sealprocs`)
#: when the machine has more than one CPU: a backup of a few hundred files never starts them.
PROCESSES_FROM_BATCH = 4


#: When more than this many closed folders wait for the first of them to be done, those
#: behind it that are ready become tree nodes (checked every SWEEP_EVERY entries of the
#: walk): after a day of changes, every unchanged folder walked while a large file
#: changed before them was read waited with its parent's rows (about 20 MiB of the
#: peak for the 2 GiB corpus).
SWEEP_FROM = 16
SWEEP_EVERY = 64


#: Every field of an entry but its chunks: what a file unchanged since the parent
#: point must have the same to reuse the parent's entry as it is.
_ALL_BUT_CHUNKS = operator.attrgetter(*(f.name for f in attrs.fields(Entry) if f.name != "chunks"))
#: Those of them a stored row and an entry hold alike (the others, ``xattrs`` and
#: ``subtree``, are stored in other forms: a row with either is compared as a dict).
_PLAIN_NAMES = tuple(f.name for f in attrs.fields(Entry) if f.name not in ("chunks", "xattrs", "subtree"))
_PLAIN_FIELDS = operator.attrgetter(*_PLAIN_NAMES)
#: The fields that tell a file unchanged since the parent point (then read again if not).
_UNCHANGED_KEY = operator.attrgetter("size", "mtime_ns", "ctime_ns", "ino", "dev")
#: Where each field is in the ``fields`` of a :class:`~strongroom.sources.FileRun`'s file.
_AT = {field.name: i for i, field in enumerate(attrs.fields(Entry))}
_SIZE, _XATTRS, _CHUNKS, _SUBTREE = _AT["size"], _AT["xattrs"], _AT["chunks"], _AT["subtree"]
#: What ``_PLAIN_FIELDS`` gives of an entry, of its fields.
_PLAIN_FIELD_VALUES = operator.itemgetter(*(_AT[name] for name in _PLAIN_NAMES))


def _first_path(run: FileRun) -> str:
    return run.files[0][0] if run.files else run.folder


def _same_but_chunks(row: Any, entry: Entry) -> bool:
    """Whether the stored ``row`` (a typed row, :func:`~strongroom.catalog.tree.decode_tree_rows`)
    is ``entry`` (a file as scanned, no chunks) but for its chunks: every field compared
    at once, as a tuple (a row with extended attributes, stored in base64, or a subtree
    is compared as the dict :meth:`Entry.to_dict` gives)."""
    if entry.xattrs or row.xattrs or row.subtree is not None:
        without = row_dict(row)
        without.pop("chunks", None)
        return without == entry.to_dict()
    return _PLAIN_FIELDS(row) == _PLAIN_FIELDS(entry)


def _node_of(slots: list) -> bytes:
    """The tree node of a folder's slots: a file unchanged since the parent point is
    written from its stored row, no entry made of it; any other slot from its entry.
    Rows and entries are written in one call (:func:`~strongroom.catalog.tree.encode_tree_rows`),
    or where that cannot write them, each row by :func:`~strongroom.catalog.tree.encode_row`."""
    entries: list[Entry] = []
    rows: list = []
    for slot in slots:
        if type(slot) is Reused:
            rows.append(slot.row)
            continue
        entry = resolve(slot)
        if entry is not None:
            entries.append(entry)
    if rows:
        node = encode_tree_rows(entries, rows)
        if node is not None:
            return node
    return encode_tree(entries, [(row.name, encode_row(row)) for row in rows])


class BackupEngine:
    def __init__(
        self,
        repo: Repository,
        chunker_params: ChunkerParams,
        *,
        parent: TreeReader | None = None,
        read_threads: int | None = None,
        max_queued: int = 32,
        max_closed_dirs: int = 2048,
        progress: Callable[[BackupStats], None] | None = None,
        compression_level: int = 3,
        processes: int | None = None,
    ) -> None:
        """``processes``: how many worker processes may seal batches of small files
        (:mod:`.sealprocs`); by default one per CPU when there are more than one, 0 for none."""
        limit_retained_memory()
        self.repo = repo
        self.parent = parent
        self.stats = BackupStats()
        self.warnings: list[str] = []
        self._params = chunker_params
        self._local = threading.local()
        # one thread per core: each reads, cuts, hashes, compresses and encrypts, and
        # all of it but the read releases the GIL (a third thread on two cores measured
        # no faster and cost its buffers, about 25 MB)
        threads = read_threads or max(2, os.cpu_count() or 2)
        self._read_pool = ThreadPoolExecutor(threads, thread_name_prefix="read")
        # one large file fewer at once while the walk compares files with a parent point
        self._read_slots = ReadSlots(threads)
        # Batches of small files have threads of their own: behind the large files of a
        # folder (an image being read), they would hold back every folder walked after it
        # with their rows and entries (35-45 MiB of the peak after a day of changes of the
        # 2 GiB corpus).  Their threads read no large file: no read window, small buffers.
        # With worker processes, a thread here per worker waits for its answer, and one more
        # puts an answer's blobs in the packs meanwhile (a fourth thread for two workers
        # measured no faster); at most ``threads`` batches are read in this process at once
        # (_local_batches), as before, while the workers start or if they are gone.
        self._processes = (cpus() if cpus() > 1 else 0) if processes is None else processes
        self._sealers: SmallFileSealers | None = None
        self._batches = 0
        small_threads = max(threads, self._processes + 1) if self._processes >= 2 else threads
        self._small_pool = ThreadPoolExecutor(small_threads, thread_name_prefix="read-small")
        self._local_batches = threading.BoundedSemaphore(threads)
        self._tiny_batches = threading.Lock()  # held while a batch of tiny files is read
        self._queue_room = threading.BoundedSemaphore(max_queued)
        self._end_numbers = itertools.count(1)
        self._reads_ended = 0  # the number of the last task of the reader pools to end (see _finalize_ready)
        self._reads_seen = -1  # ... as last seen by the walk, when ...
        self._waited_for: OpenDir | None = None  # ... this first closed folder was not ready
        self._batch = Batch()
        self._max_closed = max_closed_dirs
        self._sweeps = 0
        self._report = Throttled(progress)
        self._lock = threading.Lock()
        self._parent_lock = threading.Lock()
        self._parents = ParentFolders(parent, repo.index, self._parent_damaged) if parent is not None else None
        self._parent_damage: set[str] = set()  # folders of the parent point that cannot be read
        self._compression_level = compression_level

    # --- the walk ------------------------------------------------------------------------

    def run(self, entries: Iterable[SourceEntry]) -> BackupResult:
        started = time.monotonic()
        writer = self.repo.writer(compression_level=self._compression_level)
        self._writer = writer
        self._disks = DiskReader(writer, self.repo, self.stats, self._lock, self._warn, self._progress_now)
        failed = True
        try:
            with quiet_gc():  # millions of objects: collect less often (gcquiet.py)
                root = self._walk(entries)
            # Every read is done: the reader threads end, and with them their buffers (read
            # window and frame buffer: about 12 MiB a thread), before the last pack is
            # written and the point committed.
            self._read_pool.shutdown(wait=True)
            self._small_pool.shutdown(wait=True)
            self._stop_sealers()
            writer.flush()
            failed = False
            self.stats.current = ""
            self._report.final(self.stats)
        finally:
            # On failure, reads still queued are dropped rather than run to the end.
            self._read_pool.shutdown(wait=True, cancel_futures=failed)
            self._small_pool.shutdown(wait=True, cancel_futures=failed)
            self._stop_sealers()
            writer.close()
        self.stats.new_blobs = writer.new_blobs
        self.stats.new_bytes = writer.new_raw_bytes
        self.stats.stored_bytes = writer.stored_bytes
        self.stats.packs = writer.packs_written
        self.stats.seconds = round(time.monotonic() - started, 3)
        return BackupResult(root, self.stats, tuple(self.warnings))

    def _walk(self, entries: Iterable[SourceEntry]) -> bytes:
        self._read_slots.walking(self._parents is not None)
        try:
            return self._walk_entries(entries)
        finally:
            self._read_slots.walking(False)

    def _walk_entries(self, entries: Iterable[SourceEntry]) -> bytes:
        root = OpenDir("", None)
        stack = [root]
        closed: collections.deque[OpenDir] = collections.deque()
        first_names: dict[str, object] = {}
        # what runs for every entry, read once (a tree of many small files has a million)
        finalize_ready, file_slot, report, stats = self._finalize_ready, self._file_slot, self._report, self.stats
        walk_run = self._walk_run
        max_closed = self._max_closed
        for src in entries:
            if type(src) is FileRun:  # plain files of one folder (most files of a tree backed up before)
                path, entry, parent = None, None, src.folder
            else:
                path, entry = src.path, src.entry
                parent = path.rpartition("/")[0]
            while stack[-1].path != parent:
                if len(stack) == 1:
                    raise BackupError(message=f"source entries out of order at {path or _first_path(src)!r}")
                done = stack.pop()
                self._close(done)
                closed.append(done)
                batch = self._batch
                if batch.sources:
                    batch.rows += len(done.slots)
                    if batch.rows >= BATCH_ROWS:
                        self._submit_batch()
            if closed:
                finalize_ready(closed, block=len(closed) > max_closed)
            if entry is None:
                walk_run(src, stack[-1])
                report(stats)
                continue
            if entry.type == DIR:
                # Listing a directory updates its atime: keeping it would make every
                # directory node new on every backup and defeat tree deduplication.
                sub = OpenDir(path, attrs.evolve(entry, atime_ns=0))
                stack[-1].slots.append(sub)
                stack.append(sub)
                self.stats.dirs += 1
            elif entry.type in (FILE, STREAM, DISK):
                slot = file_slot(src)
                stack[-1].slots.append(slot)
                if entry.nlink > 1:
                    first_names[path] = slot
                stats.files += 1
                if entry.type != STREAM:  # a stream's size is known once it is read
                    stats.bytes_total += entry.size
            elif entry.type == HARDLINK:
                first = first_names.get(entry.target)
                stack[-1].slots.append(HardLink(entry, first) if first is not None else self._file_slot(src))
                self.stats.files += 1
            else:
                if entry.type == SYMLINK:  # reading the link updates its atime: don't keep it
                    entry = attrs.evolve(entry, atime_ns=0)
                stack[-1].slots.append(entry)
                self.stats.others += 1
            report(stats)
        self._read_slots.walking(False)  # the scan has ended: what is left is mostly reading
        while len(stack) > 1:
            done = stack.pop()
            self._close(done)
            closed.append(done)
        self._close(root)
        closed.append(root)
        self._finalize_ready(closed, block=True)
        return self._root_id

    # --- files ---------------------------------------------------------------------------

    def _walk_run(self, run: FileRun, directory: OpenDir) -> None:
        """The slots of the files of ``run`` in ``directory`` (its folder, open): a file
        equal to the parent point's row in every field (the first case of
        :meth:`_unchanged`), compared by its fields as they came, is a :class:`Reused` of
        the row, and no entry is made of it; any other file is the slot
        :meth:`_file_slot` gives its :class:`FileSource`."""
        slots, stats = directory.slots, self.stats
        stored = None
        if self._parents is not None:
            folder = self._parents.folder(run.folder)
            stored, missing = folder.stored, folder.missing
        reused = reused_bytes = total_bytes = 0
        for path, abspath, fields in run.files:
            size = fields[_SIZE]
            total_bytes += size
            if stored is not None:
                row = stored.get(fields[0])
                if (row is not None and row.type == FILE and row.nlink == 1 and not fields[_XATTRS] and not row.xattrs
                        and row.subtree is None and _PLAIN_FIELDS(row) == _PLAIN_FIELD_VALUES(fields)
                        and (not missing or missing.isdisjoint(row.chunks))):
                    slots.append(Reused(None, row))
                    reused += 1
                    reused_bytes += size
                    continue
            src = FileSource(path, abspath, Entry(*fields))
            if src.entry.type != FILE or src.entry.nlink != 1 or fields[_CHUNKS] or fields[_SUBTREE] is not None:
                raise BackupError(message=f"a run of files holds {path!r}, which is not a plain file of one link")
            if path.rpartition("/")[::2] != (run.folder, src.entry.name):
                raise BackupError(message=f"a run of files of folder {run.folder!r} holds {path!r}, named {src.entry.name!r}")
            slots.append(self._file_slot(src))
        stats.files += len(run.files)
        stats.bytes_total += total_bytes
        if reused:
            with self._lock:
                stats.files_unchanged += reused
                stats.bytes_skipped += reused_bytes

    def _unchanged(self, path: str, entry: Entry) -> Entry | Reused | None:
        """What stands for a file whose size, mtime, ctime, inode and device are the
        parent point's (its chunks all still in the vault), or None: the file is read.
        A file equal to the parent's entry in every field is compared with the entry as
        stored, and decoded only if its folder's node must be written anew."""
        if self._parents is None:
            return None
        directory, _, name = path.rpartition("/")
        folder = self._parents.folder(directory)
        if folder.stored is not None:
            row = folder.stored.get(name)
            if row is None or (folder.missing and not folder.missing.isdisjoint(row.chunks)):
                return None
            # most files: every field the same (so the type, size, times, inode and device)
            if (row.type == FILE and not entry.xattrs and not row.xattrs and row.subtree is None
                    and _PLAIN_FIELDS(row) == _PLAIN_FIELDS(entry)):
                return Reused(entry, row)
            if row.type not in (FILE, HARDLINK) or _UNCHANGED_KEY(row) != _UNCHANGED_KEY(entry):
                return None
            if row.type == FILE and _same_but_chunks(row, entry):
                return Reused(entry, row)
        old = folder.entries().get(name)
        if (
            old is None
            or old.type not in (FILE, HARDLINK)
            or (old.size, old.mtime_ns, old.ctime_ns, old.ino, old.dev)
            != (entry.size, entry.mtime_ns, entry.ctime_ns, entry.ino, entry.dev)
            or (folder.missing and not folder.missing.isdisjoint(c.hex() for c in old.chunks))
        ):
            return None
        if old.type == FILE and _ALL_BUT_CHUNKS(old) == _ALL_BUT_CHUNKS(entry):
            return old
        return attrs.evolve(entry, chunks=old.chunks)

    def _file_slot(self, src: SourceEntry) -> object:
        entry = src.entry
        # a workload's stream (``open()``) is always read; a file of this machine (most
        # entries of most backups) has none, told without a failed attribute look-up
        if entry.type == FILE and (type(src) is FileSource or not callable(getattr(src, "open", None))):
            reused = self._unchanged(src.path, entry)
            if reused is not None:
                with self._lock:
                    self.stats.files_unchanged += 1
                    self.stats.bytes_skipped += entry.size
                return reused
            if 0 <= entry.size < self._params.min_size:
                batch = self._batch
                batch.sources.append(src)
                batch.bytes += entry.size
                slot = InBatch(batch, len(batch.sources) - 1)
                if len(batch.sources) >= BATCH_FILES or batch.bytes >= BATCH_BYTES:
                    self._submit_batch()
                return slot
        return self._submit(self._read_file, src)

    def _submit(self, task: Callable, arg: object, pool: ThreadPoolExecutor | None = None, *,
                then: Callable[[Future], None] | None = None) -> Future:
        """``task(arg)`` run by a reader pool; ``then(future)`` is called when it ends,
        before the walk is told (:meth:`_finalize_ready` asks again whether its first
        closed folder is ready)."""
        if not self._queue_room.acquire(blocking=False):
            with self._read_slots.walk_waits():
                self._queue_room.acquire()  # the walk waits while enough work is queued
        future = (pool or self._read_pool).submit(task, arg)
        if then is None:
            future.add_done_callback(self._read_ended)
        else:
            future.add_done_callback(lambda f: (then(f), self._read_ended(f)))
        return future

    def _read_ended(self, _future: Future) -> None:
        self._queue_room.release()
        # A number no other end has (taken in one step): whichever of two tasks ending at
        # once stores last, it is not the number the walk last saw.
        self._reads_ended = next(self._end_numbers)

    def _submit_batch(self) -> None:
        batch = self._batch
        if batch.sources:
            self._batch = Batch()
            self._batches += 1
            if self._batches == PROCESSES_FROM_BATCH and self._processes >= 2 and can_start():
                self._sealers = SmallFileSealers(
                    self.repo.envelope, self.repo.master.id_key.value,
                    level=self._compression_level, workers=self._processes)
                self._sealers.start()
            batch.future = self._submit(self._read_batch, batch.sources, self._small_pool, then=batch.finished)
            if batch.done:  # it ended before this assignment: the batch must not hold its future
                batch.future = None

    def _stop_sealers(self) -> None:
        if self._sealers is not None:
            self._sealers.close()

    def _read_batch(self, sources: list[SourceEntry]) -> list[Entry | None]:
        """A batch of small files sealed by a worker process (:meth:`_add_sealed`) once
        they are ready, else read here (:meth:`_read_small_files`): by at most as many
        threads at once as read large files, and a batch of tiny files
        (:data:`TINY_FILE_BYTES`) while no other thread reads one."""
        sealers = self._sealers
        if sealers is not None and sealers.ready:
            self.stats.current = sources[-1].path
            sealed = sealers.seal([(src.abspath, src.entry.size) for src in sources])  # type: ignore[attr-defined]
            if sealed is not None:
                return self._add_sealed(sources, sealed, sealers.key_id)
        with self._local_batches:
            if sum(src.entry.size for src in sources) >= TINY_FILE_BYTES * len(sources):
                return self._read_small_files(sources)
            with self._tiny_batches:
                return self._read_small_files(sources)

    def _add_sealed(self, sources: list[SourceEntry], sealed: list, key_id: bytes) -> list[Entry | None]:
        """The entries of a batch a worker sealed (:func:`.sealworker.seal_files`): its new
        blobs added to the packs with one call of the writer; a file the worker could not
        read as listed goes the general way, which warns as it does."""
        results: list[Entry | None] = [None] * len(sources)
        read: list[tuple[int, int]] = []
        for i, item in enumerate(sealed):
            if item is None:
                results[i] = self._read_file(sources[i])
            else:
                read.append((i, item[1]))
        ids = self._writer.add_sealed_many(KIND_DATA, key_id, [item for item in sealed if item is not None and item[1]])
        return self._small_results(sources, results, read, ids)

    def _read_small_files(self, sources: list[SourceEntry]) -> list[Entry | None]:
        """Small files (each below the minimum chunk size, one chunk): each read with one
        ``os.read``, then all their blobs added with one call of the writer (one search
        of the index, the counters and the progress once); a file that cannot be read so
        (it grew, or cannot be opened) goes the general way, which warns as it does."""
        results: list[Entry | None] = [None] * len(sources)
        read: list[tuple[int, bytes]] = []
        for i, src in enumerate(sources):
            self.stats.current = src.path
            data = self._slurp(src)
            if data is None:
                results[i] = self._read_file(src)
            else:
                read.append((i, data))
        ids = self._writer.add_many(KIND_DATA, [data for _, data in read if data])
        return self._small_results(sources, results, [(i, len(data)) for i, data in read], ids)

    def _small_results(
        self, sources: list[SourceEntry], results: list[Entry | None], read: list[tuple[int, int]], ids: list[bytes]
    ) -> list[Entry | None]:
        """``results`` with the entries of the files ``read`` (index in ``sources``,
        bytes read), whose non-empty contents are the blobs ``ids`` in order; the counters
        and the progress updated once."""
        blobs = iter(ids)
        total = 0
        for i, length in read:
            entry = sources[i].entry
            total += length
            if length != entry.size:
                self._warn(f"{sources[i].path}: changed while being backed up (size {entry.size} -> {length})")
            results[i] = with_content(entry, (next(blobs),) if length else (), length)
        with self._lock:
            self.stats.bytes_read += total
            self.stats.files_read += len(read)
        self._report(self.stats)
        return results

    def _chunker(self) -> Chunker:
        chunker = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = Chunker(self._params)
        return chunker

    def _parent_entry(self, path: str) -> Entry | None:
        """The parent point's entry at ``path`` (disk readers call this from worker
        threads); a folder of the parent that cannot be read is warned about once."""
        if self._parents is None:
            return None
        directory, _, name = path.rpartition("/")
        return self._parents.folder(directory).entries().get(name)

    def _parent_damaged(self, exc: DamagedFolder) -> None:
        path = str(exc.fields["path"])
        with self._parent_lock:
            if path in self._parent_damage:
                return
            self._parent_damage.add(path)
        self._warn(f"{path}: this folder of the parent point is damaged ({exc.fields['reason']});"
                   " it was backed up without the parent (every file read again)")

    @staticmethod
    def _open(src: SourceEntry):
        opener = getattr(src, "open", None)
        if callable(opener):
            return opener()
        flags = os.O_RDONLY | os.O_NOFOLLOW
        try:
            fd = os.open(src.abspath, flags | O_NOATIME)  # type: ignore[attr-defined]
        except PermissionError:  # O_NOATIME needs ownership of the file
            if not O_NOATIME:
                raise
            fd = os.open(src.abspath, flags)  # type: ignore[attr-defined]
        return os.fdopen(fd, "rb", buffering=0)

    def _read_file(self, src: SourceEntry) -> Entry | None:
        """Chunk one entry's content.  A file that cannot be read is left out with a
        warning; a workload's own stream (``open()``) that fails fails the backup."""
        entry = src.entry
        if entry.type == DISK and entry.chunk_size:
            with self._read_slots.reading():
                return self._disks.read(src, self._parent_entry(src.path))
        own_stream = callable(getattr(src, "open", None))
        self.stats.current = src.path
        if not own_stream and entry.type == FILE and 0 <= entry.size < self._params.min_size:
            small = self._read_small(src)
            if small is not None:
                return small
        with self._read_slots.reading():
            return self._read_large(src, own_stream)

    def _read_large(self, src: SourceEntry, own_stream: bool) -> Entry | None:
        """The entry of a file read through a file object (at least the minimum chunk size;
        or smaller, but grown past its listed size or not opened in one call) or of a
        workload's stream, read in a read slot (:mod:`.readslots`)."""
        entry = src.entry
        chunks: list[bytes] = []
        total = 0
        try:
            fh = self._open(src)
            with fh:
                # a sparse file of this machine, cut into chunks: its holes are not read (holeread.py)
                sparse = entry.sparse and not own_stream and entry.size >= self._params.min_size
                stream = HoleSkippingReader(fh.fileno()) if sparse else fh
                for data in self._pieces(stream, entry.size if entry.type in (FILE, HARDLINK) else -1):
                    chunks.append(self._writer.add(KIND_DATA, data))
                    total += len(data)
                    with self._lock:
                        self.stats.bytes_read += len(data)
                    self._report(self.stats)  # a large file or stream moves the progress too
        except OSError as exc:
            if own_stream:
                raise
            self._warn(f"{src.path}: not backed up ({exc.strerror or exc})")
            return None
        with self._lock:
            self.stats.files_read += 1
            if entry.type == STREAM:
                self.stats.bytes_total += total
        if total != entry.size and entry.type in (FILE, HARDLINK):
            self._warn(f"{src.path}: changed while being backed up (size {entry.size} -> {total})")
        return with_content(entry, tuple(chunks), total)

    def _read_small(self, src: SourceEntry) -> Entry | None:
        """A file smaller than the minimum chunk size, read with one ``os.read`` and no
        file object (the common case of a tree of many small files), or ``None`` (the
        file grew past its listed size, or cannot be opened): then the general path
        reads it, and warns as it does."""
        entry = src.entry
        data = self._slurp(src)
        if data is None:
            return None
        chunks = (self._writer.add(KIND_DATA, data),) if data else ()
        with self._lock:
            self.stats.bytes_read += len(data)
            self.stats.files_read += 1
        self._report(self.stats)
        if len(data) != entry.size:
            self._warn(f"{src.path}: changed while being backed up (size {entry.size} -> {len(data)})")
        return with_content(entry, chunks, len(data))

    @staticmethod
    def _slurp(src: SourceEntry) -> bytes | None:
        """The content of a file below the minimum chunk size, read with one ``os.read``
        and no file object, or ``None``: it grew past its listed size, or cannot be opened."""
        return read_small_file(src.abspath, src.entry.size)  # type: ignore[attr-defined]

    def _pieces(self, fh, size: int) -> Iterator[bytes | memoryview]:
        """The chunks of an open file.  A file smaller than the minimum chunk size is
        one chunk read with one call, without setting up the content-defined cutter."""
        if 0 <= size < self._params.min_size:
            head = fh.read(size + 1)
            if len(head) <= size:
                if head:
                    yield head
                return
            fh = _Prepended(head, fh)  # the file grew since it was listed
        # Each view is valid until the next one is cut: the writer seals it at once.
        yield from self._chunker().chunks(fh)

    def _warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)

    def _progress_now(self) -> None:
        self._report(self.stats)

    def workload_progress(self, *, total: int | None = None, bytes: int | None = None) -> None:
        """What a workload reports of itself (:meth:`strongroom.BackupContext.progress`):
        ``total``, its estimate of the bytes of the whole backup; ``bytes``, the bytes it
        has read on its own so far (not through the entries the engine reads)."""
        with self._lock:
            if total is not None:
                self.stats.bytes_expected = max(0, int(total))
            if bytes is not None:
                self.stats.bytes_workload = max(0, int(bytes))
        self._report(self.stats)

    # --- directories ---------------------------------------------------------------------

    def _finalize_ready(self, closed: collections.deque[OpenDir], *, block: bool) -> None:
        if block:
            self._submit_batch()
            with self._read_slots.walk_waits():
                while closed:
                    self._finalize(closed.popleft())
        # The first closed folder not ready (a large file of it still being read) is asked
        # again only once a read has ended since: not once per entry the walk scans.
        if closed and (closed[0] is not self._waited_for or self._reads_ended != self._reads_seen):
            self._reads_seen = self._reads_ended
            while closed and is_ready(closed[0]):
                self._finalize(closed.popleft())
            self._waited_for = closed[0] if closed else None
        if len(closed) > SWEEP_FROM:
            self._sweeps += 1
            if self._sweeps % SWEEP_EVERY == 0:
                self._finalize_behind(closed)

    def _finalize_behind(self, closed: collections.deque[OpenDir]) -> None:
        """Make tree nodes of the closed folders that are ready behind the first, which
        is not (a folder whose large files are still being read), keeping the others in
        their order.  A folder's subfolders come before it and count as done once they
        are tree nodes (:func:`~.slots.is_done`), so none is written before them."""
        waiting: list[OpenDir] = []
        for directory in closed:
            if is_ready(directory):
                self._finalize(directory)
            else:
                waiting.append(directory)
        closed.clear()
        closed.extend(waiting)

    def _close(self, directory: OpenDir) -> None:
        """Keep with a folder the walk has left the parent point's node of it, read while
        the walk is still there: a closed folder may wait for its small files' batch
        while the walk goes on through dozens of folders, and the node would be read and
        decoded again once the folder's entries are all known."""
        if self._parents is not None:
            directory.parent_node = self._parents.compared(directory.path)

    def _parent_tree_if_same(self, directory: OpenDir) -> bytes | None:
        """The parent point's node of this directory if it lists what its slots hold:
        compared with the node as stored, each file found unchanged by its row, each
        other entry by its stored form (:meth:`Entry.to_dict`)."""
        tree_id, stored = directory.parent_node
        directory.parent_node = (None, None)
        if tree_id is None or stored is None or len(stored) != len(directory.slots) or tree_id not in self.repo.index:
            return None
        for slot in directory.slots:
            if type(slot) is Reused:
                row = stored.get(slot.row.name)
                if row is not slot.row and row != slot.row:  # most often the very row (no field compared)
                    return None
                continue
            entry = resolve(slot)
            if entry is None:
                return None
            row = stored.get(entry.name)
            if row is None or row_dict(row) != entry.to_dict():
                return None
        return tree_id

    def _finalize(self, directory: OpenDir) -> None:
        tree_id = self._parent_tree_if_same(directory)
        if tree_id is None:
            tree_id = self._writer.add(KIND_TREE, _node_of(directory.slots))
            if self.parent is not None and self.parent.is_damaged(tree_id):
                self._warn(f"{directory.path or '/'}: this folder is unchanged, and the vault's copy of its tree"
                           " node is damaged: run 'strongroom vault repair' so that the next backup stores it again")
        directory.slots = []
        if directory.entry is None:
            self._root_id = tree_id
        else:
            directory.result = attrs.evolve(directory.entry, subtree=tree_id)
