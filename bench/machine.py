"""The machine description every benchmark puts at the top of its results."""

from __future__ import annotations

import os
import platform
import re

#: One folder per running journal, named after its device (``vda-8``).
JOURNALS = "/proc/fs/jbd2"


def describe_machine(work: str | None = None) -> str:
    """Cores and CPU model, memory, kernel and Python version; with ``work``, the file
    system that folder is on (:func:`describe_file_system`)."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    text = (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")
    if work is not None:
        text += f"; the work folder on {describe_file_system(work)}"
    return text


def describe_file_system(path: str, mountinfo: str | None = None) -> str:
    """The type of the file system ``path`` is on, its device and mount point; for ext3
    and ext4 whether it has a journal (without one, ext4 avoids reusing an inode deleted
    in the last minute and checks every free inode of a group for it, so creating many
    files soon after many were deleted costs far more kernel time).  ``mountinfo``: the
    text of ``/proc/self/mountinfo`` (read when None)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo") as f:
                mountinfo = f.read()
        except OSError:
            return "an unknown file system"
    mount = _mount_of(os.path.realpath(path), mountinfo)
    if mount is None:
        return "an unknown file system"
    point, fstype, source = mount
    text = fstype
    if fstype in ("ext3", "ext4"):
        text += " with a journal" if _has_journal(source) else " without a journal"
    return f"{text} ({source} at {point})"


def _mount_of(path: str, mountinfo: str) -> tuple[str, str, str] | None:
    """(mount point, type, source) of the mount holding ``path``: the last of the
    longest mount points that contain it (a later mount hides an earlier one there)."""
    best: tuple[str, str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 3:
            continue
        point = _unescape(fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[dash + 1], _unescape(fields[dash + 2]))
    return best


def _unescape(field: str) -> str:
    r"""A mountinfo field with its octal escapes (``\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _has_journal(source: str) -> bool:
    """Whether the kernel runs a journal for the file system on device ``source``
    (``/proc/fs/jbd2`` lists one folder per journal, named after the device)."""
    device = os.path.basename(os.path.realpath(source))
    try:
        return any(name.startswith(f"{device}-") for name in os.listdir(JOURNALS))
    except OSError:
        return False
