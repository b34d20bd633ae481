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
  with a :class:`~strongroom.contexts.PointContext` that reads the point;
- :meth:`Workload.drill` for a restore drill (``strongroom drill``): restore the point
  into a scratch folder the vault made (and removes afterwards) and check it against the
  point, returning a :class:`DrillResult`.

A workload that needs a secret (a password) stores a secret reference (``env:NAME``,
``file:PATH``, a plugin's ``SCHEME:REST``) and resolves it when it runs with
:attr:`Workload.secrets`, which the vault sets to a resolver knowing every registered
secret provider (:mod:`strongroom.secrets`).

The defaults of ``browse``, ``restore`` and ``drill`` work on the point's tree, so a
workload whose backup yields file-like entries gets them for free.  ``docs/plugins.md`` ("Writing
a workload") walks through a complete one.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager, Iterable, Sequence

import attrs

from .catalog.entry import DIR, HARDLINK, SYMLINK, Entry
from .catalog.tree import normalize_path
from .converters import to_tuple
from .errors import StrongroomError, UsageError
from .secrets import SecretResolver

if TYPE_CHECKING:
    import click

    from .contexts import BackupContext, PointContext, PointView
    from .results import RestoreResult
    from .sources import SourceEntry

__all__ = ["BrowseItem", "DrillResult", "Workload", "compare_restored"]


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


@attrs.frozen
class DrillResult:
    """What a restore drill found (:meth:`Workload.drill`).

    ``files`` and ``bytes``: how many entries (files, dump streams, disks, tables...) and
    bytes were checked; ``mismatches``: one line per thing that did not come back as
    the point holds it (``path: what is wrong``), empty when the drill passed;
    ``method``: one line saying how the workload checked (shown in the report).
    """

    files: int = 0
    bytes: int = 0
    mismatches: tuple[str, ...] = attrs.field(default=(), converter=to_tuple)
    method: str = ""

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _file_digest(path: str) -> tuple[int, str]:
    """(size, SHA-256) of a restored file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def _point_digest(ctx: PointContext, entry: Entry) -> tuple[int, str]:
    """(size, SHA-256) of an entry's content as the point holds it (every chunk authenticated)."""
    digest = hashlib.sha256()
    size = 0
    with ctx.open(entry) as f:
        while block := f.read(1 << 20):
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def compare_restored(ctx: PointContext, scratch: str, restored: RestoreResult | None = None, *,
                     method: str = "restored as files; every file's size and SHA-256 compared with the point"
                     ) -> DrillResult:
    """Check what was restored under ``scratch`` against every entry of the point: a file
    (or stream, or disk image) must have the entry's size and the SHA-256 of the content
    says.  The ``errors`` of the ``restored`` result (damaged data: those paths are not
    compared again) are mismatches too."""
    mismatches = list(restored.errors) if restored is not None else []
    named = set(restored.damaged) if restored is not None else set()
    files = checked = 0
    for path, entry in ctx.walk(""):
        if path in named:
            continue
        local = os.path.join(scratch, *path.split("/"))
        if entry.type == DIR:
            if not os.path.isdir(local):
                mismatches.append(f"{path}: folder not restored")
        elif entry.type == SYMLINK:
            if not os.path.islink(local) or os.readlink(local) != entry.target:
                mismatches.append(f"{path}: symbolic link not restored as {entry.target!r}")
        elif entry.has_content and entry.type != HARDLINK:
            files += 1
            try:
                size, digest = _file_digest(local)
            except OSError as exc:
                mismatches.append(f"{path}: not restored ({exc.strerror or exc})")
                continue
            if size != entry.size:
                mismatches.append(f"{path}: {size} bytes restored, the point holds {entry.size}")
                continue
            try:
                _, held = _point_digest(ctx, entry)
            except StrongroomError as exc:
                mismatches.append(f"{path}: {exc}")
                continue
            if digest != held:
                mismatches.append(f"{path}: content differs from the point"
                                  f" (SHA-256 {digest[:16]}..., the point's {held[:16]}...)")
                continue
            checked += size
    return DrillResult(files=files, bytes=checked, mismatches=tuple(mismatches), method=method)


class Workload:
    """Base class of workloads; subclasses set ``name`` and implement ``backup``."""

    #: the name items of this workload are protected under (``strongroom protect NAME``)
    name: ClassVar[str] = ""
    #: one line for ``strongroom protect --help``
    description: ClassVar[str] = ""
    #: the consistency of a point unless the backup says otherwise (crash, file-system,
    #: application)
    consistency: ClassVar[str] = "crash"
    #: False for a workload whose items the plugin's own commands make (the postgres WAL
    #: archive, made by ``strongroom wal push``): ``strongroom protect`` has no command for it
    protectable: ClassVar[bool] = True
    #: resolves secret references at run time: the vault gives each workload it makes one
    #: that knows every registered secret provider; a workload made elsewhere (a test)
    #: knows the built-in ``env`` and ``file`` only
    secrets: SecretResolver = SecretResolver.builtin()

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

    def mount_folders(self, view: PointView) -> dict[str, Any]:
        """Folders of the workload's own, shown read-only beside the point's entries when
        the point is mounted (``strongroom mount``): name -> folder (default: none).

        A folder has ``listdir(path)``, the :class:`~strongroom.catalog.entry.Entry` records
        (name, type, mode, owner, times, size, link target) of the folder at ``path``
        (``""`` is its top, parts separated by ``/``), and ``open(path)``, a seekable,
        read-only binary file object over a file's content.  Both raise :class:`OSError`
        with an ``errno`` (``ENOENT``, ``ENOTDIR``) or a
        :class:`~strongroom.errors.StrongroomError` (an I/O error for the reader).  Called
        once per mounted point; work lazily.  A name the point itself has is not shown.
        """
        return {}

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

    def drill(self, ctx: PointContext, scratch: str) -> DrillResult:
        """A restore drill: restore the whole point under the empty folder ``scratch``
        and check it against the point; return what was checked and every mismatch.

        The vault makes ``scratch`` and removes it afterwards (whatever the workload put
        there); a workload that restores elsewhere (a scratch database, a scratch VM)
        removes that itself before returning.  Never raise for a mismatch: list it.  The
        default restores the point's tree as files (:meth:`PointContext.restore_paths`)
        and compares every file's size and SHA-256 with the point's
        (:func:`compare_restored`); a workload without its own drill gets this
        file-level check.
        """
        result = ctx.restore_paths(scratch, (), restore_owner=False, overwrite="always")
        return compare_restored(ctx, scratch, result)
