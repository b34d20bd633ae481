"""The repository: encrypted, compressed, content-addressed blobs in packs, and documents.

Write order makes crashes harmless: a pack is uploaded whole, then the index file that
names its blobs, and only then may a document (a recovery-point header) refer to them.
A pack that was uploaded but whose index file was never written (the process was
killed in between) is found again by :meth:`Repository.adopt_unindexed_packs`, which
reads the pack's own trailer, so the next backup reuses what was already uploaded.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from ..errors import IntegrityError, ObjectNotFound, StrongroomError
from ..models import time_id
from ..storage import Store, capabilities_of
from .blobid import blob_id as keyed_blob_id
from .envelope import KIND_DOCUMENT, KIND_INDEX, Envelope, Scratch
from .index import Index
from .indexfile import DecodedIndex, decode_index, decode_index_columns, encode_index
from .masterkey import MasterKey
from .pack import PACK_TARGET_SIZE, IndexEntry, PackWriter, pack_name, read_trailer


#: From a local store, blobs of a pack are read this many bytes at a time (or one blob).
LOCAL_READ_SIZE = 1024 * 1024


@contextmanager
def _mapper(threads: int) -> Iterator[Callable]:
    """``map`` over a pool of ``threads`` threads, or the plain ``map`` for one (small
    reads from a local store are quicker than starting threads)."""
    if threads <= 1:
        yield map
        return
    with ThreadPoolExecutor(threads) as pool:
        yield pool.map


def index_object_name(index_id: str) -> str:
    return f"index/{index_id}"


class Repository:
    """Blobs, packs, index and encrypted documents on one store."""

    def __init__(self, store: Store, master: MasterKey, *, io_threads: int | None = None) -> None:
        self.store = store
        self.master = master
        self.envelope = Envelope(master.data_key.value, master.key_id)
        self.index = Index()
        # storage operations in flight (uploads, pack reads): the store's own hint by
        # default, more for remote stores than for a local folder
        self.io_threads = io_threads or capabilities_of(store).concurrency
        self._id_key = master.id_key.value

    # --- ids and documents -------------------------------------------------------------

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return keyed_blob_id(self._id_key, data)

    def put_document(self, name: str, doc: dict | list) -> None:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        self.store.put(name, self.envelope.seal(KIND_DOCUMENT, name.encode(), raw))

    def get_document(self, name: str) -> dict:
        sealed = self.store.get(name)
        raw = self.envelope.open(sealed, name.encode(), kind=KIND_DOCUMENT)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(what=name, reason=f"malformed document ({exc})") from None

    def get_documents(self, names: Iterable[str]) -> Iterator[tuple[str, dict]]:
        """Fetch several documents concurrently, in the order given."""
        names = list(names)
        if len(names) < 4:
            for name in names:
                yield name, self.get_document(name)
            return
        with ThreadPoolExecutor(self.io_threads) as pool:
            yield from zip(names, pool.map(self.get_document, names))

    # --- index -------------------------------------------------------------------------

    def load_index(self, *, tolerant: bool = False) -> list[str]:
        """Read every index file; returns problems found when ``tolerant``, else raises."""
        return self.load_index_files(self.store.list("index/"), tolerant=tolerant)

    def write_index(self, entries: list[IndexEntry]) -> str:
        name = index_object_name(time_id())
        self.store.put(name, self.envelope.seal(KIND_INDEX, name.encode(), encode_index(entries)))
        return name

    def pack_ids_on_storage(self) -> set[str]:
        return {name.rsplit("/", 1)[-1] for name in self.store.list("data/")}

    def adopt_unindexed_packs(self) -> tuple[int, list[str]]:
        """Index packs that exist on storage but in no index file (an interrupted backup).

        Returns the number of packs adopted and problems with packs whose trailer is
        unreadable (left alone: verify reports them).
        """
        missing = sorted(self.pack_ids_on_storage() - self.index.named_pack_ids())
        adopted: list[IndexEntry] = []
        problems: list[str] = []
        count = 0
        for pack_id in missing:
            try:
                entries = read_trailer(self.store, pack_id, self.envelope)
            except (IntegrityError, ObjectNotFound) as exc:
                problems.append(f"{pack_name(pack_id)}: {exc}")
                continue
            adopted.extend(entries)
            count += 1
        if adopted:
            self.write_index(adopted)
            self.index.add(adopted)
        return count, problems

    # --- reading blobs -----------------------------------------------------------------

    def lookup(self, blob: bytes) -> IndexEntry:
        entry = self.index.lookup(blob)
        if entry is None:
            raise IntegrityError(what=f"blob {blob.hex()[:16]}", reason="not found in any index")
        return entry

    def open_blob(
        self, entry: IndexEntry, sealed: bytes | memoryview, *, scratch: Scratch | None = None
    ) -> bytes | memoryview:
        """Decrypt one blob and check that its content hashes to its id (with ``scratch``,
        see :meth:`Envelope.open`)."""
        if len(sealed) != entry.length:
            raise IntegrityError(
                what=f"{pack_name(entry.pack_id)} (blob {entry.blob_id.hex()[:16]})",
                reason="truncated",
            )
        try:
            raw = self.envelope.open(sealed, entry.blob_id, kind=entry.kind, scratch=scratch)
        except IntegrityError as exc:
            raise IntegrityError(
                what=f"{pack_name(entry.pack_id)} (blob {entry.blob_id.hex()[:16]})",
                reason=exc.fields.get("reason", "authentication failed"),
            ) from None
        if len(raw) != entry.raw_length or self.blob_id(raw) != entry.blob_id:
            raise IntegrityError(
                what=f"{pack_name(entry.pack_id)} (blob {entry.blob_id.hex()[:16]})",
                reason="content does not match its id",
            )
        return raw

    def get_blob(self, blob: bytes) -> bytes:
        entry = self.lookup(blob)
        try:
            sealed = self.store.get_range(pack_name(entry.pack_id), entry.offset, entry.length)
        except ObjectNotFound:
            raise IntegrityError(
                what=pack_name(entry.pack_id), reason="pack is missing from storage"
            ) from None
        return self.open_blob(entry, sealed)

    def read_pack_blobs(
        self, pack_id: str, entries: list[IndexEntry], *, scratch: Scratch | None = None
    ) -> Iterator[tuple[IndexEntry, bytes | memoryview | IntegrityError]]:
        """Read the given blobs of one pack, in pack order; yield each decrypted.

        From a remote store the blobs come with one ranged request; from a local one with
        a request per :data:`LOCAL_READ_SIZE` or so, which bounds the memory a reading
        thread holds.  With ``scratch``, each blob is decrypted into it (see
        :meth:`Envelope.open`): its data is valid until the next one is asked for.
        A blob that fails authentication is yielded with its error instead of its data.
        """
        entries = sorted(entries, key=lambda e: e.offset)
        limit = None if capabilities_of(self.store).remote else LOCAL_READ_SIZE
        name = pack_name(pack_id)
        first = 0
        while first < len(entries):
            start = entries[first].offset
            end = start + entries[first].length
            last = first + 1
            while last < len(entries):
                stop = entries[last].offset + entries[last].length
                if limit is not None and stop - start > limit:
                    break
                end, last = max(end, stop), last + 1
            try:
                data = memoryview(self.store.get_range(name, start, end - start))
            except ObjectNotFound:
                err = IntegrityError(what=name, reason="pack is missing from storage")
                for entry in entries[first:]:
                    yield entry, err
                return
            for entry in entries[first:last]:
                part = data[entry.offset - start : entry.offset - start + entry.length]
                try:
                    yield entry, self.open_blob(entry, part, scratch=scratch)
                except IntegrityError as exc:
                    yield entry, exc
            first = last

    def writer(self, **kwargs) -> "BlobWriter":
        return BlobWriter(self, **kwargs)

    # --- maintenance: prune, and backups that run beside one ---------------------------

    def read_index_files(self, names: Iterable[str]) -> list[tuple[str, list[IndexEntry] | IntegrityError]]:
        """The entries of each named index file, as stored, in the order given.

        A file deleted meanwhile (replaced by a prune) gives no entries; a damaged one
        gives its IntegrityError instead of entries.
        """
        names = list(names)

        def read(name: str) -> list[IndexEntry] | IntegrityError:
            try:
                return decode_index(self.envelope.open(self.store.get(name), name.encode(), kind=KIND_INDEX))
            except ObjectNotFound:
                return []
            except IntegrityError as exc:
                return IntegrityError(what=name, reason=exc.fields.get("reason", str(exc)))

        with ThreadPoolExecutor(self.io_threads) as pool:
            return list(zip(names, pool.map(read, names)))

    def load_index_files(self, names: Iterable[str], *, tolerant: bool = False) -> list[str]:
        """Add the named index files to the in-memory index (as :meth:`load_index` does
        for all of them); files already loaded may be named again."""
        names = list(names)
        problems: list[str] = []

        def read(name: str) -> DecodedIndex | IntegrityError:
            try:
                plain = self.envelope.open(self.store.get(name), name.encode(), kind=KIND_INDEX)
                return decode_index_columns(plain)
            except ObjectNotFound:
                return DecodedIndex.join(())  # merged away by a concurrent process
            except IntegrityError as exc:
                return IntegrityError(what=name, reason=exc.fields.get("reason", str(exc)))

        # one batch for the index: a merge per file would copy the growing tables each time
        loaded: list[DecodedIndex] = []
        with _mapper(self.io_threads if capabilities_of(self.store).remote else 1) as mapper:
            for name, result in zip(names, mapper(read, names)):
                if isinstance(result, IntegrityError):
                    if not tolerant:
                        raise IntegrityError(what=name, reason=f"{result.fields.get('reason')}; run 'strongroom vault rebuild-index'")
                    problems.append(f"{name}: {result}")
                else:
                    loaded.append(result)
        self.index.add_decoded(DecodedIndex.join(loaded))
        return problems

    def replace_index_file(self, name: str, entries: list[IndexEntry]) -> str | None:
        """Write the index file that replaces ``name`` with ``entries``, then delete ``name``.

        The new file keeps the time part of the old name (packs keep their age, which
        prune's grace period is counted from) and gets a suffix derived from the old name,
        so repeating an interrupted replacement rewrites the same file instead of adding
        one.  Returns the new name, or None when ``entries`` is empty (nothing written).
        """
        import hashlib

        new_name = None
        if entries:
            stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
            new_name = index_object_name(f"{stamp}-{hashlib.sha256(name.encode()).hexdigest()[:8]}")
            if new_name == name:
                raise ValueError(f"index file {name} cannot replace itself")
            self.store.put(new_name, self.envelope.seal(KIND_INDEX, new_name.encode(), encode_index(entries)))
        self.store.delete(name)
        return new_name

    def copy_blobs(self, entries: list[IndexEntry], *, pack_size: int = PACK_TARGET_SIZE) -> list[IndexEntry]:
        """Copy blobs, still sealed, into new packs with their index files; the new entries.

        Each blob is read with one ranged read per source pack and opened (authenticated,
        re-hashed) before it is copied, so damage is never copied: IntegrityError names
        it.  A missing source pack raises IntegrityError too.  Sealed blobs are bound to
        their blob id, not to a pack, so they move as they are.
        """
        by_pack: dict[str, list[IndexEntry]] = {}
        for entry in entries:
            by_pack.setdefault(entry.pack_id, []).append(entry)
        written: list[IndexEntry] = []
        pack = PackWriter(self.envelope)

        def upload(full: PackWriter) -> None:
            data, new = full.finish()
            self.store.put(pack_name(full.pack_id), data)
            self.write_index(new)
            self.index.add(new)
            written.extend(new)

        for pack_id in sorted(by_pack):
            group = sorted(by_pack[pack_id], key=lambda e: e.offset)
            start = group[0].offset
            end = max(e.offset + e.length for e in group)
            try:
                data = memoryview(self.store.get_range(pack_name(pack_id), start, end - start))
            except ObjectNotFound:
                raise IntegrityError(what=pack_name(pack_id), reason="pack is missing from storage") from None
            for entry in group:
                sealed = data[entry.offset - start : entry.offset - start + entry.length]
                self.open_blob(entry, sealed)  # raises IntegrityError if damaged
                pack.add(entry.blob_id, entry.kind, bytes(sealed), entry.raw_length)
                if pack.size >= pack_size:
                    upload(pack)
                    pack = PackWriter(self.envelope)
        if pack.count:
            upload(pack)
        return written

    def adopt_packs(self, pack_ids: Iterable[str]) -> tuple[int, list[str]]:
        """Index the given packs from their trailers (see :meth:`adopt_unindexed_packs`);
        returns the number adopted and problems with unreadable ones."""
        adopted: list[IndexEntry] = []
        problems: list[str] = []
        count = 0
        for pack_id in sorted(pack_ids):
            try:
                adopted.extend(read_trailer(self.store, pack_id, self.envelope))
                count += 1
            except (IntegrityError, ObjectNotFound) as exc:
                problems.append(f"{pack_name(pack_id)}: {exc}")
        if adopted:
            self.write_index(adopted)
            self.index.add(adopted)
        return count, problems

    def delete_pack(self, pack_id: str) -> int:
        """Delete a pack from storage; returns its size (0 if it was already gone)."""
        name = pack_name(pack_id)
        try:
            size = self.store.size(name)
        except ObjectNotFound:
            return 0
        self.store.delete(name)
        return size


class BlobWriter:
    """Adds blobs to the repository: deduplicates, seals, packs, uploads.

    ``add`` seals a new blob (compression when it pays, encryption) in the calling
    thread and appends it to the open pack, then returns its id.  The backup engine
    calls it from its pool of reader threads, so sealing runs on every core with the
    GIL released, without a hand-off per blob.  Full packs are uploaded in the
    background, at most ``upload_threads`` at a time: an ``add`` that fills a pack
    waits for room, which bounds memory.  ``flush`` waits until every blob added so far
    is in an uploaded pack named by an uploaded index file.  Errors from the background
    raise from the next ``add`` or ``flush``.
    """

    def __init__(
        self,
        repo: Repository,
        *,
        upload_threads: int | None = None,
        pack_size: int = PACK_TARGET_SIZE,
        compression_level: int = 3,
    ) -> None:
        self.repo = repo
        # half the store's concurrency: each upload in flight holds a whole pack
        upload_threads = upload_threads or max(1, repo.io_threads // 2)
        self.pack_size = pack_size
        self.compression_level = compression_level
        self._upload_pool = ThreadPoolExecutor(upload_threads, thread_name_prefix="upload")
        self._lock = threading.Lock()
        self._uploads_in_flight = threading.BoundedSemaphore(upload_threads)
        self._known: set[bytes] = set()
        self._seal_buffers = threading.local()  # one reused buffer per adding thread
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
        try:
            sealed = self.repo.envelope.seal_into(
                self._seal_buffer(len(data)), kind, blob, data, level=self.compression_level
            )
        except BaseException:
            with self._lock:
                self._known.discard(blob)
            raise
        full = None
        with self._lock:
            self.new_blobs += 1
            self.new_raw_bytes += len(data)
            self.stored_bytes += len(sealed)
            if self._pack is None:
                self._pack = PackWriter(self.repo.envelope)
            self._pack.add(blob, kind, sealed, len(data))
            if self._pack.size >= self.pack_size:
                full, self._pack = self._pack, None
        sealed.release()
        if full is not None:
            self._submit_upload(full)
        return blob

    def _seal_buffer(self, size: int) -> bytearray:
        need = size + Envelope.OVERHEAD
        buffer = getattr(self._seal_buffers, "buffer", None)
        if buffer is None or len(buffer) < need:
            buffer = self._seal_buffers.buffer = bytearray(max(need, 1 << 20))
        return buffer

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
        try:
            data, entries = pack.finish()
            self.repo.store.put(pack_name(pack.pack_id), data)
            self.repo.write_index(entries)
            self.repo.index.add(entries)
            with self._lock:
                self.packs_written += 1
        except BaseException as exc:
            self._error = self._error or exc
        finally:
            self._uploads_in_flight.release()

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

    def close(self) -> None:
        self._upload_pool.shutdown(wait=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.flush()
        finally:
            self.close()
