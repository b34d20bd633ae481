"""What a workload is given: :class:`BackupContext` for a backup, :class:`PointContext`
for browse and restore.

Contexts hand a workload what it may do, as methods, and nothing else: the repository,
the engine and the vault stay behind them.  Both are made by the vault for one operation
and are not to be kept after it.

- :class:`PointView` reads one recovery point: its tree (``lookup``, ``listdir``,
  ``walk``) and the content of any entry as a seekable, read-only file object that
  fetches only the chunks a read touches (``open``, ``read_bytes``).
- :class:`PointContext` (browse and restore) adds the ways to write a point out:
  ``restore_paths`` (the engine's restorer: each pack read once, sparse files, metadata,
  never outside the target), ``write_stream`` (one entry's content, in order, into a
  pipe), ``write_entries`` (files a workload found itself, such as files inside a disk
  image, through the same safe writer) and ``report_progress``.
- :class:`BackupContext` (backup) gives the item, a view of the item's latest point
  (``parent``), ``warn`` for what could not be backed up, ``consistency`` for a
  workload that learns during the backup how consistent the point is,
  ``vault_location``, the vault's own local folder, which a backup leaves out, and
  ``progress(total=, bytes=)``, how a workload with large streams (a dump, a disk)
  tells the progress display what to expect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator, Sequence

from .catalog.entry import Entry
from .catalog.tree import normalize_path
from .errors import PathNotInPoint

if TYPE_CHECKING:
    from .catalog.seekable import SeekableReader
    from .catalog.tree import TreeReader
    from .results import RestoreResult, RestoreStats
    from .models import ProtectedItem, RecoveryPoint
    from .repository.repository import Repository

__all__ = ["BackupContext", "PointContext", "PointView"]


class PointView:
    """Read access to one recovery point of an item."""

    def __init__(self, item: ProtectedItem, point: RecoveryPoint, repo: Repository, tree: TreeReader) -> None:
        self.item = item
        self.point = point
        self._repo = repo
        self._tree = tree
        self._packs_fetched: set[str] = set()  # by the readers ``open`` gave (a restore's "fetched")

    def lookup(self, path: str) -> Entry | None:
        """The entry at ``path`` (None for the top of the point);
        :class:`~strongroom.errors.PathNotInPoint` if there is none."""
        return self._tree.lookup(path)

    def exists(self, path: str) -> bool:
        """Whether the point has an entry at ``path``."""
        try:
            self._tree.lookup(path)
        except PathNotInPoint:
            return False
        return True

    def listdir(self, path: str = "") -> list[Entry]:
        """The entries of the folder at ``path`` (the entry itself if it is not a folder)."""
        return self._tree.listdir(path)

    def walk(self, path: str = "") -> Iterator[tuple[str, Entry]]:
        """Every entry at and below ``path``, pre-order, with its point path."""
        return self._tree.walk(path)

    def open(self, what: str | Entry) -> SeekableReader:
        """A seekable, read-only binary file object over the content of an entry (a
        path of the point, or an entry from :meth:`lookup`).  Only the chunks that reads
        touch are fetched; a chunk that fails authentication raises
        :class:`~strongroom.errors.IntegrityError`, never returns wrong bytes."""
        from .catalog.reader import ContentReader

        entry = self._entry(what)
        return ContentReader(self._repo, entry, packs=self._packs_fetched)

    def read_bytes(self, what: str | Entry) -> bytes:
        """The whole content of a (small) entry."""
        with self.open(what) as reader:
            return reader.read()

    def _entry(self, what: str | Entry) -> Entry:
        if isinstance(what, Entry):
            entry: Entry | None = what
            shown = what.name
        else:
            shown = normalize_path(what)
            entry = self._tree.lookup(shown)
        if entry is None or not entry.has_content:
            raise PathNotInPoint(path=shown, point=self.point.short_id)
        return entry


class PointContext(PointView):
    """Given to :meth:`Workload.browse` and :meth:`Workload.restore`."""

    def __init__(self, item: ProtectedItem, point: RecoveryPoint, repo: Repository, tree: TreeReader,
                 progress: Callable[[RestoreStats], None] | None = None, *,
                 overwrite: str | None = None) -> None:
        super().__init__(item, point, repo, tree)
        self._progress = progress
        self._throttled: Callable[[RestoreStats], None] | None = None
        self._overwrite = overwrite or "always"

    def restore_paths(self, target: str, paths: Sequence[str] = (), *,
                      restore_owner: bool | None = None, overwrite: str | None = None) -> RestoreResult:
        """Write ``paths`` of the point (all of it when empty) under the folder
        ``target``, at their point paths, as files with their metadata.

        Each pack is read once, files keep their holes, hard links are linked, and
        nothing is ever written outside ``target``.  Files whose data is damaged, and
        folders whose tree node is, are not written and are listed in the result's
        ``errors``; everything else is written.  ``restore_owner`` defaults to running
        as root.  ``overwrite`` (``always``, ``if-newer``, ``never``; default: the
        restore command's ``--overwrite``) decides about what already exists in the
        target; a folder that is not empty is never removed.  What the target refuses
        (a path in the way, a write that fails, a full disk) raises a
        :class:`~strongroom.errors.TargetError` naming it, once everything else is
        written (a full disk stops the restore at once); a file not written completely
        is removed.
        """
        from .engine.restore import Restorer

        return Restorer(self._repo, self._tree, target, restore_owner=restore_owner,
                        overwrite=overwrite or self._overwrite, progress=self._progress).run(paths)

    def write_stream(self, what: str | Entry, out: BinaryIO, *,
                     progress: Callable[[int], None] | None = None) -> tuple[int, bool]:
        """Write an entry's content, in order, to ``out`` (a pipe into a tool, say),
        fetching chunks ahead.  Returns (bytes written, whether all was written: False
        when the reader of a pipe went away).  ``progress(bytes_written)`` is called
        after each chunk."""
        from .engine.streaming import stream_entry

        return stream_entry(self._repo, self._entry(what), out, progress=progress)

    def write_entries(self, target: str, entries: Iterable[tuple[str, Entry, Iterable[bytes] | None]]) -> RestoreResult:
        """Write ``(relpath, entry, content)`` triples that the workload reads itself
        under ``target``: folders, symbolic links and files (``content``: byte strings
        in order), with their metadata, never outside ``target``, deciding about what
        exists as :meth:`restore_paths` does (:func:`strongroom.engine.extract.write_entries`).
        The result's ``packs_read`` counts the packs that the readers of :meth:`open` fetched
        chunks from (the data read to find and read the entries), and ``seconds`` the time
        from the first entry asked for to the last written."""
        from .engine.extract import write_entries

        result = write_entries(target, entries, progress=self.report_progress, overwrite=self._overwrite)
        result.stats.packs_read = len(self._packs_fetched)
        return result

    def report_progress(self, stats: RestoreStats) -> None:
        """Show ``stats`` as the restore's progress (throttled: call it as often as you like)."""
        if self._progress is None:
            return
        if self._throttled is None:
            from .engine.progress import Throttled

            self._throttled = Throttled(self._progress)
        self._throttled(stats)


class BackupContext:
    """Given to :meth:`Workload.backup`: the item, its latest point, warnings, consistency.

    ``parent`` reads the item's latest point (None for its first backup): a workload
    finds there what it recorded last time (a manifest, a checkpoint's name).
    ``warn(message)`` records something that could not be backed up; the point is made
    and the backup ends with warnings.  A workload that learns during the backup how
    consistent the point is (a guest froze its file systems, or did not) sets
    ``consistency``; it goes into the point header instead of the workload's default.
    ``vault_location`` is the local folder that holds the vault (None when the vault is
    not in a local folder): a workload that reads local files leaves it out of the
    backup, with a warning, rather than back the vault up into itself.
    """

    def __init__(self, item: ProtectedItem, parent: PointView | None = None, *,
                 vault_location: str | None = None) -> None:
        self.item = item
        self.parent = parent
        self.vault_location = vault_location
        self.warnings: list[str] = []
        self.consistency: str | None = None
        self._progress: Callable[..., None] | None = None  # set by the backup (the engine's)

    def warn(self, message: str) -> None:
        """Record a warning for the point (one line: what and why)."""
        self.warnings.append(message)

    def progress(self, *, total: int | None = None, bytes: int | None = None) -> None:
        """Tell the backup's progress display about the workload's own work (call it as
        often as you like; the display is throttled).

        ``total``: an estimate of the bytes the whole backup reads, when the workload
        knows one before its streams are read (the size of the databases it dumps, the
        virtual size of the disks); the display shows the larger of it and what the
        entries found so far as the total, so percent and ETA move while one stream is
        read.  ``bytes``: the bytes the workload has read so far *on its own* (not
        through the entries it yields: the engine counts those itself), in all.
        A value left out keeps the last one given.  Without a display this does nothing.
        """
        if self._progress is not None:
            self._progress(total=total, bytes=bytes)
