"""What a backup will probably read, for the progress display's total.

:func:`backup_estimate` takes the item's latest point's counters (``bytes_total``,
``files``) when it has one; for a first backup of paths on this machine (a ``files``
item) it starts a quick pre-scan in a daemon thread that adds up the sizes of the
regular files under the paths (no excludes applied, links not followed: an estimate),
and that stops when the backup is done (:meth:`Estimate.stop`).  Other workloads tell
their own estimate through ``BackupContext.progress(total=...)``.  Reads only; never
fails a backup (a path that cannot be listed is passed over).
"""

from __future__ import annotations

import os
import threading

__all__ = ["Estimate", "backup_estimate"]


class Estimate:
    """Bytes and files a backup is expected to read (0: not known yet)."""

    def __init__(self, bytes: int = 0, files: int = 0) -> None:
        self.bytes = bytes
        self.files = files
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self, paths: list[str]) -> None:
        """Add up ``paths`` in a daemon thread (see the module docstring)."""
        self._thread = threading.Thread(target=self._scan, args=(paths,), name="prescan", daemon=True)
        self._thread.start()

    def _scan(self, paths: list[str]) -> None:
        stack = list(paths)
        while stack and not self._stop.is_set():
            path = stack.pop()
            try:
                if not os.path.isdir(path) or os.path.islink(path):
                    st = os.lstat(path)
                    self.bytes += st.st_size if os.path.isfile(path) and not os.path.islink(path) else 0
                    self.files += 1
                    continue
                with os.scandir(path) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            self.bytes += entry.stat(follow_symlinks=False).st_size
                            self.files += 1
            except OSError:
                continue

    def stop(self) -> None:
        self._stop.set()


def backup_estimate(vault, item_name: str) -> Estimate:
    """The estimate for backing up ``item_name`` of ``vault`` (see the module docstring)."""
    try:
        points = vault.points(item_name)
    except Exception:  # noqa: BLE001 - an estimate never fails the backup; the backup reports the error
        return Estimate()
    if points:
        stats = points[-1].stats or {}
        return Estimate(int(stats.get("bytes_total") or 0), int(stats.get("files") or 0))
    estimate = Estimate()
    try:
        item = vault.item(item_name)
    except Exception:  # noqa: BLE001
        return estimate
    paths = item.source.get("paths") if item.workload == "files" else None
    if isinstance(paths, (list, tuple)) and paths:
        estimate.scan([str(p) for p in paths])
    return estimate
