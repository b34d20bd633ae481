"""qcow2 images at rest: persistent dirty bitmaps say which clusters changed since the parent point.

Each backup of a qcow2 image at rest (that no running VM holds) adds to the image, before
reading it, one persistent, enabled dirty bitmap ``sr-<item id>-<token>`` (a
*checkpoint*: ``qemu-img bitmap --add --enable``) and records its name as the disk's
``bitmap`` in the point's manifest.  From then on every write to the image is marked in
it: QEMU keeps persistent bitmaps recording while a VM runs on the image and saves them
when it stops.  The next backup of the image plans as the live path does
(:func:`strongroom_vm.bitmaps.plan_bitmaps`): the union of the parent point's checkpoint
and of every later one (added by backups that failed or were killed before their point
was committed) is what changed since the parent point.  Those bitmaps are exported by
``qemu-nbd --bitmap`` and only the chunks they mark are read
(``qemu:dirty-bitmap:NAME`` through NBD block status); every other chunk is the parent's.

**Nothing is reset before a point is committed.**  Checkpoints older than the parent's
are removed by the next backup, that is only once the point that superseded them is
committed.  A backup that dies before its commit leaves the parent's checkpoint (and its
own), so the next backup still reads every change.

**A full read, and why.**  When the parent point's checkpoint is missing (the image was
replaced, someone removed it) or inconsistent (QEMU stopped without saving it: the
bitmap's ``in-use`` flag), or the disk changed size, the image is read whole and the
backup says why in one warning (``Prepared.note``).  An image that cannot take bitmaps
(a qcow2 version 2 image, a read-only file) is read whole every time, silently after the
first time.

Writes: the image's bitmap directory only (through ``qemu-img bitmap``), before the
image is read; this moves the image's times, so the identity a point records for the
image (:func:`strongroom_vm.offline.identity`) is taken after.
"""

from __future__ import annotations

import subprocess
from typing import Any

import attrs
from strongroom import run_child

from .bitmaps import checkpoint_name, chunks_of, new_token, plan_bitmaps
from .errors import DiskInUse, DiskUnreadable
from .images import _which, connect, qemu_img_info, serve_image

__all__ = ["Prepared", "prepare"]


@attrs.frozen
class Prepared:
    """One qcow2 disk made ready for a backup: this point's checkpoint (None if the image
    takes no bitmaps), the chunks that may have changed since the parent point (None:
    read it whole) and a note saying why a disk with a parent checkpoint is read whole."""

    bitmap: str | None
    changed: frozenset[int] | None
    note: str = ""


def _bitmaps(path: str) -> list[dict[str, Any]]:
    info = qemu_img_info(path, "qcow2", shared=False)
    found = ((info.get("format-specific") or {}).get("data") or {}).get("bitmaps") or []
    return [{"name": b.get("name", ""), "inconsistent": "in-use" in (b.get("flags") or [])} for b in found]


def _bitmap_op(path: str, op: str, name: str) -> str | None:
    """``qemu-img bitmap OP``; None when done, else qemu-img's last line."""
    argv = [_which("qemu-img", "keep dirty bitmaps in qcow2 images"), "bitmap", *op.split(), "-f", "qcow2", path, name]
    done = run_child(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines() or [f"qemu-img exited with {done.returncode}"]
    return lines[-1].removeprefix("qemu-img: ")


def _changed(path: str, union: tuple[str, ...], chunk_size: int) -> frozenset[int]:
    contexts = tuple(f"qemu:dirty-bitmap:{name}" for name in union)
    out: set[int] = set()
    with serve_image(path, "qcow2", bitmaps=union) as sock:
        with connect(sock, path, contexts=contexts) as reader:
            for context in contexts:
                out |= chunks_of(reader.client.block_status(context), chunk_size)
    return frozenset(out)


def prepare(path: str, item_id: str, parent: dict[str, Any] | None, size: int, chunk_size: int) -> Prepared:
    """Plan, rotate and query the bitmaps of the qcow2 image at ``path`` (see the module
    documentation); ``parent`` is the disk's record in the parent point's manifest."""
    had = parent is not None and bool(parent.get("bitmap")) and parent.get("source") == path
    try:
        plan = plan_bitmaps(item_id, _bitmaps(path), parent if had else None, size, path)
    except (DiskUnreadable, DiskInUse) as exc:
        return Prepared(None, None, f"its dirty bitmaps cannot be listed ({exc})" if had else "")
    for name in plan.remove:
        _bitmap_op(path, "--remove", name)
    bitmap: str | None = checkpoint_name(item_id, new_token())
    refused = _bitmap_op(path, "--add --enable", bitmap)
    if refused is not None:
        bitmap = None
    note = plan.reason
    changed = None
    if plan.union:
        try:
            changed = _changed(path, plan.union, chunk_size)
        except (DiskUnreadable, OSError) as exc:
            note = f"its dirty bitmaps cannot be read ({exc})"
    if refused is not None and had and not note:
        note = f"it takes no dirty bitmap now ({refused}); the next backup reads it whole"
    return Prepared(bitmap, changed, note)
