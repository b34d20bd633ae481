"""The repository: encrypted, compressed, content-addressed blobs in packs, and documents.

:class:`Repository` holds the store, the envelope and the in-memory index of one vault:
it seals and opens documents, loads index files into the index, reads and checks blobs,
and adopts packs that no index file names.  Blobs are added through a
:class:`~.blobwriter.BlobWriter` (:meth:`Repository.writer`); prune's copies and
deletions are :mod:`.maintenance`'s.

Write order makes crashes harmless: a pack is uploaded whole, then the index file that
names its blobs, and only then may a document (a recovery-point header) refer to them.
A pack that was uploaded but whose index file was never written (the process was
killed in between) is found again by :meth:`Repository.adopt_unindexed_packs`, which
reads the pack's own trailer, so the next backup reuses what was already uploaded.

What storage holds is not trusted before it is authenticated.  Listings go through
:meth:`Repository.list_names`, which leaves out foreign objects (names that are not the
vault's, :mod:`.names`) and remembers them in :attr:`Repository.foreign`.  Objects read
whole (documents, index files, packs for verify) are bounded before they are read
(:meth:`Repository.read_whole`): one ranged read of at most :data:`FIRST_READ` bytes and
one more; only an object larger than that, of a kind that may be larger (index files,
prune marks, packs: :mod:`.names`), has its size asked for and is read again whole.  An
object larger than its kind may hold is an IntegrityError naming it, costing at most
:data:`FIRST_READ` bytes of memory, never its own size; a name that is not of the kind
expected is one too, and is not read at all.

Data keys (format 3, :mod:`.datakeys`): the envelope writes with the vault's current
data key and opens objects sealed under any of its data keys, loading
``datakeys/<key id>`` the first time an object names a key it does not hold (a blob's
key id comes from its index entry).  Settings documents are always sealed with the
vault's first data key, so they open, and name the current data key, whatever has
happened to the others.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from ..errors import IntegrityError, ObjectNotFound
from ..models import time_id
from ..storage import Store, capabilities_of, direct_read_folder_of
from .blobid import blob_id as keyed_blob_id
from .blobwriter import BlobWriter
from . import datakeys
from .envelope import KIND_DOCUMENT, KIND_INDEX, Envelope, Scratch
from .index import Index
from .indexfile import DecodedIndex, decode_index, decode_index_columns, encode_index
from .masterkey import MasterKey
from .names import kind_of, vault_names
from .pack import IndexEntry, missing_pack, open_blob, pack_name, read_groups, read_trailer


#: From a local store, blobs of a pack are read this many bytes at a time (or one blob).
LOCAL_READ_SIZE = 1024 * 1024
#: Objects read whole are asked for with one ranged read of this many bytes (and one
#: more); only a larger one, where its kind allows more, costs a size request first.
FIRST_READ = 16 * 1024 * 1024


@contextmanager
def _mapper(threads: int) -> Iterator[Callable]:
    """``map`` over a pool of ``threads`` threads, or the plain ``map`` for one (small
    reads from a local store are quicker than starting threads)."""
    if threads <= 1:
        yield map
        return
    with ThreadPoolExecutor(threads) as pool:
        yield pool.map


#: Documents under these prefixes are sealed with the vault's first data key (see the
#: module docstring), whatever data key is current.
BASE_SEALED = ("settings/",)

#: At most this many entries go into one index file: a file of them stays far below the
#: envelope's limit for index files (256 MiB) whatever the entries' size.
INDEX_FILE_ENTRIES = 1_000_000


def index_object_name(index_id: str) -> str:
    return f"index/{index_id}"


def _size_text(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size} bytes"


class Repository:
    """Blobs, packs, index and encrypted documents on one store."""

    def __init__(self, store: Store, master: MasterKey, *, io_threads: int | None = None) -> None:
        self.store = store
        self.master = master
        self.envelope = Envelope(master.data_key.value, master.key_id, resolve=datakeys.resolver(self))
        self.index = Index()
        # storage operations in flight (uploads, pack reads): the store's own hint by
        # default, more for remote stores than for a local folder
        self.io_threads = io_threads or capabilities_of(store).concurrency
        self._id_key = master.id_key.value
        #: foreign objects met by :meth:`list_names` so far (never read, changed or deleted)
        self.foreign: set[str] = set()

    # --- names ---------------------------------------------------------------------------

    def list_names(self, prefix: str) -> list[str]:
        """The vault's objects whose names start with ``prefix``, in listing order;
        foreign objects there are left out and added to :attr:`foreign`."""
        return vault_names(self.store.list(prefix), self.foreign)

    def read_whole(self, name: str, expect: str) -> bytes:
        """The bytes of object ``name``, which must be a ``document`` (``expect``) or of
        the kind labelled ``expect``, read with at most one byte more than its kind may
        hold.  IntegrityError, without a read, for a foreign name or one of another
        kind; IntegrityError for a larger object (see the module docstring)."""
        kind = kind_of(name)
        if kind is None or kind.max_size is None or not (kind.document if expect == "document" else kind.label == expect):
            article = "an" if expect[0] in "aeiou" else "a"
            raise IntegrityError(what=name, reason=f"not {article} {expect} of this vault (a foreign object); not read")
        limit = kind.max_size
        first = min(limit, FIRST_READ)
        data = self.store.get_range(name, 0, first + 1)
        if len(data) <= first:
            return data  # the whole object, with one request: nearly always
        # larger than most objects: its size decides (a request more) before it is read
        size = self.store.size(name) if limit > first else limit + 1
        if size <= limit:
            data = self.store.get_range(name, 0, size + 1)  # +1: it may have grown since
        if size > limit or len(data) > limit:
            raise IntegrityError(
                what=name, reason=f"larger than {_size_text(limit)}, the limit for its kind ({kind.label}); not read"
            )
        return data

    # --- ids and documents -------------------------------------------------------------

    def blob_id(self, data: bytes | memoryview, *, threaded: bool = True) -> bytes:
        """The id of ``data`` (:func:`.blobid.blob_id`; ``threaded=False``: hashed in the
        calling thread only)."""
        return keyed_blob_id(self._id_key, data, threaded=threaded)

    def put_document(self, name: str, doc: dict | list) -> None:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        envelope = self.envelope.base() if name.startswith(BASE_SEALED) else self.envelope
        self.store.put(name, envelope.seal(KIND_DOCUMENT, name.encode(), raw))

    def get_document(self, name: str) -> dict:
        """The document stored as ``name``: IntegrityError if it is not a vault name,
        too large (see the module docstring), fails authentication or is not JSON."""
        sealed = self.read_whole(name, "document")
        raw = self.envelope.open(sealed, name.encode(), kind=KIND_DOCUMENT)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested beyond the parser's depth
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
        return self.load_index_files(self.list_names("index/"), tolerant=tolerant)

    def write_index(self, entries: list[IndexEntry]) -> list[str]:
        """Write ``entries`` as index files of at most :data:`INDEX_FILE_ENTRIES` entries
        each (so none outgrows the envelope's limit); returns their names."""
        names = []
        for start in range(0, max(len(entries), 1), INDEX_FILE_ENTRIES):
            name = index_object_name(time_id())
            part = encode_index(entries[start:start + INDEX_FILE_ENTRIES], default_key=self.envelope.base_key_id)
            self.store.put(name, self.envelope.seal(KIND_INDEX, name.encode(), part))
            names.append(name)
        return names

    def pack_ids_on_storage(self) -> set[str]:
        """The ids of the packs on storage (foreign objects under ``data/`` left out)."""
        return {name.rsplit("/", 1)[-1] for name in self.list_names("data/")}

    def adopt_unindexed_packs(self) -> tuple[int, list[str]]:
        """Index packs that exist on storage but in no index file (an interrupted backup),
        as :meth:`adopt_packs` does."""
        return self.adopt_packs(self.pack_ids_on_storage() - self.index.named_pack_ids())

    def adopt_packs(self, pack_ids: Iterable[str]) -> tuple[int, list[str]]:
        """Index the given packs from their trailers, with one new index file.

        Returns the number of packs adopted and problems with packs whose trailer is
        unreadable (left alone: verify reports them).
        """
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

    # --- reading blobs -----------------------------------------------------------------

    def lookup(self, blob: bytes) -> IndexEntry:
        entry = self.index.lookup(blob)
        if entry is None:
            raise IntegrityError(what=f"blob {blob.hex()[:16]}", reason="not found in any index")
        return entry

    def open_blob(
        self, entry: IndexEntry, sealed: bytes | memoryview, *, scratch: Scratch | None = None,
        threaded: bool = True,
    ) -> bytes | memoryview:
        """Decrypt one blob and check that its content hashes to its id (with ``scratch``,
        see :meth:`Envelope.open`; ``threaded=False`` hashes in the calling thread only,
        for callers whose own threads keep the cores busy)."""
        return open_blob(self.envelope, self._id_key, entry, sealed, scratch=scratch, threaded=threaded)

    def get_blob(self, blob: bytes) -> bytes:
        return self.read_blob(self.lookup(blob))

    def read_blob(self, entry: IndexEntry) -> bytes | memoryview:
        """The content of the blob ``entry`` names, read from its pack and opened;
        IntegrityError if its pack is not in storage or the blob is damaged."""
        try:
            sealed = self.store.get_range(pack_name(entry.pack_id), entry.offset, entry.length)
        except ObjectNotFound:
            raise missing_pack(entry.pack_id) from None
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
        Blobs are hashed in the calling thread only (readers run one per core).
        """
        for part, data in self.read_pack_ranges(pack_id, entries):
            if isinstance(data, IntegrityError):
                for entry in part:
                    yield entry, data
                continue
            start = part[0].offset
            for entry in part:
                sealed = data[entry.offset - start : entry.offset - start + entry.length]
                try:
                    yield entry, self.open_blob(entry, sealed, scratch=scratch, threaded=False)
                except IntegrityError as exc:
                    yield entry, exc

    def read_pack_ranges(
        self, pack_id: str, entries: list[IndexEntry]
    ) -> Iterator[tuple[list[IndexEntry], memoryview | IntegrityError]]:
        """The sealed bytes of the given blobs of one pack, as :meth:`read_pack_blobs`
        reads them: ``(entries, data)`` for each range read, in pack order, ``data``
        starting at the first entry's offset; for a pack missing from storage, the
        entries not read yet with an IntegrityError."""
        entries = sorted(entries, key=lambda e: e.offset)
        name = pack_name(pack_id)
        for first, last, start, end in read_groups(entries, self.read_limit):
            try:
                data = memoryview(self.store.get_range(name, start, end - start))
            except ObjectNotFound:
                yield entries[first:], missing_pack(pack_id)
                return
            yield entries[first:last], data

    @property
    def read_limit(self) -> int | None:
        """The most bytes one ranged read of a pack spans (:func:`~.pack.read_groups`):
        :data:`LOCAL_READ_SIZE` from a local store, no limit from a remote one."""
        return None if capabilities_of(self.store).remote else LOCAL_READ_SIZE

    def pack_file(self, pack_id: str) -> str | None:
        """The local file that is pack ``pack_id``, for a reader in another process; None
        unless the store is a plain local folder (:func:`~strongroom.storage.direct_read_folder_of`)."""
        folder = direct_read_folder_of(self.store)
        return None if folder is None else os.path.join(folder, pack_name(pack_id))

    def writer(self, **kwargs) -> BlobWriter:
        """A new :class:`~.blobwriter.BlobWriter` adding blobs to this repository."""
        return BlobWriter(self, **kwargs)

    # --- index files by name: refreshes, prune, and backups that run beside one -------

    def read_index_files(self, names: Iterable[str]) -> list[tuple[str, list[IndexEntry] | IntegrityError]]:
        """The entries of each named index file, as stored, in the order given.

        A file deleted meanwhile (replaced by a prune) gives no entries; a damaged one
        gives its IntegrityError instead of entries.
        """
        names = list(names)

        def read(name: str) -> list[IndexEntry] | IntegrityError:
            try:
                sealed = self.read_whole(name, "index file")
                return decode_index(self.envelope.open(sealed, name.encode(), kind=KIND_INDEX))
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
                sealed = self.read_whole(name, "index file")
                plain = self.envelope.open(sealed, name.encode(), kind=KIND_INDEX)
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
        joined = DecodedIndex.join(loaded)
        loaded.clear()  # each file's arrays freed before the index copies the joined ones
        self.index.add_decoded(joined)
        return problems
