"""A file system of its own for the benchmark's restores: a fresh ext4 with a journal.

Each run deletes what every tool wrote (its copy of the corpus, its restores) a few
seconds before the next tool creates tens of thousands of files again.  On an ext4
without a journal, as this machine's root file system is, the kernel then avoids reusing
an inode freed in the last minutes whose inode table block is in the buffer cache, and
checks the free inodes of a group one by one for it (``recently_deleted()`` in
``fs/ext4/ialloc.c``): a restore onto it spent 40% of its samples there, and how much
depended on how long ago the tool before had deleted its files (so on the order of the
tools and on their speed).  Restores onto an ext4 with a journal, as most systems have,
do not pay that check.

:class:`RestoreFileSystem` makes an ext4 (default ``mkfs.ext4`` options, so with a
journal; its inode tables and journal written by ``mkfs``, not by a kernel thread in
the first minutes after the mount) in a sparse image in the work folder, mounts it with
a loop device, and takes it away at the end.  It needs root and ``mkfs.ext4``; where it cannot be made the
restores go to the work folder, and the results say which.
"""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["RestoreFileSystem"]


class RestoreFileSystem:
    """``with RestoreFileSystem(work, size) as folder``: ``folder`` is the root of a fresh
    ext4 with a journal of ``size`` bytes (a sparse image under ``work``), or None if it
    cannot be made here (:attr:`why_not` says why, and the bench prints it)."""

    def __init__(self, work: str, size: int) -> None:
        self.image = os.path.join(work, "restore-fs.img")
        self.folder = os.path.join(work, "restore-fs")
        self.size = size
        self.why_not = ""
        self._mounted = False

    def __enter__(self) -> str | None:
        mkfs = shutil.which("mkfs.ext4") or shutil.which("mkfs.ext4", path="/usr/sbin:/sbin")
        if os.geteuid() != 0 or mkfs is None:
            self.why_not = "not root" if os.geteuid() != 0 else "no mkfs.ext4"
            print(f"restores: no file system of their own ({self.why_not})", flush=True)
            return None
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        os.makedirs(self.folder, exist_ok=True)
        # inode tables and journal written now, not by a kernel thread while the tools run
        mkfs_argv = [mkfs, "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.image]
        for argv in (mkfs_argv, ["mount", "-o", "loop", self.image, self.folder]):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode:
                self.why_not = f"{os.path.basename(argv[0])} failed: {(done.stderr or done.stdout).strip()[:200]}"
                print(f"restores: no file system of their own ({self.why_not})", flush=True)
                self._remove()
                return None
        self._mounted = True
        return self.folder

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._mounted:
            if subprocess.run(["umount", self.folder], capture_output=True).returncode:
                subprocess.run(["umount", "-l", self.folder], capture_output=True)
            self._mounted = False
        try:
            os.rmdir(self.folder)
        except OSError:
            pass
        try:
            os.unlink(self.image)
        except FileNotFoundError:
            pass
