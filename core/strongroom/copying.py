"""Copying recovery points of an item into another vault (``strongroom copy``).

:func:`copy_points` copies every intact point of an item (or one) from ``source`` into
``target``, oldest first.  What it promises:

- **Re-encrypted, re-chunked, deduplicated.**  Each point's tree is walked and its
  content read back from the source (every chunk authenticated), then stored by the
  target's own backup engine: the target's keys, chunker and compression, deduplicated
  against everything the target holds.  No blob is copied as is (the vaults' id keys
  differ).  Folders, files, links, hard links, special files, database dumps and disk
  images (holes stay holes) keep their metadata.
- **Faithful headers.**  The copy keeps the original point's creation time, host, source
  paths, operator tags (``user_tags``), consistency and ``extra``, and records where it
  came from in ``extra["copied_from"]``: ``{"vault": <source vault id>, "point": <id>}``.
  Its own stats, retention (the target item's policy, evaluated at the original time)
  and id are the target's.  It is recorded in the target as a ``backup`` job with
  trigger ``copy``.
- **Idempotent.**  A source point that the target already holds a copy of (an intact
  point whose ``copied_from`` names it) is skipped, so running the copy again copies
  only what is new.
- **The item.**  Missing in the target, it is protected there with the same name,
  workload and source (the workload checks the source as ``protect`` does) and no
  policy.  An item of that name with another workload is refused (UsageError), and so is
  copying a vault into itself.

Nothing in the source is written.  A failure part-way leaves the points copied so far
committed, and no trace of the point being copied (the next run copies it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from .catalog.entry import BLOCKDEV, CHARDEV, DIR, DISK, FIFO, FILE, HARDLINK, SOCKET, STREAM, SYMLINK
from .errors import ItemNotFound, UsageError
from .sources import DiskSource, FolderSource, LinkSource, SpecialSource, StreamSource

if TYPE_CHECKING:
    from .contexts import PointView
    from .models import RecoveryPoint
    from .vault import Vault

__all__ = ["COPIED_FROM", "CopyReport", "copy_points", "point_entries"]

#: The key of a copied point's ``extra`` that says where it was copied from.
COPIED_FROM = "copied_from"


@attrs.frozen
class CopyReport:
    """What :func:`copy_points` did: ``copied`` pairs (source point id, new point id),
    ``skipped`` source point ids already in the target, whether it protected the item."""

    item: str
    copied: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()
    created_item: bool = False


def point_entries(view: "PointView") -> Iterator[object]:
    """The source entries that rebuild the point ``view`` reads, in point order."""
    for path, entry in view.walk(""):
        bare = attrs.evolve(entry, chunks=(), subtree=None)
        if entry.type == DIR:
            yield FolderSource(path, bare)
        elif entry.type in (FILE, STREAM):
            yield StreamSource(path, bare, functools.partial(view.open, entry))
        elif entry.type == HARDLINK:  # stored as a further name of its first one (read only if that is missing)
            yield StreamSource(path, bare, functools.partial(lambda target: view.open(view.lookup(target)),
                                                             entry.target))
        elif entry.type == DISK:
            yield DiskSource(path, bare, functools.partial(view.open, entry))
        elif entry.type == SYMLINK:
            yield LinkSource(path, bare)
        elif entry.type in (FIFO, CHARDEV, BLOCKDEV, SOCKET):
            yield SpecialSource(path, bare)


def copied_sources(target: "Vault", item: str, source_vault: str) -> set[str]:
    """Ids of the source vault's points that ``target`` holds copies of, for ``item``."""
    found = set()
    for point in target.points(item):
        origin = point.extra.get(COPIED_FROM) if isinstance(point.extra, dict) else None
        if isinstance(origin, dict) and origin.get("vault") == source_vault:
            found.add(origin.get("point"))
    return found


def copy_points(source: "Vault", target: "Vault", item: str, ref: str | None = None, *,
                on_point: Callable[["RecoveryPoint", "RecoveryPoint | None"], None] | None = None) -> CopyReport:
    """Copy the points of ``item`` (or point ``ref`` only) from ``source`` into ``target``
    (module docstring).  ``on_point(source point, copy or None if skipped)`` is called
    after each point."""
    if source.vault_id == target.vault_id:
        raise UsageError(message="the target is this same vault: copy points to another vault")
    found = source.item(item)
    points = [source.point(item, ref)] if ref else source.points(item)
    created = False
    try:
        there = target.item(item)
    except ItemNotFound:
        there = target.protect(found.workload, item, found.source)
        created = True
    if there.workload != found.workload:
        raise UsageError(message=f"item '{item}' of the target vault is a {there.workload} item, not"
                                 f" {found.workload}: copy into a vault without it, or under another name")
    done = copied_sources(target, item, source.vault_id)
    copied: list[tuple[str, str]] = []
    skipped: list[str] = []
    for point in points:
        if point.point_id in done:
            skipped.append(point.point_id)
            if on_point is not None:
                on_point(point, None)
            continue
        view = source.point_view(item, point.point_id)
        header = {
            "created": point.created, "host": point.host, "paths": tuple(point.paths),
            "user_tags": tuple(point.user_tags), "consistency": point.consistency,
            "extra": {**point.extra, COPIED_FROM: {"vault": source.vault_id, "point": point.point_id}},
        }
        copy = target.copy_in(item, lambda ctx, view=view: point_entries(view), header=header)
        copied.append((point.point_id, copy.point_id))
        if on_point is not None:
            on_point(point, copy)
    return CopyReport(item, tuple(copied), tuple(skipped), created)
