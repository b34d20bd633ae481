"""The postgres workload: PostgreSQL databases, dumped into the vault and restored whole,
by schema or by table; or (physical mode) base backups with WAL archiving
(``strongroom wal``, workload ``postgres-wal``) and point-in-time restore.

Registered through the ``strongroom`` entry-point group, like any third-party plugin.
The user guide is ``docs/postgres.md``.
"""

from strongroom import hookimpl

from .workload import PostgresWorkload

__all__ = ["PostgresWorkload"]


@hookimpl
def strongroom_register_workloads(registry) -> None:
    from .walcmd import PostgresWalWorkload

    registry.add("postgres", PostgresWorkload)
    registry.add("postgres-wal", PostgresWalWorkload)


@hookimpl
def strongroom_register_commands(cli) -> None:
    from .walcmd import wal

    cli.add_command(wal)
