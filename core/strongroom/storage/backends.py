"""Which fsspec implementation the vault uses for each URL scheme, and how.

fsspec picks an implementation per protocol from its registry, which installed
packages can change through entry points (installing ``sshfs`` takes ``sftp://`` and
``ssh://`` over from fsspec's own paramiko driver).  The vault does not leave that to
chance: for the schemes below it names the implementation, checks that it is
installed (else a StorageError saying which extra to install), and knows how to use it:

========== ============================ ============== ==============================
scheme     implementation               puts           ranged reads
========== ============================ ============== ==============================
s3, s3a    ``s3fs.S3FileSystem``        one request    ``cat_file(start, end)``
sftp, ssh  ``sshfs.SSHFileSystem``      tmp + rename   ``open``, ``seek``, ``read``
gs, gcs    ``gcsfs.GCSFileSystem``      one request    ``cat_file(start, end)``
az, abfs   ``adlfs.AzureBlobFileSystem`` one request   ``cat_file(start, end)``
========== ============================ ============== ==============================

Why sshfs (asyncssh) for SFTP and not fsspec's paramiko driver, measured on loopback
(``docs/storage.md`` has the figures): paramiko's file writes are not pipelined (5 MB
took 4.5 s), one paramiko session cannot be shared between threads (the server drops
the connection), and even with one connection per thread and pipelined writes it
moved about 95 MB/s against sshfs's 100-110 MB/s up and 155 MB/s down, on one
connection with many requests in flight.  sshfs's ``cat_file`` ignores byte ranges, so
ranges are read through a file object instead, with 256 KiB requests, 64 in flight
(316 MiB/s on loopback against 138 MiB/s with sshfs's defaults).  sshfs turns host-key checking off by
default; the vault turns it back on (``~/.ssh/known_hosts`` unless ``known_hosts`` is
given).

Default storage options, which a user's options override: remote filesystems get
``skip_instance_cache`` (each vault owns its connection, and no process-wide cache
keeps credentials), and object stores ``use_listings_cache=False`` (a cached listing
would hide objects other processes wrote since).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import attrs

from ..errors import StorageError
from .capabilities import LOCAL_CONCURRENCY, REMOTE_CONCURRENCY

__all__ = ["Backend", "BACKENDS", "backend_for"]


@attrs.frozen
class Backend:
    """How the vault uses one fsspec implementation."""

    name: str
    schemes: tuple[str, ...]
    module: str
    class_name: str
    #: what to ``pip install`` for it
    install: str
    #: a put is one request that the service makes atomic (else: tmp name + rename)
    one_request_put: bool
    #: ``cat_file(path, start, end)`` honours the range (else: open, seek, read)
    ranged_cat: bool = True
    #: keyword arguments of ``open`` for ranged reads (when not ``ranged_cat``)
    range_open_options: dict[str, Any] = attrs.field(factory=dict)
    concurrency: int = REMOTE_CONCURRENCY
    object_lock: bool = False
    defaults: dict[str, Any] = attrs.field(factory=dict)

    def load(self) -> type:
        """The implementation class; StorageError naming the extra when it is missing."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise StorageError(
                message=f"{self.name} storage needs the {self.module.split('.')[0]} package "
                f"({exc}); install it with: pip install {self.install}"
            ) from None
        return getattr(module, self.class_name)

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The storage options to use: the backend's defaults under the ``given`` ones."""
        options = {**self.defaults, **given}
        if self.name == "sftp" and "known_hosts" not in given:
            options["known_hosts"] = _default_known_hosts()
        return options


def _default_known_hosts() -> str:
    path = os.path.expanduser("~/.ssh/known_hosts")
    if not os.path.exists(path):
        raise StorageError(
            message="cannot check the SFTP server's host key: ~/.ssh/known_hosts does not exist; "
            "add the server to it (ssh-keyscan), or give --storage-option known_hosts=FILE"
        )
    return path


_REMOTE = {"skip_instance_cache": True}
_OBJECT_STORE = {**_REMOTE, "use_listings_cache": False}

BACKENDS: tuple[Backend, ...] = (
    Backend("s3", ("s3", "s3a"), "s3fs", "S3FileSystem", "'strongroom[s3]'", one_request_put=True,
            object_lock=True, defaults=_OBJECT_STORE),
    Backend("sftp", ("sftp", "ssh"), "sshfs", "SSHFileSystem", "'strongroom[sftp]'", one_request_put=False,
            ranged_cat=False, range_open_options={"block_size": 1 << 18, "max_requests": 64},
            defaults=_REMOTE),
    Backend("gcs", ("gs", "gcs"), "gcsfs", "GCSFileSystem", "gcsfs", one_request_put=True,
            defaults=_OBJECT_STORE),
    Backend("azure", ("az", "abfs", "abfss"), "adlfs", "AzureBlobFileSystem", "adlfs",
            one_request_put=True, defaults=_OBJECT_STORE),
)


def backend_for(url: str) -> Backend | None:
    """The backend for ``url`` (plain, not chained with ``::``), or None for other URLs."""
    if "::" in url or "://" not in url:
        return None
    scheme = url.split("://", 1)[0].lower()
    for backend in BACKENDS:
        if scheme in backend.schemes:
            return backend
    return None

