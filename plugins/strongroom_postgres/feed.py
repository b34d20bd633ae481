"""Reading dumps back out of the vault: the TOC alone, or the whole stream in order.

:func:`read_dump_toc` parses a dump's table of contents through a
:class:`~strongroom.catalog.reader.ContentReader`, which fetches only the chunks the
reads touch: the TOC sits at the start of the dump, so this costs a chunk or two
(about 1 MiB each) whatever the size of the database.

:func:`stream_entry` writes an entry's content, in order, to a pipe (``pg_restore``'s
standard input), fetching up to ``window`` chunks ahead in a thread pool so that
storage latency, decryption and the restoring server overlap.  Memory is bounded by
the window (chunks are 8 MiB at most).  A reader that goes away early (``pg_restore``
stopping on an error) ends the stream quietly; its exit status tells what happened.
"""

from __future__ import annotations

import collections
import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO, Callable

from strongroom.catalog.reader import ContentReader
from strongroom.errors import DumpUnreadable

from .layout import DatabaseRecord, dump_entry
from .toc import ArchiveToc, DumpFormatError, read_toc

if TYPE_CHECKING:
    from strongroom.catalog.entry import Entry
    from strongroom.repository.repository import Repository
    from strongroom.workload import PointContext

WINDOW = 8


def read_dump_toc(ctx: "PointContext", record: DatabaseRecord) -> tuple[ArchiveToc, int]:
    """The TOC of ``record``'s dump and the number of chunks fetched to read it."""
    reader = ContentReader(ctx.repo, dump_entry(ctx, record))
    try:
        toc = read_toc(io.BufferedReader(reader, 256 * 1024))  # type: ignore[arg-type]
    except DumpFormatError as exc:
        raise DumpUnreadable(database=record.name, point=ctx.point.short_id, reason=str(exc)) from None
    return toc, reader.chunks_fetched


def stream_entry(repo: "Repository", entry: "Entry", out: BinaryIO, *,
                 progress: Callable[[int], None] | None = None, window: int = WINDOW) -> tuple[int, bool]:
    """Write ``entry``'s content to ``out``; returns (bytes written, whole stream written)."""
    written = 0
    chunks = iter(entry.chunks)
    with ThreadPoolExecutor(max(1, min(window, repo.io_threads)), thread_name_prefix="pg-feed") as pool:
        pending: collections.deque[Future] = collections.deque()
        for chunk in chunks:
            pending.append(pool.submit(repo.get_blob, chunk))
            if len(pending) >= window:
                break
        try:
            while pending:
                data = pending.popleft().result()
                following = next(chunks, None)
                if following is not None:
                    pending.append(pool.submit(repo.get_blob, following))
                out.write(data)
                written += len(data)
                if progress is not None:
                    progress(written)
        except BrokenPipeError:
            for future in pending:
                future.cancel()
            return written, False
    return written, True
