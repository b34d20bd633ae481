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
    was kept (``--overwrite never`` or ``if-newer``).
    """

    files: int = 0
    dirs: int = 0
    links: int = 0
    bytes_written: int = 0
    packs_read: int = 0
    seconds: float = 0.0
    skipped: int = 0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


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
    """Counters of a backup, as the point's ``stats`` records them (``to_dict``)."""

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

    def to_dict(self) -> dict:
        return attrs.asdict(self)
