"""The postgres workload: PostgreSQL databases, dumped into the vault and restored whole,
by schema or by table.

Registered through the ``strongroom`` entry-point group, like any third-party plugin.
The user guide is ``docs/postgres.md``.
"""

from strongroom import hookimpl

from .workload import PostgresWorkload

__all__ = ["PostgresWorkload"]


@hookimpl
def strongroom_register_workloads(registry) -> None:
    registry.add("postgres", PostgresWorkload)
