"""The errors of the postgres workload: one line each, with a stable exit code.

Each class's docstring is its message template (see :class:`strongroom.StrongroomError`);
the exit codes are listed in ``docs/cli.md``.
"""

from __future__ import annotations

from strongroom import StrongroomError

__all__ = ["PostgresError", "PostgresConnectFailed", "PostgresToolsMismatch", "DatabaseNotFound", "DatabaseExists", "ObjectsExist", "NotInDump", "DumpFailed", "PostgresRestoreFailed",
           "ForeignKeysNotValid", "DumpUnreadable"]


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
