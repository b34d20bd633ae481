"""strongroom: self-hosted workload protection.

This module is the public API, the whole contract between strongroom and its plugins:
a workload, key provider, storage backend or command plugin imports only names listed
in ``__all__`` here (and ``strongroom.testing`` in its tests).  Names load when first
used, so ``import strongroom`` stays cheap.

    >>> import strongroom
    >>> vault = strongroom.create_vault("/srv/vault")
    >>> vault.protect("files", "home", {"paths": ["/home"]})
    >>> point = vault.backup("home")

- Vaults: :func:`create_vault`, :func:`open_vault`, :class:`Vault`.
- Plugins: :data:`hookimpl`, :data:`hookspec`, :class:`Registry`; hooks are documented
  in :mod:`strongroom.hookspecs` and ``docs/plugins.md``.
- Workloads: :class:`Workload`, the contexts :class:`BackupContext`,
  :class:`PointContext` and :class:`PointView`, the source entries a backup yields
  (:class:`FileSource`, :class:`FolderSource`, :class:`LinkSource`,
  :class:`SpecialSource`, :class:`StreamSource`, :class:`DiskSource`, and
  :class:`FileRun`, files of one folder at once, with :func:`each_source`), the tree
  :class:`Entry` and its types, :class:`BrowseItem`, :class:`RestoreResult`,
  :class:`RestoreStats`, :class:`SeekableReader`, and for a workload's own restore drill
  :class:`DrillResult` and :func:`compare_restored`.
- Key providers: :class:`KeyContext`, :class:`PassphraseSource`, :class:`Secret`.
- Secret providers: :class:`SecretProvider` (what ``strongroom_register_secret_providers``
  registers), :class:`SecretResolver` and :func:`resolve_secret` (a ``SCHEME:REST``
  reference to a :class:`Secret`, read at run time).
- Storage backends: :class:`StorageBackend`, :class:`Capabilities`, :class:`ObjectLock`.
- Alert sinks: :class:`SinkType` (what ``strongroom_register_alert_sinks`` registers),
  :class:`SinkFailed` (a sink's one-line failure), :class:`Alert` (what a sink is sent).
- Records: :class:`ProtectedItem`, :class:`RecoveryPoint`, :class:`Job`, :class:`Policy`.
- Child processes: :func:`start_child`, :func:`run_child` (children that die with
  strongroom), :func:`children_ended` (whether the job is being stopped: a child that
  dies now was ended, and is no failure to report), :func:`cpus` (the CPUs this process
  may run on), :class:`ProcessId`, :class:`ProcessInfo`, :func:`list_processes`,
  :func:`end_process` (finding what a strongroom that is gone left running).
- Sparse files: :func:`data_extents` (where a file's data is, so that its holes need
  not be read).
- Errors: :class:`StrongroomError` and the subclasses below; a plugin defines its own
  errors as subclasses with a message template and an exit code of their own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # plugins
    "hookimpl": "strongroom.markers", "hookspec": "strongroom.markers", "Registry": "strongroom.registry",
    # vaults
    "Vault": "strongroom.vault", "strongroom_home": "strongroom.home",
    # records
    "ProtectedItem": "strongroom.models", "RecoveryPoint": "strongroom.models", "Job": "strongroom.models",
    "JOB_STATES": "strongroom.models",
    "Policy": "strongroom.policy.record",
    # tree entries
    "Entry": "strongroom.catalog.entry", "FILE": "strongroom.catalog.entry", "DIR": "strongroom.catalog.entry",
    "SYMLINK": "strongroom.catalog.entry", "HARDLINK": "strongroom.catalog.entry",
    "FIFO": "strongroom.catalog.entry", "CHARDEV": "strongroom.catalog.entry",
    "BLOCKDEV": "strongroom.catalog.entry", "SOCKET": "strongroom.catalog.entry",
    "STREAM": "strongroom.catalog.entry", "DISK": "strongroom.catalog.entry",
    "normalize_path": "strongroom.catalog.tree", "SeekableReader": "strongroom.catalog.seekable",
    # workloads
    "Workload": "strongroom.workload", "BrowseItem": "strongroom.workload",
    "DrillResult": "strongroom.workload", "compare_restored": "strongroom.workload",
    "BackupContext": "strongroom.contexts", "PointContext": "strongroom.contexts", "PointView": "strongroom.contexts",
    "SourceEntry": "strongroom.sources", "FileSource": "strongroom.sources",
    "FolderSource": "strongroom.sources", "LinkSource": "strongroom.sources",
    "SpecialSource": "strongroom.sources", "StreamSource": "strongroom.sources",
    "DiskSource": "strongroom.sources", "FileRun": "strongroom.sources", "each_source": "strongroom.sources",
    "RestoreResult": "strongroom.results", "RestoreStats": "strongroom.results",
    # storage backends
    "StorageBackend": "strongroom.storage.backends", "ObjectLock": "strongroom.storage.capabilities",
    "Capabilities": "strongroom.storage.capabilities",
    # alert sinks
    "SinkType": "strongroom.services.alertsinks", "SinkFailed": "strongroom.services.alertsinks",
    "Alert": "strongroom.services.alerts",
    # key providers
    "KeyContext": "strongroom.repository.keyproviders", "PassphraseSource": "strongroom.repository.keyproviders",
    "WrappingKey": "strongroom.repository.keyproviders",
    "Secret": "strongroom.secrets",
    # secret providers: what strongroom_register_secret_providers registers, and resolving references
    "SecretProvider": "strongroom.secrets", "SecretResolver": "strongroom.secrets",
    "resolve_secret": "strongroom.secrets",
    # child processes tied to strongroom, and what a strongroom that is gone left running
    "ProcessId": "strongroom.processes", "ProcessInfo": "strongroom.processes",
    "list_processes": "strongroom.processes", "end_process": "strongroom.processes",
    "start_child": "strongroom.processes", "run_child": "strongroom.processes",
    "child_environment": "strongroom.processes", "keep_from_children": "strongroom.processes",
    "children_ended": "strongroom.processes", "cpus": "strongroom.processes",
    # a plugin's command that prints JSON: with the schema version, as every command's (docs/json.md)
    "emit_json": "strongroom.cli.output", "json_document": "strongroom.cli.output",
    # the vault of the running command, for a plugin's command or a workload that needs more than its context
    "command_vault": "strongroom.cli.common",
    # numpy for a plugin's array work, imported without OpenBLAS's thread pool
    "import_numpy": "strongroom.repository.arrays",
    # where a sparse file's data is, so that its holes need not be read
    "data_extents": "strongroom.engine.holeread",
}
_ERRORS = (
    "StrongroomError", "UsageError", "PluginError", "StorageError", "TransientStorageError", "ObjectNotFound",
    "VaultError", "VaultKeyError", "KeyNotAvailable", "NotFound", "ItemNotFound", "PointNotFound",
    "PathNotInPoint", "SourceError", "InvalidSource", "IntegrityError", "RestoreError", "BackupError",
    "PolicyError", "InvalidPolicy", "InvalidSecretReference", "SecretNotAvailable",
)
_EXPORTS.update(dict.fromkeys(_ERRORS, "strongroom.errors"))

__all__ = ["__version__", "create_vault", "open_vault", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strongroom' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def create_vault(url: str, **kwargs: Any) -> Vault:
    """Create a vault at ``url``; keyword arguments as :meth:`strongroom.vault.Vault.create`."""
    from .vault import Vault

    return Vault.create(url, **kwargs)


def open_vault(url: str, **kwargs: Any) -> Vault:
    """Open the vault at ``url``; keyword arguments as :meth:`strongroom.vault.Vault.open`.
    ``vault.close()`` drops the connections its storage keeps open (a vault on a server keeps
    a pool): call it when done, as the command line does at the end of each command."""
    from .vault import Vault

    return Vault.open(url, **kwargs)


if TYPE_CHECKING:  # for type checkers and editors; at run time the names load on first use
    from .catalog.entry import (  # noqa: F401
        BLOCKDEV, CHARDEV, DIR, DISK, FIFO, FILE, HARDLINK, SOCKET, STREAM, SYMLINK, Entry,
    )
    from .catalog.seekable import SeekableReader  # noqa: F401
    from .catalog.tree import normalize_path  # noqa: F401
    from .contexts import BackupContext, PointContext, PointView  # noqa: F401
    from .results import RestoreResult, RestoreStats  # noqa: F401
    from .sources import (  # noqa: F401
        DiskSource, FileRun, FileSource, FolderSource, LinkSource, SourceEntry, SpecialSource, StreamSource,
        each_source,
    )
    from .errors import (  # noqa: F401
        BackupError, IntegrityError, InvalidPolicy, InvalidSource, ItemNotFound, KeyNotAvailable, NotFound,
        ObjectNotFound, PathNotInPoint, PluginError, PointNotFound, PolicyError, RestoreError, SourceError,
        StorageError, StrongroomError, TransientStorageError, UsageError, VaultError, VaultKeyError,
    )
    from .engine.holeread import data_extents  # noqa: F401
    from .home import strongroom_home  # noqa: F401
    from .markers import hookimpl, hookspec  # noqa: F401
    from .models import JOB_STATES, Job, ProtectedItem, RecoveryPoint  # noqa: F401
    from .policy.record import Policy  # noqa: F401
    from .processes import (  # noqa: F401
        ProcessId, ProcessInfo, child_environment, children_ended, cpus, end_process, keep_from_children,
        list_processes, run_child, start_child,
    )
    from .registry import Registry  # noqa: F401
    from .repository.arrays import import_numpy  # noqa: F401
    from .repository.keyproviders import KeyContext, PassphraseSource, WrappingKey  # noqa: F401
    from .secrets import Secret, SecretProvider, SecretResolver, resolve_secret  # noqa: F401
    from .errors import InvalidSecretReference, SecretNotAvailable  # noqa: F401
    from .storage.backends import StorageBackend  # noqa: F401
    from .storage.capabilities import Capabilities, ObjectLock  # noqa: F401
    from .services.alerts import Alert  # noqa: F401
    from .services.alertsinks import SinkFailed, SinkType  # noqa: F401
    from .vault import Vault  # noqa: F401
