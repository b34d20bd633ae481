"""strongroom-sqlite: SQLite database files as a strongroom workload.

A third-party plugin written only against strongroom's public API: it imports
``strongroom`` (the names in ``strongroom.__all__``) and nothing else of strongroom.
It is found through its entry point in the ``strongroom`` group (``pyproject.toml``)
and registers one workload, ``sqlite`` (:class:`~.workload.SqliteWorkload`).  The
README says how to use it.
"""

from strongroom import hookimpl

from .workload import SqliteWorkload

__all__ = ["SqliteWorkload"]


@hookimpl
def strongroom_register_workloads(registry) -> None:
    registry.add("sqlite", SqliteWorkload)
