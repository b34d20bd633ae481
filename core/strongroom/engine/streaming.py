"""Writing one entry's content, in order, to a binary stream (a pipe, a socket, a file).

:func:`stream_entry` fetches up to ``window`` chunks ahead in a thread pool, so that
storage latency, decryption and the consumer overlap; memory is bounded by the window
(chunks are at most the vault's maximum chunk size).  A consumer that goes away early
(a pipe whose reader exited) ends the stream quietly: the caller learns it from the
second value returned.  A chunk that fails authentication raises
:class:`~strongroom.errors.IntegrityError` before any of its bytes are written.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from ..catalog.entry import Entry
    from ..repository.repository import Repository

__all__ = ["WINDOW", "stream_entry"]

#: Chunks fetched ahead of the one being written.
WINDOW = 8


def stream_entry(repo: Repository, entry: Entry, out: BinaryIO, *,
                 progress: Callable[[int], None] | None = None, window: int = WINDOW) -> tuple[int, bool]:
    """Write ``entry``'s content to ``out``; returns (bytes written, whole stream written)."""
    written = 0
    chunks = iter(entry.spans(lambda chunk: repo.lookup(chunk).raw_length) if entry.chunk_size else
                  ((0, 0, chunk) for chunk in entry.chunks))

    def fetch(span: tuple[int, int, bytes]) -> bytes:
        _, length, chunk = span
        return repo.get_blob(chunk) if chunk else bytes(length)  # a hole of a disk image

    with ThreadPoolExecutor(max(1, min(window, repo.io_threads)), thread_name_prefix="stream") as pool:
        pending: collections.deque[Future] = collections.deque()
        for span in chunks:
            pending.append(pool.submit(fetch, span))
            if len(pending) >= window:
                break
        try:
            while pending:
                data = pending.popleft().result()
                following = next(chunks, None)
                if following is not None:
                    pending.append(pool.submit(fetch, following))
                out.write(data)
                written += len(data)
                if progress is not None:
                    progress(written)
        except BrokenPipeError:
            for future in pending:
                future.cancel()
            return written, False
    return written, True
