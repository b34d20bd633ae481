"""The workload interface: what a plugin implements to protect one kind of source.

A workload is a class registered by name (``registry.add("files", FilesWorkload)``).
The vault instantiates it for each operation and calls:

- :meth:`Workload.protect_params` / :meth:`Workload.source_from_options` to build the
  ``strongroom protect NAME ITEM ...`` command and turn its options into a source;
- :meth:`Workload.validate_source` when an item is protected (raise
  :class:`~strongroom.errors.InvalidSource` or :class:`~strongroom.errors.SourceError`);
- :meth:`Workload.backup` to produce the entries of a new recovery point;
- :meth:`Workload.browse` and :meth:`Workload.restore` for whole and item-level restore.

The defaults of ``browse`` and ``restore`` work on the point's tree, so a workload
whose backup yields file-like entries gets both for free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Sequence

import attrs

from .catalog.entry import Entry

if TYPE_CHECKING:
    import click

    from .catalog.tree import TreeReader
    from .engine.backup import SourceEntry
    from .engine.restore import RestoreResult
    from .models import ProtectedItem, RecoveryPoint
    from .repository.repository import Repository
    from .vault import Vault


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
    def from_entry(cls, path: str, entry: Entry) -> "BrowseItem":
        return cls(
            path=path, name=entry.name, type=entry.type,
            size=None if entry.type == "dir" else entry.size, mode=entry.mode,
            owner=f"{entry.user or entry.uid}:{entry.group or entry.gid}",
            mtime_ns=entry.mtime_ns, target=entry.target,
        )

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.define
class BackupContext:
    """Given to :meth:`Workload.backup`: the vault, the item, and a list for warnings.

    A workload that learns during the backup how consistent the point is (a guest
    froze its file systems, or did not) sets ``consistency``; it goes into the point
    header instead of the workload's class default.
    """

    vault: "Vault"
    item: "ProtectedItem"
    warnings: list[str] = attrs.field(factory=list)
    consistency: str | None = None


@attrs.frozen
class PointContext:
    """Given to browse and restore: the vault, item, point and the point's tree."""

    vault: "Vault"
    item: "ProtectedItem"
    point: "RecoveryPoint"
    repo: "Repository"
    tree: "TreeReader"
    progress: Any = None


class Workload:
    """Base class of workloads; subclasses set ``name`` and implement ``backup``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    consistency: ClassVar[str] = "crash"

    def protect_params(self) -> list["click.Parameter"]:
        """click options of ``strongroom protect NAME ITEM``."""
        return []

    def source_from_options(self, options: dict[str, Any]) -> dict:
        """Turn the parsed options of ``protect NAME`` into the item's source document."""
        return dict(options)

    def validate_source(self, source: dict) -> dict:
        """Check and normalise a source; return what is stored in the item."""
        return source

    def restore_params(self) -> list["click.Parameter"]:
        """Extra click options of ``strongroom restore`` for points of this workload.

        Every workload's options are added to the one ``restore`` command (names must not
        clash); their values reach :meth:`restore` in ``options``.
        """
        return []

    def describe(self, source: dict) -> str:
        """One line describing the source, for ``strongroom items``."""
        return ", ".join(f"{k}={v}" for k, v in sorted(source.items()))

    def backup(self, ctx: BackupContext) -> Iterable["SourceEntry"]:
        """Yield the entries of a new point in pre-order (a directory before its
        contents, a directory's subtree before its next sibling)."""
        raise NotImplementedError(f"workload {self.name!r} does not implement backup")

    def browse(self, ctx: PointContext, path: str) -> list[BrowseItem]:
        """List ``path`` of the point (default: the entries of the point's tree)."""
        from .catalog.entry import DIR
        from .catalog.tree import normalize_path

        path = normalize_path(path)
        entry = ctx.tree.lookup(path)
        if entry is not None and entry.type != DIR:
            return [BrowseItem.from_entry(path, entry)]
        return [
            BrowseItem.from_entry(f"{path}/{child.name}" if path else child.name, child)
            for child in ctx.tree.listdir(path)
        ]

    def restore(
        self, ctx: PointContext, target: str | None, paths: Sequence[str], options: dict[str, Any]
    ) -> "RestoreResult":
        """Restore the point (or only ``paths`` of it) under the folder ``target``.

        ``options`` holds the values of every workload's :meth:`restore_params` (None
        when not given).  The default writes the point's tree as files and needs a target.
        """
        from .engine.restore import Restorer
        from .errors import UsageError

        if not target:
            raise UsageError(message=f"restoring a {self.name} point needs --target DIR")
        return Restorer(ctx.repo, ctx.tree, target, progress=ctx.progress).run(paths)
