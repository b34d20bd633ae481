"""Restore: write the entries of a recovery point into a target folder.

The restorer walks the tree twice, in pre-order.  The first walk creates the folders.
The second lays out the rest as it goes (symlinks, special files, and for each file the
way cleared to create it) and hands the files on in batches of a few thousand: each
batch is planned by pack and its content written by a pool of threads while the walk
goes on, so that reading the tree, laying it out and writing the content overlap, and
only a couple of batches of entries are held at once.

Within a batch, every pack that holds a needed blob is read once, in pack order (with
one ranged request from a remote store, in pieces of about a MiB from a local one) by one
thread; each blob is decrypted into a buffer the thread reuses, checked against its id,
and written with ``pwrite`` to every place that needs it.  A file whose content is all
in one pack (nearly every small file) is created, written, given its metadata and
closed by that pack's thread: one open and one close.  A file spread over several packs
is created beforehand and written through the writer's cache of open files; the thread
that writes its last blob sets its metadata.  A pack whose needed blobs all go to such
files of that pack alone is written the same way by a worker process instead
(:mod:`.restoreprocs`, from the first batch with :data:`PROCESSES_FROM_PACKS` of them
on, for a local store): a feeding thread (one per worker, apart from the pool, so that
these packs do not wait behind large files) hands the pack over, and the worker reads
it from the pack's file (the thread reads it and sends the blobs only through a store
decorator that changes reads), so that no interpreter's lock is shared for the many
short system calls small files cost.  Files
are created at their full length only when the writes do not reach it (all-zero chunks
of sparse files become holes).

A blob that fails authentication is never written: the files that need it are removed
and named in the result's errors.  A folder whose tree node cannot be read is left out
with everything below it (it is not created) and named there too; every other file and
folder is restored.  Hardlinks are made, and directory metadata set (deepest first),
once all content is written.  Every path goes through :class:`TreeWriter`, which
refuses to write outside the target and never removes a folder that is not empty.

The target's own refusals are the :class:`~.targetlog.TargetLog`'s: a path kept because
something is in the way (nothing below a kept folder is written), a write the file
system refuses (the file is removed), and a full or read-only file system, which stops
the restore at once (the files being written are removed).  :meth:`Restorer.run` raises
one :class:`~strongroom.errors.TargetError` for them once it has written everything it
could; a restore that met none returns its result.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import attrs

from ..catalog.entry import BLOCKDEV, CHARDEV, DIR, DISK, FIFO, HARDLINK, SOCKET, SYMLINK, Entry
from ..catalog.tree import TreeReader, normalize_path
from ..errors import DamagedFolder, IntegrityError, PathInTheWay
from ..processes import children_ended, cpus
from ..repository.envelope import Scratch
from ..repository.pack import IndexEntry
from ..repository.repository import Repository
from ..storage import capabilities_of
from .fswrite import TreeWriter
from .newfiles import FileMeta
from .restoreprocs import PackWriters, can_start
from .restoreworker import Blob, File, damage_reason
from .progress import Throttled
from .targetlog import TargetLog, TargetStopped, remove_quietly
from ..results import RestoreResult, RestoreStats

SPECIAL = (FIFO, CHARDEV, BLOCKDEV, SOCKET)

#: A batch of files is handed to the threads when it reaches either size.
BATCH_FILES = 4096
BATCH_BYTES = 256 * 1024 * 1024
#: Batches planned or being written while the walk goes on.
BATCHES_AHEAD = 2
_EMPTY_TASK = 256  # files with nothing to read, per task
#: From the first batch with this many packs of small files on, such packs are written
#: by worker processes (:mod:`.restoreprocs`).
PROCESSES_FROM_PACKS = 4


@attrs.define(eq=False)
class _FilePlan:
    entry: Entry
    remaining: int  # blobs still to write
    damaged: str | None = None  # why the vault's data cannot be written
    failed: str | None = None  # why the target refused it
    # the one pack that holds all the file's content: its thread creates, writes and
    # closes the file; None for a file spread over several packs or with nothing to read
    pack: str | None = None
    sparse: bool = False
    size: int | None = None  # length to set at creation (None: the writes reach it)
    created: bool = False
    mode_set: bool = False  # created with its final permission bits (TreeWriter.creation_mode)


@attrs.define
class _Batch:
    """The files of one batch, where their blobs are, and the threads' tasks."""

    plans: dict[str, _FilePlan]
    by_pack: dict[str, dict[bytes, list[tuple[str, int]]]] = attrs.field(factory=dict)
    needed: dict[str, list[IndexEntry]] = attrs.field(factory=dict)
    nothing_to_read: list[str] = attrs.field(factory=list)
    futures: list[Future] = attrs.field(factory=list)


