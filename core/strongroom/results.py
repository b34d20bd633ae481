"""What a backup and a restore report: :class:`BackupStats`, :class:`RestoreStats` and
:class:`RestoreResult`.

Kept apart from the engine so that workloads, the command line and the vault facade can
name them without loading it.
"""

from __future__ import annotations

import attrs

__all__ = ["BackupStats", "RestoreResult", "RestoreStats"]


@attrs.define
class RestoreStats:
    """Counters of a restore; workloads that restore elsewhere than a folder fill what applies.

    ``skipped``: entries not written because what the target already has at their path
    was kept (``--overwrite never`` or ``if-newer``).  ``current`` (the last file written
    to) is for progress only and is not in ``to_dict``.
    """

    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes_written: int = 0
    packs_read: int = 0
    seconds: float = 0.0
    skipped: int = 0
    current: str = attrs.field(default="", metadata={"live": True})

    def to_dict(self) -> dict:
        return attrs.asdict(self, filter=lambda field, _value: not field.metadata.get("live"))


@attrs.frozen
class RestoreResult:
    """What a restore did.

    ``damaged``: point paths not restored because their data failed authentication or is
    missing; ``errors``: one line for each (the vault turns a result with errors into an
    :class:`~strongroom.errors.IntegrityError`); ``warnings``: what was restored with less
    than everything (metadata the target could not take).  ``summary`` (set by workloads
    that restore to something other than a folder, such as a database) replaces the
    command line's files line.
    """

    stats: RestoreStats
    damaged: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    summary: str = ""


@attrs.define
class BackupStats:
    """Counters of a backup, as the point's ``stats`` records them (``to_dict``).

    The last four fields are for progress only and are not recorded: ``bytes_skipped``
    (bytes not read because the parent point has them: unchanged files, a disk's
    unchanged chunks), ``bytes_expected`` and ``bytes_workload`` (the workload's
    estimate of the bytes it brings, and the bytes it read on its own:
    :meth:`BackupContext.progress <strongroom.BackupContext.progress>`) and ``current``
    (the path being read).
    """

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes_total: int = 0
    files_read: int = 0
    bytes_read: int = 0
    files_unchanged: int = 0
    chunks_reused: int = 0
    new_blobs: int = 0
    new_bytes: int = 0
    stored_bytes: int = 0
    packs: int = 0
    seconds: float = 0.0
    bytes_skipped: int = attrs.field(default=0, metadata={"live": True})
    bytes_expected: int = attrs.field(default=0, metadata={"live": True})
    bytes_workload: int = attrs.field(default=0, metadata={"live": True})
    current: str = attrs.field(default="", metadata={"live": True})

    def to_dict(self) -> dict:
        return attrs.asdict(self, filter=lambda field, _value: not field.metadata.get("live"))

    @property
    def bytes_done(self) -> int:
        """Bytes read or found unchanged: what the progress counts as done."""
        return self.bytes_read + self.bytes_skipped + self.bytes_workload

    @property
    def bytes_estimate(self) -> int:
        """The larger of the bytes found so far and the workload's estimate."""
        return max(self.bytes_total, self.bytes_expected)
