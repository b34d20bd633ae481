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
def strongroom_point_created(vault, point) -> None:
    """After a base backup of a physical item: the WAL no base backup needs goes
    (:func:`.walstore.expire`)."""
    if point.item_name.endswith(".wal"):
        return
    try:
        item = vault.item(point.item_name)
    except Exception:
        return
    if item.workload == "postgres" and item.source.get("mode") == "physical":
        from .walstore import expire

        expire(vault, item.name)


@hookimpl
def strongroom_register_commands(cli) -> None:
    from .walcmd import wal

    cli.add_command(wal)
