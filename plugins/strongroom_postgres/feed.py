"""Reading a dump's table of contents out of the vault, without restoring the dump.

:func:`read_dump_toc` parses a dump's TOC through the point's seekable reader
(:meth:`strongroom.PointView.open`), which fetches only the chunks the reads touch: the
TOC sits at the start of the dump, so this costs a chunk or two (about 1 MiB each)
whatever the size of the database.  Whole dumps are streamed into ``pg_restore`` with
:meth:`strongroom.PointContext.write_stream` (:mod:`.restore`).
"""

from __future__ import annotations

import io

from strongroom import PointView

from .errors import DumpUnreadable
from .layout import DatabaseRecord, dump_entry
from .toc import ArchiveToc, DumpFormatError, read_toc

__all__ = ["read_dump_toc"]


def read_dump_toc(ctx: PointView, record: DatabaseRecord) -> tuple[ArchiveToc, int]:
    """The TOC of ``record``'s dump and the number of chunks fetched to read it."""
    reader = ctx.open(dump_entry(ctx, record))
    try:
        toc = read_toc(io.BufferedReader(reader, 256 * 1024))  # type: ignore[arg-type]
    except DumpFormatError as exc:
        raise DumpUnreadable(database=record.name, point=ctx.point.short_id, reason=str(exc)) from None
    return toc, reader.chunks_fetched
