"""Checkpoint bitmaps: which of QEMU's dirty bitmaps say what changed since the parent point.

Every backup of a live VM adds, atomically with its snapshot point, one persistent dirty
bitmap per disk named ``sr-<item id>-<token>`` (a *checkpoint*), and records that name in
the point's manifest.  Tokens sort by creation time.  A later backup needs the changes
since its parent point, the newest point of the item, whose checkpoint is ``P``:

- the checkpoints after ``P`` were added by backups that failed before their point was
  written (or whose point was deleted); QEMU kept recording in them;
- so the union of ``P`` and every later checkpoint covers every write since ``P`` was
  taken, whatever failed in between.  At the snapshot point the backup merges that
  union into a temporary bitmap ``sr-<item id>-m<token>`` (what it exports), disables
  the bitmaps it merged, and adds its own checkpoint, all in one QMP transaction.

Nothing is removed when a backup ends: a failed or interrupted backup leaves ``P``
and its own checkpoint, whose union the next backup uses.  Checkpoints older than
``P`` belong to points already superseded and are removed by the next backup, as are
temporary bitmaps left by a killed backup.  When ``P`` is missing (the VM was restarted
and the bitmap was not persistent, the disk was replaced), is inconsistent (QEMU stopped
without saving it), or the disk changed size or image, the disk is read whole and the
job says why; every bitmap of the item on that disk is then removed.
"""

from __future__ import annotations

import os
import re
import time

import attrs

__all__ = ["BitmapPlan", "checkpoint_name", "merge_name", "new_token", "plan_bitmaps"]

_TOKEN = r"(\d{13}[0-9a-f]{4})"


def new_token() -> str:
    """A token that sorts by creation time (milliseconds, then 2 random bytes)."""
    return f"{time.time_ns() // 1_000_000:013d}{os.urandom(2).hex()}"


def checkpoint_name(item_id: str, token: str) -> str:
    return f"sr-{item_id}-{token}"


def merge_name(item_id: str, token: str) -> str:
    return f"sr-{item_id}-m{token}"


@attrs.frozen
class BitmapPlan:
    """What to do with one disk's bitmaps before the snapshot point.

    ``union`` names the bitmaps whose union is the change since the parent point, or is
    None for a full read; ``remove`` names bitmaps of the item to delete first;
    ``reason`` says why a disk that has a parent is read whole ('' otherwise).
    """

    union: tuple[str, ...] | None
    remove: tuple[str, ...]
    reason: str = ""


def plan_bitmaps(item_id: str, bitmaps: list[dict], parent: dict | None, size: int, image: str) -> BitmapPlan:
    """Plan one disk: ``bitmaps`` as QEMU lists them for the node, ``parent`` the disk's
    record in the parent point's manifest (None if the parent has no such disk)."""
    checkpoint = re.compile(rf"sr-{re.escape(item_id)}-{_TOKEN}")
    merged = re.compile(rf"sr-{re.escape(item_id)}-m{_TOKEN}")
    ours = {b["name"]: b for b in bitmaps if checkpoint.fullmatch(b.get("name", ""))}
    leftovers = tuple(sorted(b["name"] for b in bitmaps if merged.fullmatch(b.get("name", ""))))
    everything = tuple(sorted(ours)) + leftovers

    def full(reason: str) -> BitmapPlan:
        return BitmapPlan(None, everything, reason)

    if parent is None:
        return full("")
    if parent.get("size") != size:
        return full(f"its size changed from {parent.get('size')} to {size} bytes")
    if parent.get("image") and parent.get("image") != image:
        return full(f"its image changed from {parent['image']} to {image}")
    mark = parent.get("bitmap") or ""
    if mark not in ours:
        return full("the dirty bitmap of the last point is missing (the VM was restarted without "
                    "persistent bitmaps, or the disk was replaced)")
    since = tuple(sorted(name for name in ours if name >= mark))
    if any(ours[name].get("inconsistent") for name in since):
        return full("the dirty bitmap of the last point is inconsistent (QEMU stopped without saving it)")
    older = tuple(sorted(name for name in ours if name < mark))
    return BitmapPlan(since, older + leftovers)


def chunks_of(extents, chunk_size: int) -> frozenset[int]:
    """Chunk numbers touched by the dirty ``(offset, length, flags)`` extents (bit 0 set)."""
    out: set[int] = set()
    for offset, length, flags in extents:
        if flags & 1 and length > 0:
            out.update(range(offset // chunk_size, (offset + length - 1) // chunk_size + 1))
    return frozenset(out)
