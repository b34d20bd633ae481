"""Random access to the content of one entry of a recovery point.

:class:`ContentReader` is a seekable, read-only binary file object over an entry's
chunks (holes of disk images read as zeros without any request).  It fetches only the
chunks a read touches (each one ranged request) and keeps
a few recently used chunks, so an item-level reader (a file system inside a disk
image) reads a few MiB of a large entry, not all of it.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import TYPE_CHECKING

from .entry import Entry
from .seekable import SeekableReader

if TYPE_CHECKING:
    from ..repository.repository import Repository


class ContentReader(SeekableReader):
    def __init__(self, repo: "Repository", entry: Entry, *, cache_chunks: int = 8,
                 packs: set[str] | None = None) -> None:
        super().__init__()
        self._repo = repo
        self._packs = packs  # the ids of the packs chunks were fetched from (shared by a context's readers)
        spans = list(entry.spans(lambda chunk: repo.lookup(chunk).raw_length))
        self._chunks = [chunk for _, _, chunk in spans]
        self._starts = [offset for offset, _, _ in spans]
        self._lengths = [length for _, length, _ in spans]
        self.size = spans[-1][0] + spans[-1][1] if spans else (entry.size if entry.chunk_size else 0)
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_chunks = cache_chunks
        self.chunks_fetched = 0

    def _chunk(self, index: int) -> bytes:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if not self._chunks[index]:  # a hole of a disk image
            return bytes(self._lengths[index])
        data = self._repo.get_blob(self._chunks[index])
        self.chunks_fetched += 1
        if self._packs is not None:
            self._packs.add(self._repo.lookup(self._chunks[index]).pack_id)
        self._cache[index] = data
        if len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self._pos))
        done = 0
        while done < wanted:
            index = bisect.bisect_right(self._starts, self._pos) - 1
            chunk = self._chunk(index)
            inner = self._pos - self._starts[index]
            n = min(wanted - done, len(chunk) - inner)
            view[done : done + n] = chunk[inner : inner + n]
            done += n
            self._pos += n
        return done
