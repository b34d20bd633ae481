"""The source of a sqlite item: which database files it protects.

The source document stored in the item is ``{"databases": [absolute paths]}``, in the
order given (which fixes each database's name in the point, see
:func:`strongroom_sqlite.layout.database_names`).  :func:`validate` accepts it when every
path is a regular file that starts with SQLite's header and no file is given twice; it
only reads the first 100 bytes of each file, and never opens a database.
"""

from __future__ import annotations

import os
from typing import Any

from strongroom import InvalidSource

from .errors import BadDatabaseFile

__all__ = ["HEADER", "check_database_file", "from_options", "validate"]

#: the first 16 bytes of every SQLite 3 database file
HEADER = b"SQLite format 3\x00"
WORKLOAD = "sqlite"


def from_options(options: dict[str, Any]) -> dict:
    """The source document from ``protect sqlite`` options (``--database``, repeated)."""
    return {"databases": list(options.get("databases") or ())}


def validate(source: dict) -> dict:
    """The normalised source; :class:`BadDatabaseFile` or ``InvalidSource`` if it cannot be protected."""
    paths = source.get("databases")
    if not isinstance(paths, (list, tuple)) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise InvalidSource(workload=WORKLOAD, reason="give at least one database file (--database PATH)")
    normalised: list[str] = []
    seen: dict[str, str] = {}
    for given in paths:
        path = os.path.abspath(given)
        check_database_file(path)
        real = os.path.realpath(path)
        if real in seen:
            raise BadDatabaseFile(path=path, reason=f"is the same file as {seen[real]}, given twice")
        seen[real] = path
        normalised.append(path)
    return {"databases": normalised}


def check_database_file(path: str) -> None:
    """Raise :class:`BadDatabaseFile` unless ``path`` is a readable SQLite database file."""
    if not os.path.exists(path):
        raise BadDatabaseFile(path=path, reason="does not exist")
    if not os.path.isfile(path):
        raise BadDatabaseFile(path=path, reason="is not a file")
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(HEADER))
    except OSError as exc:
        raise BadDatabaseFile(path=path, reason=f"cannot be read ({exc.strerror or exc})") from None
    if not header:
        raise BadDatabaseFile(path=path, reason="is empty: SQLite has not written a database to it yet")
    if header != HEADER:
        raise BadDatabaseFile(path=path, reason="is not a SQLite database (no SQLite header)")
