"""The errors of the postgres workload: one line each, with a stable exit code.

Each class's docstring is its message template (see :class:`strongroom.StrongroomError`);
the exit codes are listed in ``docs/cli.md``.
"""

from __future__ import annotations

from strongroom import StrongroomError

__all__ = ["PostgresError", "PostgresConnectFailed", "PostgresToolsMismatch", "DatabaseNotFound", "DatabaseExists", "ObjectsExist", "NotInDump", "DumpFailed", "PostgresRestoreFailed",
           "ForeignKeysNotValid", "DumpUnreadable", "BaseBackupFailed", "TablespacesNotSupported", "WalPushFailed",
           "WalItemUnknown", "WalSegmentConflict", "DataDirNotEmpty", "TargetBeforeFirstBackup", "TargetAfterArchive",
           "NotPhysical", "RecoveryFailed"]


class PostgresError(StrongroomError):
    """PostgreSQL: {message}"""

    exit_code = 80


class PostgresConnectFailed(PostgresError):
    """Cannot connect to PostgreSQL at {server}: {reason}"""

    exit_code = 81


class PostgresToolsMismatch(PostgresError):
    """{tool} {tool_version} cannot {action}: {hint}"""

    exit_code = 82


class DatabaseNotFound(PostgresError):
    """Database '{database}' does not exist on PostgreSQL at {server}."""

    exit_code = 83


class DatabaseExists(PostgresError):
    """Database '{database}' already exists on PostgreSQL at {server}; pass --force to replace it or choose another --to-database."""

    exit_code = 84


class ObjectsExist(PostgresError):
    """Database '{database}' already has {objects}; pass --force to replace them."""

    exit_code = 85


class NotInDump(PostgresError):
    """{kind} '{name}' is not in {where}."""

    exit_code = 86


class DumpFailed(PostgresError):
    """{tool} of {what} failed: {reason}"""

    exit_code = 87


class PostgresRestoreFailed(PostgresError):
    """Restore into database '{database}' failed: {reason} ({cleanup})"""

    exit_code = 88


class ForeignKeysNotValid(PostgresError):
    """Restored into database '{database}', but the restored rows break {keys}: added back NOT VALID (new rows are checked, the rows there are not); correct the rows, then run {validate}"""

    exit_code = 88


class DumpUnreadable(PostgresError):
    """The dump of database '{database}' in recovery point {point} cannot be read: {reason}"""

    exit_code = 89


# --- physical mode, WAL archive, point-in-time restore: 110-119 -------------------------


class BaseBackupFailed(PostgresError):
    """pg_basebackup failed: {reason}"""

    exit_code = 110


class TablespacesNotSupported(PostgresError):
    """PostgreSQL at {server} has tablespaces outside the data directory ({names}): a physical backup streams only the main data directory; move their tables to pg_default or use the logical mode"""

    exit_code = 111


class WalPushFailed(PostgresError):
    """WAL {segment} of item '{item}' was not archived: {reason} (PostgreSQL keeps it and retries)"""

    exit_code = 112


class WalItemUnknown(PostgresError):
    """Item '{item}' is not a protected postgres item of this vault: protect it first (strongroom protect postgres {item} --physical ...); PostgreSQL keeps the WAL and retries"""

    exit_code = 113


class WalSegmentConflict(PostgresError):
    """WAL {segment} of item '{item}' is already archived with other content: not replaced (is another cluster archiving into this item?)"""

    exit_code = 114


class DataDirNotEmpty(PostgresError):
    """Data directory {path} is not empty: restore into a new or empty directory"""

    exit_code = 115


class TargetBeforeFirstBackup(PostgresError):
    """Recovery target {target} is before the end of the first base backup of item '{item}' ({first}): no base backup to start from"""

    exit_code = 116


class TargetAfterArchive(PostgresError):
    """Recovery target {target} is after the last archived WAL of item '{item}' ({last}): recovery cannot reach it"""

    exit_code = 117


class NotPhysical(PostgresError):
    """Item '{item}' {reason}"""

    exit_code = 118


class RecoveryFailed(PostgresError):
    """The restored server at {data_dir} did not finish recovery: {reason}"""

    exit_code = 119


class TimelineNotFollowed(PostgresError):
    """item '{item}': recovery follows {timeline}, and {reason}; restore an older point with ITEM@POINT, to a time on its own timeline, or follow another timeline (--timeline N|current)"""

    exit_code = 28
