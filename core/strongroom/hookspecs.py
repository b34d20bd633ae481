"""Every hook of strongroom's plugin API, in the order a run meets them.

A plugin is a module (or any object) with functions named like the hooks below and
marked with :data:`strongroom.hookimpl`.  An implementation may accept fewer arguments
than the specification lists, never other ones.  Unless a hook says otherwise, every
plugin's implementation is called, last registered first, and return values are ignored.
An exception raised by an implementation propagates to the caller of the hook.

The plugin author guide, ``docs/plugins.md``, has one section per hook with an example;
a test keeps that reference and this module in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.markers import hookspec

if TYPE_CHECKING:
    import click

    from strongroom.models import Job, ProtectedItem, RecoveryPoint
    from strongroom.policy.record import Policy
    from strongroom.registry import Registry
    from strongroom.secrets import SecretProvider
    from strongroom.services.alertsinks import SinkType as AlertSinkType
    from strongroom.storage.backends import StorageBackend

#: The ``vault`` argument of the hooks: the open :class:`strongroom.vault.Vault`.  The
#: facade sits above the plugin machinery (it calls these hooks), so it is not imported
#: here; the layers stay a line (``tests/test_layers.py``).
Vault = Any


# -------------------------------------------------------------------------------------
# Registration: called once per plugin manager, while the plugin host starts up
# -------------------------------------------------------------------------------------


@hookspec
def strongroom_register_workloads(registry: Registry[type[Any]]) -> None:
    """Register workload classes by name.

    Called once for each plugin, right after all plugins are loaded.  Call
    ``registry.add(name, WorkloadClass)`` for every workload the plugin provides; the
    registration is recorded as the plugin's own.  Registering a name that another plugin
    already registered is an error that stops start-up and names both plugins.

    :param registry: the workload registry (``kind == "workload"``).
    :return: ignored.
    """


@hookspec
def strongroom_register_key_providers(registry: Registry[Any]) -> None:
    """Register key providers by name.

    Called once for each plugin, right after the workloads are registered.  A key
    provider supplies or protects the key material of a vault (the built-in ``keys``
    plugin registers ``local`` and ``passphrase``).  Call ``registry.add(name, provider)``
    for every provider; duplicates are an error naming both plugins.

    :param registry: the key-provider registry (``kind == "key provider"``).
    :return: ignored.
    """


@hookspec
def strongroom_register_storage_backends(registry: Registry[StorageBackend]) -> None:
    """Register storage backends: the fsspec filesystems that serve vault URL schemes.

    Called once for each plugin, right after the key providers are registered.  Call
    ``registry.add(backend.name, backend)`` with a :class:`strongroom.StorageBackend`
    for every backend: its URL schemes, the module and class of its fsspec filesystem
    (imported only when a vault on it is opened), whether a put is one atomic request,
    how ranged reads work, its object lock, its default options and what to install.
    The built-in ``storage`` plugin registers ``s3``, ``sftp``, ``gcs`` and ``azure``.
    A name registered twice, or a URL scheme claimed by two backends, is an error.

    :param registry: the storage-backend registry (``kind == "storage backend"``).
    :return: ignored.
    """


@hookspec
def strongroom_register_alert_sinks(registry: Registry[AlertSinkType]) -> None:
    """Register alert sink types: where alerts can be sent.

    Called once for each plugin, right after the storage backends are registered.  Call
    ``registry.add(sink_type.name, sink_type)`` with a sink type for every kind of sink
    the plugin provides: its name, the options it takes (which are required, which are
    secret and never shown), a check of their values, and ``send(options, document)``,
    which sends one alert document (``docs/alerts.md`` has its JSON shape) and returns a
    one-line detail, or raises with a one-line reason that holds no secret.  Users then
    configure sinks of the type with ``strongroom alerts sink add NAME --type TYPE``.
    The essential ``alerts`` plugin registers ``command``, ``webhook`` and ``email``.  A
    name registered twice is an error naming both plugins.  Every sink receives every
    security alert; a sink's failure is recorded on the alert, never raised.

    :param registry: the alert-sink registry (``kind == "alert sink"``).
    :return: ignored.
    """


@hookspec
def strongroom_register_secret_providers(registry: Registry[SecretProvider]) -> None:
    """Register secret providers by scheme: what resolves a secret reference ``SCHEME:REST``.

    Called once for each plugin, right after the alert sinks are registered.  Call
    ``registry.add(provider.scheme, provider)`` with a :class:`strongroom.SecretProvider`
    for every scheme the plugin serves.  Where a secret is needed (a database password
    given as ``--password-ref SCHEME:REST``), strongroom stores only the reference and, at
    every run, calls the provider's ``resolve(REST)``, which returns a
    :class:`strongroom.Secret` or raises :class:`strongroom.SecretNotAvailable` with a
    one-line reason holding no secret; ``canonical(REST)``, called when the reference is
    given, may refuse it (:class:`strongroom.InvalidSecretReference`) or return the form to
    store.  The essential ``keys`` plugin registers ``env`` and ``file``.  A scheme
    registered twice is an error naming both plugins.

    :param registry: the secret-provider registry (``kind == "secret provider"``).
    :return: ignored.
    """


@hookspec
def strongroom_register_commands(cli: click.Group) -> None:
    """Add commands to the ``strongroom`` command line.

    Called once for each plugin when the command line is built, before the arguments are
    parsed.  Add top-level commands with ``cli.add_command(...)`` or the ``@cli.command()``
    decorator, or add subcommands to an existing group found in ``cli.commands``.
    Replacing a command that the core or another plugin added is an error.  The core's
    own commands are loaded when first asked for: reading ``cli.commands`` loads them
    all, so look a group up there only to add to it (``cli.get_command(ctx, name)`` loads
    just that one).

    :param cli: the root click group of the ``strongroom`` command.
    :return: ignored.
    """


# -------------------------------------------------------------------------------------
# Vault: called when a vault is created or opened
# -------------------------------------------------------------------------------------


@hookspec
def strongroom_vault_created(vault: Vault) -> None:
    """A new vault was created.

    Called once, when the new vault is initialised and open, before anything else uses
    it.  Creating a vault does not also call :func:`strongroom_vault_opened`: a plugin
    that wants to see every vault in use implements both hooks.

    :param vault: the new, open vault.
    :return: ignored.
    """


@hookspec
def strongroom_vault_opened(vault: Vault) -> None:
    """An existing vault was opened.

    Called every time an existing vault is opened, before any command works on it.
    Raising makes the opening fail with the exception.

    :param vault: the open vault.
    :return: ignored.
    """


# -------------------------------------------------------------------------------------
# Policies: called when a policy is written and when retention is evaluated
# -------------------------------------------------------------------------------------


@hookspec
def strongroom_policy_validate(vault: Vault, policy: Policy) -> None:
    """A policy is about to be created or changed: raise to reject it.

    Called by ``strongroom policy create`` and ``strongroom policy update`` after the
    core's own checks (times, weekdays, timezone, keep counts, the vault's retention
    floors) and before the new version is written.  A
    :class:`~strongroom.errors.StrongroomError` is shown as it is; any other exception
    rejects the policy with an "invalid policy" error carrying its message.  Nothing is
    written when an implementation raises.

    :param vault: the vault the policy belongs to.
    :param policy: the :class:`strongroom.Policy` as it would be written.
    :return: ignored.
    """


@hookspec
def strongroom_retention_tags(vault: Vault, point: RecoveryPoint, policy: Policy | None) -> list[str] | None:
    """Extra retention tags for *point*; a point with an extra tag is not expired.

    Called for every existing point of an item each time its retention is evaluated: by
    prune, after a policy update, when an item is stopped or resumed, and when a backup of
    the item commits a new point.  Return an iterable of tag names (or None for none).
    The tags are recorded with the point's retention, after the GFS tags, and keep the
    point for as long as some implementation keeps returning them (a legal hold, say);
    they do not keep the points of an item whose data is being deleted.  Every
    implementation is called and the answers are combined.

    :param vault: the vault holding the point.
    :param point: the recovery point, with its current retention.
    :param policy: the policy of the point's item, or None if it has none.
    :return: extra tag names, or None.
    """


# -------------------------------------------------------------------------------------
# Recovery points: called around backups and restores
# -------------------------------------------------------------------------------------


@hookspec
def strongroom_before_backup(vault: Vault, item: ProtectedItem) -> None:
    """A backup of *item* is about to start.

    Called before any data of the item is read, outside :func:`strongroom_backup_wrapper`.
    Raising aborts the backup: nothing is written and the job fails with the exception's
    message.

    :param vault: the vault the recovery point will be written to.
    :param item: the protected item being backed up.
    :return: ignored.
    """


@hookspec(firstresult=True)
def strongroom_backup_wrapper(vault: Vault, item: ProtectedItem) -> RecoveryPoint | None:
    """Run code around the whole backup of *item*, for instance to quiesce a service.

    Implement it as a new-style wrapper, ``@hookimpl(wrapper=True)``, and ``yield`` once
    where the backup should run.  The ``yield`` returns the new :class:`RecoveryPoint`, or
    raises the exception that failed the backup, so ``try``/``finally`` around it always
    un-quiesces; the wrapper returns the point (or another one) or re-raises::

        @hookimpl(wrapper=True)
        def strongroom_backup_wrapper(vault, item):
            freeze()
            try:
                return (yield)
            finally:
                thaw()

    The core performs the backup itself as the innermost call of this hook; the first
    non-None result is the point, so plugins should not add plain (non-wrapper)
    implementations.  Wrappers nest: the last registered plugin's wrapper is outermost.

    :param vault: the vault the recovery point is written to.
    :param item: the protected item being backed up.
    :return: the new recovery point.
    """


@hookspec
def strongroom_after_backup(vault: Vault, item: ProtectedItem, point: RecoveryPoint) -> None:
    """A backup of *item* succeeded.

    Called only after a successful backup, once the recovery point is committed and after
    :func:`strongroom_point_created`.  A failed backup does not call it; see
    :func:`strongroom_job_finished` for the outcome of every job.

    :param vault: the vault the point was written to.
    :param item: the protected item that was backed up.
    :param point: the new recovery point.
    :return: ignored.
    """


@hookspec
def strongroom_point_created(vault: Vault, point: RecoveryPoint) -> None:
    """A recovery point was committed to the vault.

    Called for every new point, whatever made it, once the point is durable and visible
    to readers.

    :param vault: the vault holding the point.
    :param point: the new recovery point.
    :return: ignored.
    """


@hookspec
def strongroom_after_restore(vault: Vault, point: RecoveryPoint, target: str) -> None:
    """A restore from *point* finished successfully.

    Called after all the selected data is written to the destination, whole restores and
    item-level restores alike.

    :param vault: the vault the point was read from.
    :param point: the recovery point that was restored.
    :param target: the ``--target`` folder the restore was given, or None for workloads
        that restore elsewhere (a database, through their own restore options).
    :return: ignored.
    """


# -------------------------------------------------------------------------------------
# Jobs: called when a unit of work ends
# -------------------------------------------------------------------------------------


@hookspec
def strongroom_job_finished(vault: Vault, job: Job) -> None:
    """A job (backup, restore, verify, prune, ...) finished, successfully or not.

    Called once for every job, after its final state is recorded; inspect the job for its
    kind, outcome and error message.

    :param vault: the vault the job ran on.
    :param job: the finished job.
    :return: ignored.
    """
