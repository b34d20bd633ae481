"""The workload interface: what a plugin implements to protect one kind of source.

A workload is a class registered by name (``registry.add("files", FilesWorkload)``).
The vault makes an instance for each operation and calls:

- :meth:`Workload.protect_params` / :meth:`Workload.source_from_options` to build the
  ``strongroom protect NAME ITEM ...`` command and turn its options into a source;
- :meth:`Workload.validate_source` when an item is protected (raise
  :class:`~strongroom.errors.InvalidSource` or :class:`~strongroom.errors.SourceError`);
- :meth:`Workload.backup` to produce the source entries of a new recovery point
  (:mod:`strongroom.sources`);
- :meth:`Workload.browse` and :meth:`Workload.restore` for whole and item-level restore,
  with a :class:`~strongroom.contexts.PointContext` that reads the point.

The defaults of ``browse`` and ``restore`` work on the point's tree, so a workload
whose backup yields file-like entries gets both for free.  ``docs/plugins.md`` ("Writing
a workload") walks through a complete one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, ContextManager, Iterable, Sequence

import attrs

from .catalog.entry import DIR, Entry
from .catalog.tree import normalize_path
from .errors import UsageError

if TYPE_CHECKING:
    import click

    from .contexts import BackupContext, PointContext
    from .results import RestoreResult
    from .sources import SourceEntry

__all__ = ["BrowseItem", "Workload"]


@attrs.frozen
class BrowseItem:
    """One row of ``strongroom browse``: a file, a folder, a database, a table, a partition...

    ``type`` is free text for the workload (``file``, ``dir``, ``database``, ``table``,
    ``partition``); ``path`` is what to pass to browse or restore to go deeper or to
    select this item.  Fields that do not apply stay None.
    """

    path: str
    name: str
    type: str
    size: int | None = None
    mode: int | None = None
    owner: str = ""
    mtime_ns: int | None = None
    target: str = ""
    detail: str = ""

    @classmethod
    def from_entry(cls, path: str, entry: Entry) -> BrowseItem:
        return cls(
            path=path, name=entry.name, type=entry.type,
            size=None if entry.type == "dir" else entry.size, mode=entry.mode,
            owner=f"{entry.user or entry.uid}:{entry.group or entry.gid}",
            mtime_ns=entry.mtime_ns, target=entry.target,
        )

    def to_dict(self) -> dict:
        return attrs.asdict(self)


class Workload:
    """Base class of workloads; subclasses set ``name`` and implement ``backup``."""

    #: the name items of this workload are protected under (``strongroom protect NAME``)
    name: ClassVar[str] = ""
    #: one line for ``strongroom protect --help``
    description: ClassVar[str] = ""
    #: the consistency of a point unless the backup says otherwise (crash, file-system,
    #: application)
    consistency: ClassVar[str] = "crash"

    def protect_params(self) -> list[click.Parameter]:
        """click options of ``strongroom protect NAME ITEM``."""
        return []

    def source_from_options(self, options: dict[str, Any]) -> dict:
        """Turn the parsed options of ``protect NAME`` into the item's source document."""
        return dict(options)

    def validate_source(self, source: dict) -> dict:
        """Check and normalise a source; return what is stored in the item.

        Raise :class:`~strongroom.errors.InvalidSource` (one line: what is wrong) for a
        source that cannot be protected.
        """
        return source

    def restore_params(self) -> list[click.Parameter]:
        """Extra click options of ``strongroom restore`` for points of this workload.

        Every workload's options are added to the one ``restore`` command (names must not
        clash); their values reach :meth:`restore` in ``options``.
        """
        return []

    def describe(self, source: dict) -> str:
        """One line describing the source, for ``strongroom items``."""
        return ", ".join(f"{k}={v}" for k, v in sorted(source.items()))

    def backup(self, ctx: BackupContext) -> Iterable[SourceEntry] | ContextManager[Iterable[SourceEntry]]:
        """The source entries of a new point, in pre-order (a folder before its contents,
        a folder's subtree before its next sibling).

        ``ctx.item.source`` is the validated source; ``ctx.parent`` reads the item's
        latest point (None for the first backup); ``ctx.warn`` records what could not
        be backed up.  Return (or be a generator of) an iterable of entries; or, when
        something must stay up until every entry's content has been read (a snapshot, a
        copy, a quiesced service), a context manager whose ``__enter__`` returns the
        entries and whose ``__exit__`` releases it: the vault exits it once the engine
        has read everything (or failed).  A plain generator's ``finally`` runs as soon as
        the engine has taken the last entry, while streams opened for earlier entries
        may still be being read.
        """
        raise NotImplementedError(f"workload {self.name!r} does not implement backup")

    def browse(self, ctx: PointContext, path: str) -> list[BrowseItem]:
        """List ``path`` of the point (default: the entries of the point's tree)."""
        path = normalize_path(path)
        entry = ctx.lookup(path)
        if entry is not None and entry.type != DIR:
            return [BrowseItem.from_entry(path, entry)]
        return [
            BrowseItem.from_entry(f"{path}/{child.name}" if path else child.name, child)
            for child in ctx.listdir(path)
        ]

    def restore(
        self, ctx: PointContext, target: str | None, paths: Sequence[str], options: dict[str, Any]
    ) -> RestoreResult:
        """Restore the point (or only ``paths`` of it) under the folder ``target``.

        ``options`` holds the values of every workload's :meth:`restore_params` (None
        when not given).  The default writes the point's tree as files and needs a target.
        """
        if not target:
            raise UsageError(message=f"restoring a {self.name} point needs --target DIR")
        return ctx.restore_paths(target, paths)
