"""Adding blobs to a repository: deduplicate, seal, pack, upload.

:class:`BlobWriter` is how a backup writes data.  ``add`` seals a new blob in the calling thread
(compression when it pays, then encryption straight into the open pack's buffer, under the
writer's lock: no copy of the sealed blob), then returns its id.  The backup engine calls it from its pool of reader threads, so sealing
runs on every core with the GIL released, without a hand-off per blob.  Full packs are
uploaded in the background, at most ``upload_threads`` at a time (by default half the
store's concurrency; one for a local folder): an ``add`` that fills a
pack waits for room, which bounds memory.  Packs are assembled in buffers the writer reuses
(at most one per upload in flight and the open pack: a new pack waits for one): a buffer
is reused only once the store has returned from ``put`` and holds no view of it.  A pack is closed before a blob would take
it past ``pack_size`` (a blob larger than that gets a pack of its own), so a buffer of
``pack_size`` and room for the trailer holds it.  ``flush`` waits until every blob added so far
is in an uploaded pack named by an uploaded index file.  Index files are written by a
thread of their own, each once its pack is stored: the next pack's upload does not wait
for the previous one's index file.  Errors from the background raise from the next
``add`` or ``flush``.

``add_sealed_many`` takes blobs sealed elsewhere (worker processes sealing a backup's
small files, :mod:`strongroom.engine.sealprocs`) and packs the new ones as they are.

Deduplication: a blob the repository's index holds, or that this writer already added,
is not stored again (``add_many`` checks a list of blobs against the index with one
vectorised search).  ``flush`` gives up the pack buffers it kept (a later
``add`` makes new ones).  Writes, in this order: a pack ``data/<xx>/<pack-id>``, whole, then
the index file naming its blobs (:meth:`Repository.write_index`); only then are its
blobs added to the in-memory index.  It never deletes anything.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Protocol

from ..storage.capabilities import LOCAL_CONCURRENCY
from .envelope import Envelope
from .pack import MAX_PACK_BLOBS, PACK_TARGET_SIZE, IndexEntry, PackWriter, pack_name

if TYPE_CHECKING:
    from ..storage import Store
    from .index import Index

__all__ = ["BlobSink", "BlobWriter"]

#: Room for the trailer and footer in a pack buffer, beyond ``pack_size`` (a pack of many
#: small blobs grows its buffer once).
_TRAILER_ROOM = 256 * 1024


class BlobSink(Protocol):
    """What a writer needs of the repository it adds blobs to (a
    :class:`~.repository.Repository`, whose ``writer()`` makes one)."""

    store: Store
    envelope: Envelope
    index: Index
    io_threads: int

    def blob_id(self, data: bytes | memoryview) -> bytes: ...

    def write_index(self, entries: list[IndexEntry]) -> list[str]: ...


class BlobWriter:
    """Adds blobs to the repository: deduplicates, seals, packs, uploads (see the module
    docstring for the threads, the order of writes and the errors)."""

    def __init__(
        self,
        repo: BlobSink,
        *,
        upload_threads: int | None = None,
        pack_size: int = PACK_TARGET_SIZE,
        compression_level: int = 3,
    ) -> None:
        self.repo = repo
        # half the store's concurrency: each upload in flight holds a whole pack.  A local
        # folder's (LOCAL_CONCURRENCY) gets one: its uploads are idle most of the time
        # (a write and fsyncs per 8 MiB), and a second one's pack buffer cost 8 MiB of
        # peak memory (first backup of 600 MB: 125-127 -> 115-116 MiB, the same time)
        upload_threads = upload_threads or (
            1 if repo.io_threads <= LOCAL_CONCURRENCY else max(1, repo.io_threads // 2)
        )
        self.pack_size = pack_size
        self.compression_level = compression_level
        self._upload_pool = ThreadPoolExecutor(upload_threads, thread_name_prefix="upload")
        # index files are written by a thread of their own, each after its pack is stored:
        # a pack's upload need not wait for the previous pack's index file (an fsync each)
        self._index_pool = ThreadPoolExecutor(1, thread_name_prefix="index")
        self._lock = threading.Lock()
        self._uploads_in_flight = threading.BoundedSemaphore(upload_threads)
        self._known: set[bytes] = set()
        # pack buffers, reused pack after pack: a fresh 8 MiB buffer per pack cost its page
        # faults (with the GIL held) every time.  At most one per upload and the open pack
        # are out; a new pack waits for one (the uploads bound memory, as before)
        self._free_packs: list[bytearray] = []
        self._packs_out = 0
        self._max_packs = upload_threads + 1
        self._room = threading.Condition(self._lock)
        self._pack: PackWriter | None = None
        self._futures: set[Future] = set()
        self._error: BaseException | None = None
        self.new_blobs = 0
        self.new_raw_bytes = 0
        self.stored_bytes = 0
        self.packs_written = 0

    def _check_error(self) -> None:
        if self._error is not None:
            raise self._error

    def add(self, kind: int, data: bytes | bytearray | memoryview, blob: bytes | None = None) -> bytes:
        """Store ``data`` unless the vault has it; its id.  ``data`` is not kept: a
        buffer the caller reuses afterwards is fine."""
        self._check_error()
        blob = blob if blob is not None else self.repo.blob_id(data)
        with self._lock:
            if blob in self._known or blob in self.repo.index:
                return blob
            self._known.add(blob)
        self._store(kind, blob, data)
        return blob

    def add_many(self, kind: int, datas: list[bytes | bytearray | memoryview]) -> list[bytes]:
        """The ids of ``datas``, each stored unless the vault has it: what ``add`` of each
        in turn does, with one vectorised search of the index for all of them instead of
        one lookup each (for the many small files of a batch)."""
        self._check_error()
        blob_id = self.repo.blob_id
        ids = [blob_id(data) for data in datas]
        self._store_new(ids, lambda i: self._store(kind, ids[i], datas[i]))
        return ids

    def add_sealed_many(
        self, kind: int, key_id: bytes, sealed: list[tuple[bytes, int, bytes | memoryview]]
    ) -> list[bytes]:
        """The ids of blobs sealed elsewhere (a worker process sealing with an envelope
        made from this writer's :meth:`~.envelope.Envelope.writing_state`), each stored
        unless the vault has it: ``sealed`` lists ``(blob id, plaintext length, sealed
        bytes)``, the blob sealed under its id as ``add`` would seal it; ``key_id`` names
        the data key it was sealed with, which must be the one this writer's packs record."""
        self._check_error()
        envelope = self.repo.envelope
        if key_id != envelope.key_id:
            raise ValueError(f"blobs sealed with key {key_id.hex()}, the writer's packs record {envelope.key_id.hex()}")
        ids = [blob for blob, _, _ in sealed]

        def append(i: int) -> None:
            blob, length, data = sealed[i]

            def copy(out: memoryview) -> int:
                out[: len(data)] = data
                return len(data)

            self._append(kind, blob, len(data), length, copy, envelope)

        self._store_new(ids, append)
        return ids

    def _store_new(self, ids: list[bytes], store: Callable[[int], None]) -> None:
        """``store(i)`` for the position ``i`` in ``ids`` of each blob neither the index nor
        this writer has (the first of each; one vectorised search of the index for all),
        which is in ``_known`` meanwhile; if one fails, those not stored yet leave it."""
        new = self._claim_new(ids)
        for n, i in enumerate(new):
            try:
                store(i)
            except BaseException:
                with self._lock:  # the ones not stored are not known either
                    self._known.difference_update(ids[j] for j in new[n + 1:])
                raise

    def _claim_new(self, ids: list[bytes]) -> list[int]:
        """The positions in ``ids`` of the blobs neither the index nor this writer has,
        the first of each, now in ``_known`` (the caller stores them)."""
        new: list[int] = []
        with self._lock:  # as in add: a blob leaves _known only once the index holds it
            known = self._known
            unknown = [blob for blob in ids if blob not in known]
            absent = self.repo.index.missing(unknown) if unknown else set()
            for i, blob in enumerate(ids):
                if blob in absent and blob not in known:
                    known.add(blob)
                    new.append(i)
        return new

    def _store(self, kind: int, blob: bytes, data: bytes | bytearray | memoryview) -> None:
        """Seal new blob ``blob`` (in ``_known`` already) and append it to the open pack;
        on failure it leaves ``_known``."""
        envelope = self.repo.envelope
        try:
            # compressed outside the lock; encrypted (the GIL released) straight into the
            # open pack under it: no seal buffer per thread, no copy of the sealed blob
            body, compression = envelope.prepare(kind, data, level=self.compression_level)
            length = envelope.prepared_size(kind, len(body))

            def seal(out: memoryview) -> int:
                return envelope.seal_prepared_into(out, kind, blob, body, compression)

        except BaseException:
            with self._lock:
                self._known.discard(blob)
            raise
        self._append(kind, blob, length, len(data), seal, envelope)

    def _append(
        self, kind: int, blob: bytes, length: int, raw_length: int, seal, envelope: Envelope
    ) -> None:
        """Append new blob ``blob`` (in ``_known`` already), whose ``length`` sealed bytes
        ``seal(view)`` writes, to the open pack; on failure it leaves ``_known``."""
        added = False
        try:
            while not added:
                full: list[PackWriter] = []
                with self._lock:
                    pack = self._open_pack(length, full, envelope)
                    if pack is not None:
                        pack.add_sealing(blob, kind, length, raw_length, seal)
                        added = True
                        self.new_blobs += 1
                        self.new_raw_bytes += raw_length
                        self.stored_bytes += length
                        if pack.size >= self.pack_size:
                            full.append(pack)
                            self._pack = None
                for closed in full:  # outside the lock: waits while enough uploads run
                    self._submit_upload(closed)
        except BaseException:
            if not added:
                with self._lock:
                    self._known.discard(blob)
            raise

    def _open_pack(self, length: int, full: list[PackWriter], envelope: Envelope) -> PackWriter | None:
        """The open pack, with room for a sealed blob of ``length`` bytes (called with the
        lock held).  A pack without that room is closed into ``full``; a new one takes a
        free buffer, or a new one while fewer than ``_max_packs`` are out, else waits for
        an upload to give one back.  None: this call closed packs and must upload them
        (outside the lock) before it may wait."""
        while True:
            pack = self._pack
            if pack is not None:
                if pack.count >= MAX_PACK_BLOBS or (pack.count and pack.size + length > self.pack_size):
                    # readers refuse a trailer of more blobs; and closed before it passes
                    # pack_size, a pack always fits its buffer
                    full.append(pack)
                    self._pack = None
                    continue
                return pack
            if self._free_packs:
                buffer = self._free_packs.pop()
            elif self._packs_out < self._max_packs:
                buffer = bytearray(self.pack_size + _TRAILER_ROOM)
            elif full:
                return None
            else:
                self._check_error()
                self._room.wait(timeout=1.0)
                continue
            self._packs_out += 1
            self._pack = PackWriter(envelope, buffer=buffer)

    def _track(self, future: Future) -> None:
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._untrack)

    def _untrack(self, future: Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def _submit_upload(self, pack: PackWriter) -> None:
        self._uploads_in_flight.acquire()
        self._track(self._upload_pool.submit(self._upload, pack))

    def _upload(self, pack: PackWriter) -> None:
        given = pack.buffer
        released = False
        try:
            data, entries = pack.finish()
            self.repo.store.put(pack_name(pack.pack_id), data)
            if isinstance(data, memoryview):
                data.release()  # the store is done with it: the buffer can take the next pack
            del data
            self._free_pack(given)
            given = None
            # the pack is stored: the next one may be while this one's index file is written
            self._uploads_in_flight.release()
            released = True
            self._track(self._index_pool.submit(self._index_pack, entries))
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            if given is not None:  # the upload failed: the buffer is given up, not reused
                self._free_pack(None)
            if not released:
                self._uploads_in_flight.release()

    def _index_pack(self, entries: list[IndexEntry]) -> None:
        """Write the index file of a stored pack's blobs, then add them to the in-memory
        index (in the index thread, one pack after the other)."""
        try:
            self.repo.write_index(entries)
            self.repo.index.add(entries)
            with self._lock:
                self.packs_written += 1
                # the index holds them now: a set of every id added would grow by about
                # 100 bytes per blob for the whole backup (100 MB for a million files)
                self._known.difference_update(e.blob_id for e in entries)
        except BaseException as exc:
            self._error = self._error or exc

    def _free_pack(self, buffer: bytearray | None) -> None:
        """A pack's buffer is back: kept for a later pack, unless something still holds
        a view of it (a store that kept what it was given: it must not change) or it is
        None (given up); either way another pack may now take or make one."""
        if buffer is not None:
            try:
                buffer.append(0)  # refused while a view of the buffer exists
            except BufferError:
                buffer = None
            else:
                del buffer[-1]
        with self._lock:
            self._packs_out -= 1
            if buffer is not None:
                self._free_packs.append(buffer)
            self._room.notify_all()

    def _wait_all(self) -> None:
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                return
            for future in pending:
                future.result()
                self._untrack(future)

    def flush(self) -> None:
        """Pack and upload everything added so far, then write its index."""
        self._wait_all()
        self._check_error()
        with self._lock:
            last, self._pack = self._pack, None
        if last is not None and last.count:
            self._submit_upload(last)
        self._wait_all()
        self._check_error()
        with self._lock:
            # nothing is waiting to be packed: the buffers go (a later ``add`` makes one)
            self._free_packs.clear()

    def close(self) -> None:
        self._upload_pool.shutdown(wait=True)
        self._index_pool.shutdown(wait=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.flush()
        finally:
            self.close()
