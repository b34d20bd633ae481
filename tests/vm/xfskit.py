"""XFS test images without mounting: ``mkfs.xfs -p PROTOFILE`` (xfsprogs) from a folder.

A protofile gives each file's type, mode, owner and content (or a link's target);
mkfs.xfs stamps every inode with the time it runs.  ``set_times`` then writes whole
seconds into one inode with ``xfs_db -x`` (xfsprogs 6.1's ``write`` of a timestamp's
``sec`` field resets its ``nsec``, and takes the value in hex).  Images smaller than
300 MiB need the ``TEST_DIR``/``TEST_DEV``/``QA_CHECK_FS`` variables mkfs.xfs lets its
own test suite use.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

from strongroom.testing import unavailable
from vmkit import MIB, run

SMALL_FS = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}


def need_xfsprogs() -> None:
    if shutil.which("mkfs.xfs") is None or shutil.which("xfs_db") is None:
        unavailable("xfsprogs is not installed (mkfs.xfs, xfs_db; scripts/setup.sh installs it)")


def protofile(root, owners: dict) -> str:
    """The protofile text for the folder ``root`` (names without spaces or colons)."""
    lines = ["strongroom-test", "0 0"]

    def spec(path) -> str:
        st = os.lstat(path)
        perm = f"{stat.S_IMODE(st.st_mode) & 0o777:03o}"
        suid = "u" if st.st_mode & stat.S_ISUID else "-"
        sgid = "g" if st.st_mode & stat.S_ISGID else "-"
        uid, gid = owners.get(os.path.relpath(path, root), (st.st_uid, st.st_gid))
        owner = f"{uid} {gid}"
        if stat.S_ISLNK(st.st_mode):
            return f"l{suid}{sgid}{perm} {owner} {os.readlink(path)}"
        if stat.S_ISDIR(st.st_mode):
            return f"d{suid}{sgid}{perm} {owner}"
        return f"-{suid}{sgid}{perm} {owner} {os.path.abspath(path)}"

    def walk(folder) -> None:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            assert not any(c.isspace() or c == ":" for c in name), name
            lines.append(f"{name} {spec(path)}")
            if os.path.isdir(path) and not os.path.islink(path):
                walk(path)
        lines.append("$")

    lines.append(spec(root))
    walk(root)
    lines.append("$")
    return "\n".join(lines) + "\n"


def xfs_image(path, root, size_mib: int = 64, *, bigtime: bool = True, owners: dict | None = None) -> None:
    """Write an XFS file system of ``size_mib`` holding the folder ``root`` into the file ``path``;
    ``owners`` maps relative paths to the (uid, gid) to give them instead of the folder's."""
    proto = f"{path}.proto"
    with open(proto, "w") as fh:
        fh.write(protofile(root, owners or {}))
    with open(path, "ab") as fh:
        fh.truncate(size_mib * MIB)
    run("mkfs.xfs", "-q", "-f", "-m", f"bigtime={int(bigtime)}", "-p", proto, path, env={**os.environ, **SMALL_FS})
    os.unlink(proto)


def set_times(image, path: str, *, mtime: int, atime: int) -> None:
    """Give the inode at ``path`` these modification and access times (whole seconds)."""
    for field, value in (("mtime", mtime), ("atime", atime)):
        run("xfs_db", "-x", "-c", f"path {path}", "-c", f"write core.{field}.sec #{value:X}", image)


def inode_times(image, path: str) -> dict[str, int]:
    """What xfs_db reads for the inode at ``path``: {"mtime": ns, "atime": ns}."""
    import calendar
    import time

    out = subprocess.run(["xfs_db", "-r", "-c", f"path {path}", "-c", "print core.mtime core.atime", str(image)],
                         check=True, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}).stdout
    fields = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    times = {}
    for name in ("mtime", "atime"):
        sec = calendar.timegm(time.strptime(fields[f"core.{name}.sec"].strip(), "%a %b %d %H:%M:%S %Y"))
        times[name] = sec * 1_000_000_000 + int(fields[f"core.{name}.nsec"])
    return times
