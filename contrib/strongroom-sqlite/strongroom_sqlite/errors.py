"""The errors of the sqlite workload: one line each, with a stable exit code (100-125).

Each class's docstring is its message template (see :class:`strongroom.StrongroomError`):
the keyword arguments given to the constructor fill it in.  The codes are listed in
the package's README; scripts may rely on them.
"""

from __future__ import annotations

from strongroom import InvalidSource, StrongroomError

__all__ = [
    "BadDatabaseFile", "CopyFailed", "DatabaseNotInPoint", "PointUnreadable", "SqliteError", "TableNotInDatabase",
    "TableNotRestorable", "TargetExists",
]


class SqliteError(StrongroomError):
    """SQLite: {message}"""

    exit_code = 100


class BadDatabaseFile(InvalidSource):
    """Invalid source for sqlite item: {path} {reason}."""

    exit_code = 101


class CopyFailed(SqliteError):
    """Cannot copy SQLite database {path}: {reason}"""

    exit_code = 102


class DatabaseNotInPoint(SqliteError):
    """Database '{name}' is not in recovery point {point} (it has: {known})."""

    exit_code = 103


class TableNotInDatabase(SqliteError):
    """Table '{table}' is not in database '{database}' of recovery point {point} (it has: {known})."""

    exit_code = 104


class TableNotRestorable(SqliteError):
    """Table '{table}' of database '{database}' is {why}: restore the whole database instead."""

    exit_code = 105


class TargetExists(SqliteError):
    """{path} already exists; pass --force to replace it."""

    exit_code = 106


class PointUnreadable(SqliteError):
    """Recovery point {point} cannot be read as a sqlite point: {reason}"""

    exit_code = 107
