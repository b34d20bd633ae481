"""strongroom: self-hosted workload protection.

The public API: open and create vaults, the plugin markers, the records and errors.

    >>> import strongroom
    >>> vault = strongroom.create_vault("/srv/vault")
    >>> vault.protect("files", "home", {"paths": ["/home"]})
    >>> point = vault.backup("home")
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors, models
from .markers import hookimpl, hookspec
from .models import Job, ProtectedItem, RecoveryPoint
from .workload import BackupContext, PointContext, Workload


def create_vault(url: str, **kwargs):
    """Create a vault at ``url``; keyword arguments as :meth:`strongroom.vault.Vault.create`."""
    from .vault import Vault

    return Vault.create(url, **kwargs)


def open_vault(url: str, **kwargs):
    """Open the vault at ``url``; keyword arguments as :meth:`strongroom.vault.Vault.open`."""
    from .vault import Vault

    return Vault.open(url, **kwargs)


__all__ = [
    "__version__", "create_vault", "open_vault", "hookimpl", "hookspec", "errors", "models",
    "Job", "ProtectedItem", "RecoveryPoint", "Workload", "BackupContext", "PointContext",
]