class Restorer:
    def __init__(
        self,
        repo: Repository,
        tree: TreeReader,
        target: str,
        *,
        threads: int | None = None,
        restore_owner: bool | None = None,
        overwrite: str = "always",
        progress: Callable[[RestoreStats], None] | None = None,
        processes: int | None = None,
    ) -> None:
        self.repo = repo
        self.tree = tree
        self.writer = TreeWriter(target, restore_owner=restore_owner, overwrite=overwrite)
        self.log = TargetLog()
        self.stats = RestoreStats()
        self._threads = threads or _default_threads(repo)
        self._processes = _default_processes(repo) if processes is None else processes
        self._pack_writers: PackWriters | None = None  # started by the first batch of many packs
        self._feeders: ThreadPoolExecutor | None = None  # their threads: one per worker
        self._report = Throttled(progress)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._files: set[str] = set()  # every file laid out (hardlinks may name them)
        self._damaged: dict[str, str] = {}  # point path -> why the vault cannot give it
        self._unwritten: set[str] = set()  # files laid out but not written, for any reason
        self._blocked: set[str] = set()  # folders not restored: nothing below them is
        self._incomplete: set[str] = set()  # files created and not yet finished
        self._removed: list[str] = []  # files the target refused, removed (paths in the target)
        self._premade: set[str] = set()  # folders made before the files (see _make_folders)

    def selection(self, paths: Iterable[str]) -> Iterator[tuple[str, Entry]]:
        """Entries to restore, pre-order, without duplicates (paths may overlap), and
        without what lies in folders that are damaged or not restored."""
        seen: set[str] = set()
        for path in sorted({normalize_path(p) for p in paths} or {""}):
            for relpath, entry in self.tree.walk(path, on_damaged=self._lost_folder):
                if relpath in seen:
                    continue
                seen.add(relpath)
                if relpath in self._blocked or relpath.rpartition("/")[0] in self._blocked:
                    if entry.type == DIR:
                        self._blocked.add(relpath)
                    continue
                yield relpath, entry

    def run(self, paths: Iterable[str] = ()) -> RestoreResult:
        """Restore ``paths`` (everything when empty); see the module documentation for
        what is returned and what is raised."""
        started = time.monotonic()
        paths = list(paths)
        try:
            self._write(paths)
        except TargetStopped:
            pass
        except BaseException:
            self._discard_incomplete()
            self.writer.close()
            raise
        self._removed += self._discard_incomplete()  # after a stop: the files being written
        self.writer.close()
        damaged = sorted(self._damaged)
        self.log.raise_if_any(removed=self._removed, damaged=len(damaged))
        self.stats.seconds = round(time.monotonic() - started, 3)
        self._report.final(self.stats)
        errors = tuple(f"{relpath}: {self._damaged[relpath]}" for relpath in damaged)
        return RestoreResult(self.stats, tuple(damaged), errors, tuple(self.writer.warnings))

    def _write(self, paths: list[str]) -> None:
        links: list[tuple[str, Entry]] = []
        with _gc_paused():
            self._make_folders(paths)
            pool = ThreadPoolExecutor(self._threads, thread_name_prefix="restore")
            in_flight: deque[_Batch] = deque()
            try:
                for plans in self._layout(paths, links):
                    in_flight.append(self._submit(pool, plans))
                    while len(in_flight) > BATCHES_AHEAD:
                        self._finish_batch(in_flight.popleft())
                while in_flight:
                    self._finish_batch(in_flight.popleft())
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                if self._feeders is not None:
                    self._feeders.shutdown(wait=True, cancel_futures=True)
                if self._pack_writers is not None:
                    self._pack_writers.close()
        for relpath, entry in links:
            if entry.target in self._unwritten:
                if entry.target not in self._damaged:
                    self.log.failed.setdefault(self._shown(relpath), f"not linked: '{entry.target}' was not written")
                continue
            if self._entry(relpath, lambda: self.writer.make_hardlink(relpath, entry, entry.target)):
                self.stats.links += 1

    def _discard_incomplete(self) -> list[str]:
        """Remove the files created and not finished; their paths in the target.  One
        that cannot be removed is named as a failed path."""
        removed = []
        for relpath in sorted(self._incomplete):
            if self.writer.discard(relpath):
                removed.append(self._shown(relpath))
            else:
                self.log.failed.setdefault(self._shown(relpath), "written only in part, and it could not be removed")
        self._incomplete.clear()
        return removed

    def _shown(self, relpath: str) -> str:
        """``relpath`` as a path in the target."""
        return f"{self.writer.root}/{relpath}"

    # --- the walk ------------------------------------------------------------------------

    def _lost_folder(self, exc: DamagedFolder) -> None:
        path = str(exc.fields["path"])
        self._damaged.setdefault(path, f"folder not restored, nor anything in it ({exc.fields['reason']})")
        if path in self._premade:  # its node's folders read, but not the rest of it: not restored
            self._unmake(path)

    def _unmake(self, path: str) -> None:
        """Remove the folders made beforehand at and below ``path`` (empty: nothing else
        was written there), deepest first."""
        below = path + "/"
        made = [p for p in self._premade if p == path or p.startswith(below)]
        for relpath in sorted(made, key=lambda p: p.count("/"), reverse=True):
            self.writer.remove_empty_dir(relpath)
            self._premade.discard(relpath)

    def _entry(self, relpath: str, make: Callable[[], object], *, folder: bool = False) -> bool:
        """Run ``make`` (a writer call for ``relpath``); False if it did not make the
        entry: kept by ``--overwrite`` (counted as skipped), in the way, or refused by
        the target (recorded).  A folder not made blocks everything below it."""
        try:
            made = make()
        except (PathInTheWay, OSError) as exc:
            if folder:
                self._blocked.add(relpath)
            if isinstance(exc, PathInTheWay):
                self.log.keep(exc)
            else:
                self.log.refused(self._shown(relpath), exc)  # a full target: TargetStopped
            return False
        if made is False:
            self.stats.skipped += 1
            return False
        return True

    def _make_folders(self, paths: list[str]) -> None:
        """Create the folders of the selection before any file (the walk that lays out
        the rest finds them made).  ext4 then places folders and files so that creating
        the files costs far less kernel time when many files were deleted shortly before
        (48,000 files restored where an earlier restore was just removed: 10 s of system
        time instead of 16 s, measured on a 2-core machine).

        This walk reads each node as stored and decodes only its folders' entries
        (:meth:`TreeReader.stored_folder`), about half the work of decoding every entry;
        a node it cannot read is left to the walk that lays out the rest, which names it.
        A node that it reads but that walk finds damaged (an entry other than a folder's
        malformed) has the folders made here removed again (:meth:`_lost_folder`)."""
        tree = self.tree
        seen: set[str] = set()
        for path in sorted({normalize_path(p) for p in paths} or {""}):
            try:
                entry = tree.lookup(path)
            except DamagedFolder:
                continue
            if entry is None:
                stack = [(path, None, tree.root)]
            elif entry.type == DIR and entry.subtree is not None:
                stack = [(path, entry, entry.subtree)]
            else:
                continue
            while stack:
                relpath, entry, tree_id = stack.pop()
                try:
                    what = f"tree {tree_id.hex()[:16]}"
                    folders = [Entry.from_dict(item, what) for item in tree.stored_folder(tree_id, relpath).values()
                               if item.get("type") == DIR]
                except IntegrityError:  # DamagedFolder too: the next walk names it
                    continue
                if entry is not None and relpath not in seen:
                    seen.add(relpath)
                    if relpath in self._blocked or relpath.rpartition("/")[0] in self._blocked:
                        self._blocked.add(relpath)
                        continue
                    if not self._entry(relpath, lambda: self.writer.make_dir(relpath, entry), folder=True):
                        continue
                    self._premade.add(relpath)
                prefix = f"{relpath}/" if relpath else ""
                stack.extend((prefix + e.name, e, e.subtree) for e in reversed(folders) if e.subtree is not None)

    def _layout(self, paths: Iterable[str], links: list[tuple[str, Entry]]) -> Iterator[dict[str, _FilePlan]]:
        """Lay out the selected entries; yield the files, cleared for creation, in batches."""
        plans: dict[str, _FilePlan] = {}
        size = 0
        writer = self.writer
        for relpath, entry in self.selection(paths):
            if self.log.stopping:
                raise TargetStopped(relpath)
            if entry.type == DIR:
                if self._entry(relpath, lambda: writer.make_dir(relpath, entry), folder=True):
                    self.stats.dirs += 1
            elif entry.type == SYMLINK:
                if self._entry(relpath, lambda: writer.make_symlink(relpath, entry)):
                    self.stats.links += 1
            elif entry.type in SPECIAL:
                self._entry(relpath, lambda: writer.make_special(relpath, entry))
            elif entry.type == HARDLINK and entry.target in self._files:
                links.append((relpath, entry))
            else:
                if not self._entry(relpath, lambda: writer.prepare_file(relpath, entry)):
                    continue
                plans[relpath] = _FilePlan(entry, remaining=len(entry.chunks))
                self._files.add(relpath)
                self.stats.files += 1
                size += entry.size
                if len(plans) >= BATCH_FILES or size >= BATCH_BYTES:
                    yield plans
                    plans, size = {}, 0
        if plans:
            yield plans

    def _plan(self, plans: dict[str, _FilePlan]) -> _Batch:
        """Where the content of each file of a batch is: the files that want each blob of
        each pack, the index entries to read from each pack, the files with nothing to read."""
        batch = _Batch(plans)
        by_pack: dict[str, dict[bytes, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
        needed: dict[str, list[IndexEntry]] = defaultdict(list)
        chunks = list({chunk for plan in plans.values() for chunk in plan.entry.chunks if chunk})
        lookup = dict(zip(chunks, self.repo.index.lookup_many(chunks))).get
        for relpath, plan in plans.items():
            entry = plan.entry
            packs: set[str] = set()
            extent = 0
            for offset, chunk, index_entry in _located(entry, lookup):
                if not chunk:  # a hole: left unwritten in the sparse file
                    plan.remaining -= 1
                    continue
                if index_entry is None:
                    plan.damaged = f"chunk {chunk.hex()[:16]} is missing from the vault"
                    break
                wanted = by_pack[index_entry.pack_id]
                if chunk not in wanted:
                    needed[index_entry.pack_id].append(index_entry)
                wanted[chunk].append((relpath, offset))
                packs.add(index_entry.pack_id)
                extent = max(extent, offset + index_entry.raw_length)
            plan.sparse = entry.sparse or entry.type == DISK
            plan.size = entry.size if plan.sparse or entry.size > extent else None
            if plan.damaged is not None:
                continue
            if len(packs) == 1:
                plan.pack = packs.pop()
            elif not packs:
                batch.nothing_to_read.append(relpath)
            else:  # few: large files, and files across a pack boundary
                try:
                    self.writer.create_file(relpath, entry)
                except OSError as exc:
                    self._refuse(plan, relpath, exc)
                    if self.log.stopping:
                        raise TargetStopped(relpath) from None
                    continue
                self._created(plan, relpath)
        batch.by_pack, batch.needed = by_pack, needed
        return batch

    def _submit(self, pool: ThreadPoolExecutor, plans: dict[str, _FilePlan]) -> _Batch:
        batch = self._plan(plans)
        empty = batch.nothing_to_read
        for i in range(0, len(empty), _EMPTY_TASK):
            batch.futures.append(pool.submit(self._create_empty, batch, empty[i : i + _EMPTY_TASK]))
        elsewhere = self._packs_for_processes(batch)
        for pack_id in sorted(batch.by_pack):
            if pack_id in elsewhere:
                batch.futures.append(self._feeders.submit(self._restore_pack_elsewhere, batch, pack_id))  # type: ignore[union-attr]
            else:
                batch.futures.append(pool.submit(self._restore_pack, batch, pack_id))
        return batch

    def _packs_for_processes(self, batch: _Batch) -> set[str]:
        """The packs of ``batch`` to write in worker processes (:mod:`.restoreprocs`):
        those whose every needed blob goes to files that have all their content in that
        pack.  The workers are started by the first batch with
        :data:`PROCESSES_FROM_PACKS` such packs (a restore of a few files has none)."""
        if self._processes < 1:
            return set()
        plans = batch.plans
        packs = {pack_id for pack_id, wanted in batch.by_pack.items()
                 if all(plans[relpath].pack == pack_id for targets in wanted.values() for relpath, _ in targets)}
        if self._pack_writers is None:
            if len(packs) < PROCESSES_FROM_PACKS or not can_start():
                return set()
            self._pack_writers = PackWriters(self.repo, self.writer.new_files, workers=self._processes)
            self._pack_writers.start()  # from the walk's thread, which outlives them
            # threads of their own, so that the workers' packs do not queue behind large files
            self._feeders = ThreadPoolExecutor(self._processes, thread_name_prefix="restore-feed")
        return packs if self._pack_writers.ready else set()

    def _finish_batch(self, batch: _Batch) -> None:
        """Wait for a batch; remove the files it could not write and note them."""
        for future in batch.futures:
            future.result()
        for relpath, plan in batch.plans.items():
            if plan.damaged is None and plan.failed is None:
                continue
            if relpath in self._incomplete:
                self.writer.discard(relpath)
                self._finished(relpath)
                if plan.failed is not None:
                    self._removed.append(self._shown(relpath))
            self._unwritten.add(relpath)
            if plan.damaged is not None:
                self._damaged[relpath] = plan.damaged
        if self.log.stopping:
            raise TargetStopped("")

    def _refuse(self, plan: _FilePlan, relpath: str, exc: OSError) -> None:
        """The target refused ``relpath`` (from any thread): it will be removed and named;
        a full or read-only target stops the restore."""
        plan.failed = exc.strerror or str(exc)
        try:
            self.log.refused(self._shown(relpath), exc, " (the file was removed)" if plan.created else "")
        except TargetStopped:
            pass

    # --- the threads ---------------------------------------------------------------------

    def _scratch(self) -> Scratch:
        """The decryption buffer of the calling thread."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = Scratch()
        return scratch

    def _create_empty(self, batch: _Batch, relpaths: list[str]) -> None:
        for relpath in relpaths:
            if self.log.stopping:
                return
            plan = batch.plans[relpath]
            mode = self.writer.creation_mode(plan.entry)
            try:
                fd = self.writer.open_new(relpath, plan.size, mode=0o600 if mode is None else mode)
                self._created(plan, relpath)
                self.writer.close_file(relpath, fd, plan.entry, mode_set=mode is not None)
            except OSError as exc:
                self._refuse(plan, relpath, exc)
                continue
            self._finished(relpath)

    def _created(self, plan: _FilePlan, relpath: str) -> None:
        plan.created = True
        with self._lock:
            self._incomplete.add(relpath)

    def _finished(self, relpath: str) -> None:
        with self._lock:
            self._incomplete.discard(relpath)

    def _restore_pack_elsewhere(self, batch: _Batch, pack_id: str) -> None:
        """:meth:`_restore_pack` by a worker process (:mod:`.restoreprocs`); by this
        thread if the worker dies, or a data key the pack needs cannot be had."""
        if self.log.stopping:
            return
        writers = self._pack_writers
        assert writers is not None
        files, blobs, payload, key_ids, pack_file = _task_for(self.repo, self.writer, batch, pack_id)
        try:
            keys = {key_id: self.repo.envelope.data_key(key_id) for key_id in key_ids}
        except IntegrityError:  # a key that cannot be had: the thread names each blob it cannot open
            self._restore_pack(batch, pack_id)
            return
        relpaths = [file[0] for file in files]
        with self._lock:
            self._incomplete.update(relpaths)  # the worker may create any of them from now on
        answer = writers.write(keys, files, blobs, payload, pack_file)
        if answer is None:  # the worker died or handed the pack back, or none is left
            if children_ended():  # the job is ending: its files are removed as incomplete
                return
            for relpath in relpaths:  # cleared before: what is there now, the worker made
                remove_quietly(self._shown(relpath))
            with self._lock:
                self._incomplete.difference_update(relpaths)
            self._restore_pack(batch, pack_id)
            return
        written, created, finished, damaged, failed, warnings, last = answer
        plans = batch.plans
        for number in created:
            plans[relpaths[number]].created = True
        with self._lock:
            self._incomplete.difference_update(relpath for relpath in relpaths if not plans[relpath].created)
            self._incomplete.difference_update(relpaths[number] for number in finished)
            for number, reason in damaged.items():
                plan = plans[relpaths[number]]
                plan.damaged = plan.damaged or reason
            self.writer.warnings.extend(warnings)
        for number, (code, message) in failed.items():
            self._refuse(plans[relpaths[number]], relpaths[number], OSError(code, message))
        with self._lock:
            self.stats.bytes_written += written
            self.stats.packs_read += 1
            if last >= 0:
                self.stats.current = relpaths[last]
        self._report(self.stats)

    def _restore_pack(self, batch: _Batch, pack_id: str) -> None:
        plans, wanted, writer = batch.plans, batch.by_pack[pack_id], self.writer
        open_fds: dict[str, int] = {}  # files of this pack alone, being written
        written = 0
        last = self.stats.current  # the last file written to, for the progress line
        try:
            blobs = self.repo.read_pack_blobs(pack_id, batch.needed[pack_id], scratch=self._scratch())
            for index_entry, data in blobs:
                if self.log.stopping:
                    break
                targets = wanted[index_entry.blob_id]
                if isinstance(data, IntegrityError):
                    reason = damage_reason(data)
                    with self._lock:
                        for relpath, _ in targets:
                            plans[relpath].damaged = plans[relpath].damaged or reason
                    continue
                for relpath, offset in targets:
                    plan = plans[relpath]
                    if plan.damaged is not None or plan.failed is not None:
                        continue
                    try:
                        if plan.pack is None:
                            writer.write(relpath, offset, data, sparse=plan.sparse)
                            with self._lock:
                                plan.remaining -= 1
                                complete = plan.remaining == 0 and plan.damaged is None
                            if complete:
                                writer.finish_file(relpath, plan.entry)
                                self._finished(relpath)
                        else:
                            fd = open_fds.get(relpath)
                            if fd is None:
                                mode = writer.creation_mode(plan.entry)
                                plan.mode_set = mode is not None
                                fd = open_fds[relpath] = writer.open_new(
                                    relpath, plan.size, mode=0o600 if mode is None else mode)
                                self._created(plan, relpath)
                            writer.write_fd(fd, offset, data, sparse=plan.sparse)
                            plan.remaining -= 1
                            if plan.remaining == 0:
                                del open_fds[relpath]
                                writer.close_file(relpath, fd, plan.entry, mode_set=plan.mode_set)
                                self._finished(relpath)
                    except OSError as exc:
                        fd = open_fds.pop(relpath, None)
                        if fd is not None:
                            os.close(fd)
                        self._refuse(plan, relpath, exc)
                        continue
                    written += len(data)
                    last = relpath
        finally:
            for relpath, fd in open_fds.items():  # damaged, or an error: no metadata
                writer.close_file(relpath, fd, None)
        with self._lock:
            self.stats.bytes_written += written
            self.stats.packs_read += 1
            self.stats.current = last
        self._report(self.stats)


def _default_processes(repo: Repository) -> int:
    """Worker processes for packs of small files: one per CPU for a local store when
    there are more than one; none for a remote store, where the threads wait for the
    network more than for the interpreter's lock."""
    if capabilities_of(repo.store).remote or cpus() < 2:
        return 0
    return cpus()


def _default_threads(repo: Repository) -> int:
    """The store's concurrency; for a local store, no more than one per CPU this process
    may run on.  The work is then decrypting, hashing and the kernel's (creating a file
    costs tens of microseconds in ext4), and a thread more than the CPUs only adds
    contention: each of the many short system calls a small file costs (open, write,
    times, close) hands the GIL to a waiting thread and back, two context switches.
    The 2 GiB corpus (48,000 files) on 2 CPUs, quiet machine, alternating runs: 2 threads
    4.5-5.6 s (median 4.9) against 5.2-5.7 s (5.4) for 3, with 0.4-0.9 s less system
    time, on an ext4 with a journal; where many files were just deleted from an ext4
    without one (creating a file then costs far more kernel time), 5.7-6.7 s against
    6.5-7.3 s.  An earlier measurement on a machine loaded by other work (load 6-8)
    favoured 3 threads: more threads took a larger share of the contended CPUs."""
    if capabilities_of(repo.store).remote:
        return repo.io_threads
    return max(1, min(repo.io_threads, cpus()))


def _task_for(
    repo: Repository, writer: TreeWriter, batch: _Batch, pack_id: str
) -> tuple[list[File], list[Blob], bytes, set[bytes], tuple[str, int | None] | None]:
    """The files and blobs of ``pack_id`` in ``batch`` for a worker process, the
    payload, the ids of the data keys that open the blobs, and the pack's file.

    From a local folder the worker reads the pack's file itself: the payload is empty,
    and the key ids are the index's and those the envelope holds (a blob with a header
    that names another key makes the worker hand the pack back).  Otherwise the payload
    is the pack's needed sealed blobs as read from the store, and the key ids those the
    blobs name."""
    plans, wanted = batch.plans, batch.by_pack[pack_id]
    numbers: dict[str, int] = {}
    files: list[File] = []
    blobs: list[Blob] = []

    def targets_of(index_entry: IndexEntry) -> list[tuple[int, int]]:
        targets = []
        for relpath, offset in wanted[index_entry.blob_id]:
            number = numbers.get(relpath)
            if number is None:
                number = numbers[relpath] = len(files)
                plan = plans[relpath]
                files.append((relpath, plan.size, writer.creation_mode(plan.entry), plan.sparse, plan.remaining,
                              FileMeta.of(plan.entry)))
            targets.append((number, offset))
        return targets

    path = repo.pack_file(pack_id)
    if path is not None:
        base_key_id = repo.envelope.base_key_id
        entries = sorted(batch.needed[pack_id], key=lambda e: e.offset)
        blobs = [(index_entry, index_entry.offset, targets_of(index_entry)) for index_entry in entries]
        key_ids = {index_entry.key_id or base_key_id for index_entry in entries}
        key_ids.update(repo.envelope.held_key_ids())
        return files, blobs, b"", key_ids, (path, repo.read_limit)
    parts: list[memoryview] = []
    key_ids = set()
    sealed_key_id = repo.envelope.sealed_key_id
    size = 0
    for part, data in repo.read_pack_ranges(pack_id, batch.needed[pack_id]):
        unread = damage_reason(data) if isinstance(data, IntegrityError) else None
        start = part[0].offset
        for index_entry in part:
            targets = targets_of(index_entry)
            if unread is None:
                key_ids.add(sealed_key_id(data[index_entry.offset - start:], index_entry.key_id))  # type: ignore[index]
                blobs.append((index_entry, size + index_entry.offset - start, targets))
            else:
                blobs.append((index_entry, unread, targets))
        if unread is None:
            parts.append(data)  # type: ignore[arg-type]
            size += data.nbytes  # type: ignore[union-attr]
    return files, blobs, b"".join(parts), key_ids, None


def _located(entry: Entry, lookup: Callable[[bytes], IndexEntry | None]) -> Iterator[tuple[int, bytes, IndexEntry | None]]:
    """``(offset, chunk id, index entry)`` of every chunk of ``entry`` (as
    :meth:`Entry.spans`), looking each one up once; holes have an empty id."""
    if entry.chunk_size:
        for offset, _, chunk in entry.spans(None):
            yield offset, chunk, lookup(chunk) if chunk else None
        return
    offset = 0
    for chunk in entry.chunks:
        index_entry = lookup(chunk)
        yield offset, chunk, index_entry
        offset += 0 if index_entry is None else index_entry.raw_length


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: a restore makes hundreds of thousands of
    objects and no cycles, and the collector's passes over them cost several percent."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
