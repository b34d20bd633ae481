"""Whole-disk restore of a VM point: disk images, the configuration and the manifest.

``restore ITEM[@POINT] --target DIR [--disk NAME ...] [--format raw|qcow2]`` writes::

    DIR/disks/<name>.img     raw images, sparse (holes wherever the point has holes), or
    DIR/disks/<name>.qcow2   qcow2 images (``qemu-img convert`` of the raw image, which
                             is written first beside it and removed)
    DIR/config/...           the configuration files stored with the point
    DIR/vm.json              the point's manifest (disk names, sizes, source formats)

Disks are written by the core's restorer (``ctx.restore_paths``: each pack read once,
holes left unwritten), then renamed; a file already at a final name is replaced.
"""

from __future__ import annotations

import os
import subprocess
import time

import attrs
from strongroom import PointContext, RestoreError, RestoreResult, run_child

from .errors import DiskNotInPoint
from .images import _which
from .itemlevel import disk_names
from .layout import CONFIG_DIR, DISKS_DIR, FORMATS, MANIFEST

__all__ = ["FORMATS", "restore_disks"]


def restore_disks(ctx: PointContext, target: str, disks: list[str], fmt: str) -> RestoreResult:
    started = time.monotonic()
    names = disk_names(ctx)
    for disk in disks:
        if disk not in names:
            raise DiskNotInPoint(disk=disk, point=ctx.point.short_id, disks=", ".join(names) or "none")
    chosen = list(dict.fromkeys(disks)) or names
    qemu_img = _which("qemu-img", "write qcow2 images") if fmt == "qcow2" else None
    paths = [f"{DISKS_DIR}/{name}" for name in chosen]
    paths += [p for p in (CONFIG_DIR, MANIFEST) if ctx.exists(p)]
    result = ctx.restore_paths(target, paths)
    if result.errors:
        return result
    for name in chosen:
        raw = os.path.join(target, DISKS_DIR, name)
        if fmt == "raw":
            os.replace(raw, raw + ".img")
            continue
        final = raw + ".qcow2"
        done = run_child([qemu_img, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, final + ".partial"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
        os.unlink(raw)
        if done.returncode:
            raise RestoreError(message=f"qemu-img could not write {final}: {done.stderr.strip()}")
        os.replace(final + ".partial", final)
    stats = attrs.evolve(result.stats, seconds=round(time.monotonic() - started, 3))
    return attrs.evolve(result, stats=stats)
