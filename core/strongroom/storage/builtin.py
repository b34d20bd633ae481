"""The built-in ``storage`` plugin: registers the S3, SFTP, GCS and Azure backends.

Essential (it cannot be disabled): vault URLs of these schemes depend on it.  A
third-party package adds a backend the same way, with its own hook implementation.
"""

from __future__ import annotations

from ..markers import hookimpl
from ..registry import Registry
from .backends import BUILTIN_BACKENDS, StorageBackend

__all__ = ["strongroom_register_storage_backends"]


@hookimpl
def strongroom_register_storage_backends(registry: Registry[StorageBackend]) -> None:
    for backend in BUILTIN_BACKENDS:
        registry.add(backend.name, backend)
