"""What a folder of the backup walk holds while its children are being read.

An :class:`OpenDir` keeps one *slot* per child, in the order the workload yielded them.
A slot is one of:

- an :class:`~strongroom.catalog.entry.Entry`, known at once (a link, a special file, a
  file unchanged since the parent point);
- a :class:`~concurrent.futures.Future` of the reader pool, whose result is the entry of
  a file (or None: the file was left out);
- an :class:`InBatch`, a small file read in a :class:`Batch` with others (done when
  its batch's task has ended: :meth:`Batch.finished` is its future's done callback);
- a :class:`Reused`, a file the same as in the parent point: its entry is built only if
  the folder's node must be written anew;
- a :class:`HardLink`, a hardlink whose content is that of an earlier slot;
- an :class:`OpenDir`, a subfolder, whose ``result`` is set when it becomes a tree node.

Promises: :func:`is_done` and :func:`is_ready` never block; :func:`resolve` blocks until
the slot's entry is known and re-raises a reader's error.  Nothing here reads or writes
storage.
"""

from __future__ import annotations

from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any

from ..catalog.entry import Entry, with_content
from ..catalog.tree import row_dict

if TYPE_CHECKING:
    from ..sources import SourceEntry

__all__ = ["Batch", "HardLink", "InBatch", "OpenDir", "Reused", "is_done", "is_ready", "resolve"]


class OpenDir:
    """A folder of the walk: its entry (None for the root), the slots of its children,
    and once it is closed, the parent point's node of it to compare them with
    (``parent_node``: ``(tree_id, stored rows)``, see
    :meth:`~.parentfolders.ParentFolders.compared`)."""

    __slots__ = ("path", "entry", "slots", "result", "checked", "parent_node")

    def __init__(self, path: str, entry: Entry | None) -> None:
        self.path = path
        self.entry = entry
        self.slots: list = []
        self.result: Entry | None = None
        self.checked = 0  # leading slots known to be complete
        self.parent_node: tuple[bytes | None, dict[str, dict] | None] = (None, None)


class HardLink:
    """A hardlink whose content is the content of an earlier slot."""

    __slots__ = ("entry", "first")

    def __init__(self, entry: Entry, first: object) -> None:
        self.entry = entry
        self.first = first


class Reused:
    """A file the same as in the parent point: ``entry`` as scanned (no chunks), ``row``
    the parent's entry as stored (a typed row, :func:`~strongroom.catalog.tree.decode_tree_rows`,
    whose ``chunks`` are checked chunk ids in hex), equal to ``entry`` but for its chunks.
    ``entry`` is None for a file of a :class:`~strongroom.sources.FileRun`, whose fields
    were compared as they came: :func:`resolve` then makes the entry of the row."""

    __slots__ = ("entry", "row")

    def __init__(self, entry: Entry | None, row: Any) -> None:
        self.entry = entry
        self.row = row


class Batch:
    """Small files read, one after the other, by one task of the reader pool.

    ``done`` and ``results`` (or ``error``) are set by :meth:`finished`, the future's
    done callback, once the task has ended: the walk asks whether a batch is done once
    per entry it scans while a closed folder waits, and a folder of small files has a
    slot per file in a handful of batches, so these are plain attributes, read without
    the future's lock (``Future.done`` and ``Future.result`` take it on every call).
    The batch then lets its future go: the future holds the callback, and so the batch,
    and a cycle would keep every batch (its sources and entries) until a full
    collection."""

    __slots__ = ("sources", "bytes", "rows", "future", "done", "results", "error")

    def __init__(self) -> None:
        self.sources: list[SourceEntry] = []
        self.bytes = 0
        self.rows = 0  # the entries of the folders closed while the batch was being filled
        self.future: Future | None = None  # set when the batch is submitted, dropped when done
        self.done = False
        self.results: list[Entry | None] | None = None
        self.error: BaseException | None = None  # the task's, if it failed

    def finished(self, future: Future) -> None:
        """The done callback of the batch's future (see the class docstring)."""
        if future.cancelled():
            self.error = CancelledError()
        else:
            self.error = future.exception()
            if self.error is None:
                self.results = future.result()
        self.done = True
        self.future = None

    def entries(self) -> list[Entry | None]:
        """The entries the task made, waiting for it; its error if it failed."""
        results = self.results
        if results is None:
            future = self.future
            if future is not None:  # not done yet (or its callback not run yet)
                return future.result()
            results = self.results  # the callback ran meanwhile
            if results is None:
                raise self.error  # type: ignore[misc]
        return results


class InBatch:
    """The slot of a file read in a batch: its entry is ``batch.future.result()[i]``."""

    __slots__ = ("batch", "i")

    def __init__(self, batch: Batch, i: int) -> None:
        self.batch = batch
        self.i = i


def is_done(slot: object) -> bool:
    """Whether ``slot``'s entry is known (or its reader failed); a subfolder's once it
    is a tree node (its ``result`` set)."""
    kind = type(slot)
    if kind is InBatch:  # most slots of a tree of small files
        return slot.batch.done  # type: ignore[attr-defined]
    if isinstance(slot, Future):
        return slot.done()
    if kind is HardLink:
        return is_done(slot.first)  # type: ignore[attr-defined]
    if kind is OpenDir:
        return slot.result is not None  # type: ignore[attr-defined]
    return True


def is_ready(directory: OpenDir) -> bool:
    """Whether every slot of ``directory`` is done (slots found done are not checked again)."""
    slots = directory.slots
    for i in range(directory.checked, len(slots)):
        slot = slots[i]
        if type(slot) is InBatch:
            if slot.batch.done:
                continue
        elif type(slot) is Reused or type(slot) is Entry or is_done(slot):
            continue
        directory.checked = i
        return False
    directory.checked = len(slots)
    return True


def resolve(slot: object) -> Entry | None:
    """The entry of ``slot``, waiting for its reader; None for a file left out."""
    if type(slot) is InBatch:
        return slot.batch.entries()[slot.i]  # type: ignore[attr-defined]
    if isinstance(slot, Future):
        return slot.result()
    if isinstance(slot, OpenDir):
        return slot.result
    if isinstance(slot, Reused):
        entry = slot.entry
        if entry is None:  # equal to the row in every field: the row's own entry, checked
            return Entry.from_dict(row_dict(slot.row), what="a file's row of the parent point")
        return with_content(entry, tuple(bytes.fromhex(c) for c in slot.row.chunks), entry.size)
    if isinstance(slot, HardLink):
        first = resolve(slot.first)
        if first is None:
            return None
        return with_content(slot.entry, first.chunks, first.size)
    return slot  # type: ignore[return-value]
