"""Storage backends: which fsspec implementation serves each URL scheme, and how.

A :class:`StorageBackend` names a URL scheme's fsspec filesystem and says what fsspec
does not: how a put is made atomic, how ranged reads work, the backend's capabilities
(object lock), its default options, and what to install.  Backends are plugins: every
package registers its own through the ``strongroom_register_storage_backends`` hook
(``registry.add(backend.name, backend)``); the built-in ones below are registered by the
essential ``storage`` plugin (:mod:`strongroom.storage.builtin`) and are what
:func:`~strongroom.storage.open_store` uses when it is given no registry.  URLs whose
scheme no backend claims (plain paths, ``file://``, ``memory://``, chained URLs) go to
fsspec as they are.

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
from typing import Any, Callable, Iterable

import attrs

from ..errors import PluginError, StorageError
from .capabilities import REMOTE_CONCURRENCY, ObjectLock

__all__ = ["BUILTIN_BACKENDS", "StorageBackend", "backend_for"]


@attrs.frozen
class StorageBackend:
    """How the vault uses one fsspec implementation for the URL schemes ``schemes``."""

    #: the registered name (``s3``, ``sftp`` ...)
    name: str
    schemes: tuple[str, ...]
    #: the module and class of the fsspec filesystem (imported when a vault is opened)
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
    #: operations to keep in flight
    concurrency: int = REMOTE_CONCURRENCY
    #: ``read_object_lock(fs, root)`` asks the storage about its object lock (None: the
    #: backend has no object lock)
    read_object_lock: Callable[[Any, str], ObjectLock] | None = None
    #: options under the user's
    defaults: dict[str, Any] = attrs.field(factory=dict)
    #: ``complete_options(options)`` fills in what depends on the machine (None: nothing)
    complete_options: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: a store that is not an fsspec filesystem: ``"module:function"``, called as
    #: ``function(url, options, create=...)`` to open it (``module``/``class_name`` then
    #: name what must be installed for it); None: the fsspec class above
    opener: str | None = None

    @property
    def object_lock(self) -> bool:
        """Whether storage of this kind can lock objects (whether it does: ``read_object_lock``)."""
        return self.read_object_lock is not None

    def load(self) -> type:
        """The implementation class; StorageError naming the package when it is missing."""
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
        return self.complete_options(options) if self.complete_options is not None else options


def _known_hosts(options: dict[str, Any]) -> dict[str, Any]:
    """sshfs checks no host key by default: check them against ``~/.ssh/known_hosts``."""
    if "known_hosts" in options:
        return options
    path = os.path.expanduser("~/.ssh/known_hosts")
    if not os.path.exists(path):
        raise StorageError(
            message="cannot check the SFTP server's host key: ~/.ssh/known_hosts does not exist; "
            "add the server to it (ssh-keyscan), or give --storage-option known_hosts=FILE"
        )
    return {**options, "known_hosts": path}


_REMOTE = {"skip_instance_cache": True}
_OBJECT_STORE = {**_REMOTE, "use_listings_cache": False}


def _s3_object_lock(fs: Any, root: str) -> ObjectLock:
    """:func:`strongroom.storage.s3.root_object_lock`, imported when a vault on S3 is opened,
    not when the storage plugin registers at every command's start-up."""
    from .s3 import root_object_lock

    return root_object_lock(fs, root)


#: The backends of the built-in ``storage`` plugin.
BUILTIN_BACKENDS: tuple[StorageBackend, ...] = (
    StorageBackend("s3", ("s3", "s3a"), "s3fs", "S3FileSystem", "'strongroom[s3]'", one_request_put=True,
                   read_object_lock=_s3_object_lock, defaults=_OBJECT_STORE),
    StorageBackend("sftp", ("sftp", "ssh"), "sshfs", "SSHFileSystem", "'strongroom[sftp]'", one_request_put=False,
                   ranged_cat=False, range_open_options={"block_size": 1 << 18, "max_requests": 64},
                   defaults=_REMOTE, complete_options=_known_hosts),
    StorageBackend("gcs", ("gs", "gcs"), "gcsfs", "GCSFileSystem", "gcsfs", one_request_put=True,
                   defaults=_OBJECT_STORE),
    StorageBackend("azure", ("az", "abfs", "abfss"), "adlfs", "AzureBlobFileSystem", "adlfs",
                   one_request_put=True, defaults=_OBJECT_STORE),
    # a vault on a strongroom server: https://HOST:PORT/vaults/NAME (docs/server.md, "Clients")
    StorageBackend("server", ("https",), "httpx", "Client", "'strongroom[server]'", one_request_put=True,
                   opener="strongroom.storage.httpstore:open_http_store"),
)


def backend_for(url: str, backends: Iterable[StorageBackend] | None = None) -> StorageBackend | None:
    """The backend of ``backends`` (default: the built-in ones) whose schemes include
    ``url``'s (plain URLs only, not chained with ``::``); None for other URLs.  Two
    backends claiming the scheme is a PluginError."""
    if "::" in url or "://" not in url:
        return None
    scheme = url.split("://", 1)[0].lower()
    found = [b for b in (BUILTIN_BACKENDS if backends is None else backends) if scheme in b.schemes]
    if len(found) > 1:
        names = " and ".join(f"'{b.name}'" for b in found)
        raise PluginError(message=f"URL scheme {scheme}:// is claimed by the storage backends {names}")
    return found[0] if found else None
