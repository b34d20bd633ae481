"""FsspecStore: the Store contract over any fsspec filesystem, and open_store().

Object ``name`` lives at ``<root>/<name>`` on the filesystem.  How each operation keeps
the contract of :mod:`strongroom.storage.base`:

- **Local filesystem** (fsspec's ``LocalFileSystem``, the default for plain paths): plain
  ``os`` calls.  ``put`` writes ``.tmp-<random>`` in the object's directory (created as
  needed, mode 0700), fsyncs it, renames it over the name with ``os.replace`` and fsyncs
  the directory, so a crash leaves the old object or the new one, plus at worst a tmp
  file that ``list`` never shows.  Objects are created with mode 0600.
- **Object stores** (S3, GCS, Azure, fsspec ``memory``): ``fs.pipe_file`` (one request,
  atomic by the service's own guarantee) and ``fs.cat_file(path, start, end)`` for ranges.
  File-object writes are never used: they are slow on some drivers.
- **Other remote filesystems** (SFTP, FTP, SMB, WebDAV ...): ``pipe_file`` to a tmp name in
  the same directory, then ``fs.mv`` over the name (SFTP uses ``posix-rename``), since a
  plain write there is visible while it is in progress.
- **Errors** are translated by :func:`strongroom.storage.base.map_error`: missing objects
  raise ObjectNotFound, connection failures TransientStorageError, the rest StorageError.

:func:`open_store` turns a URL or a local path into a store wrapped in the retry
decorator.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import ObjectNotFound, StorageError
from .base import TMP_PREFIX, Store, check_name, check_prefix, check_range, map_error, redact_url

__all__ = ["FsspecStore", "open_store"]

T = TypeVar("T")

#: fsspec protocols whose single-request writes are atomic (a reader sees all or nothing).
ATOMIC_WRITE_PROTOCOLS = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "memory"}
)

_FILE_MODE = 0o600
_DIR_MODE = 0o700
_IGNORED_FSYNC_ERRNOS = frozenset(
    getattr(errno, code) for code in ("EINVAL", "ENOTSUP", "EOPNOTSUPP") if hasattr(errno, code)
)


def _tmp_basename() -> str:
    return f"{TMP_PREFIX}{secrets.token_hex(8)}"


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def _could_contain(dirname: str, prefix: str) -> bool:
    """Whether names under directory ``dirname`` (relative, '' = root) may match ``prefix``."""
    if not dirname:
        return True
    head = dirname + "/"
    return head.startswith(prefix) or prefix.startswith(head)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _IGNORED_FSYNC_ERRNOS:
            raise
    finally:
        os.close(fd)


@attrs.define(eq=False)
class FsspecStore:
    """A Store over ``fs`` rooted at ``root`` (a path as ``fs`` understands it)."""

    fs: fsspec.AbstractFileSystem = attrs.field(repr=False)
    root: str = attrs.field(converter=lambda r: r.rstrip("/") if r != "/" else "", repr=False)
    url: str = attrs.field(default="")
    _local: bool = attrs.field(init=False, repr=False)
    _atomic: bool = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._local = isinstance(self.fs, LocalFileSystem)
        self._atomic = bool(_protocols(self.fs) & ATOMIC_WRITE_PROTOCOLS)
        if not self.url:
            self.url = redact_url(self.root if self._local else self.fs.unstrip_protocol(self.root))

    # --- internals ---------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}"

    def _call(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = map_error(exc, name)
            if mapped is exc:
                raise
            raise mapped from exc

    # --- the Store protocol ------------------------------------------------------------

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        path = self._path(name)
        if self._local:
            self._call(name, self._put_local, path, data)
        else:
            self._call(name, self._put_remote, path, data)

    def get(self, name: str) -> bytes:
        path = self._path(name)
        if self._local:
            return self._call(name, self._get_local, path)
        return self._call(name, self.fs.cat_file, path)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        path = self._path(name)
        if self._local:
            return self._call(name, self._get_range_local, path, offset, length)
        if length == 0:
            self.size(name)
            return b""
        return self._call(name, self.fs.cat_file, path, start=offset, end=offset + length)

    def size(self, name: str) -> int:
        path = self._path(name)
        if self._local:
            return self._call(name, os.stat, path).st_size
        return int(self._call(name, self.fs.size, path))

    def exists(self, name: str) -> bool:
        path = self._path(name)
        try:
            if self._local:
                return stat.S_ISREG(self._call(name, os.stat, path).st_mode)
            return self._call(name, self.fs.info, path).get("type") != "directory"
        except ObjectNotFound:
            return False

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        base = prefix.rpartition("/")[0]
        if self._local:
            names = self._call(prefix or "/", self._list_local, base, prefix)
        else:
            names = self._call(prefix or "/", self._list_remote, base, prefix)
        return iter(names)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            if self._local:
                self._call(name, os.unlink, path)
            else:
                self._call(name, self.fs.rm_file, path)
        except ObjectNotFound:
            pass

    # --- local filesystem --------------------------------------------------------------

    def _put_local(self, path: str, data: bytes | bytearray | memoryview) -> None:
        directory = os.path.dirname(path)
        tmp = f"{directory}/{_tmp_basename()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, _FILE_MODE)
        except FileNotFoundError:
            os.makedirs(directory, mode=_DIR_MODE, exist_ok=True)
            _fsync_dir(os.path.dirname(directory))
            fd = os.open(tmp, flags, _FILE_MODE)
        try:
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(directory)

    @staticmethod
    def _get_local(path: str) -> bytes:
        with open(path, "rb", buffering=0) as f:
            return f.read()

    @staticmethod
    def _get_range_local(path: str, offset: int, length: int) -> bytes:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            first = os.pread(fd, length, offset)
            if len(first) == length or not first:
                return first
            parts = [first]
            got = len(first)
            while got < length:
                more = os.pread(fd, length - got, offset + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            return b"".join(parts)
        finally:
            os.close(fd)

    def _list_local(self, base: str, prefix: str) -> list[str]:
        found: list[str] = []

        def walk(rel_dir: str) -> None:
            abs_dir = f"{self.root}/{rel_dir}" if rel_dir else self.root
            try:
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):
                    continue
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if _could_contain(rel, prefix):
                        walk(rel)
                elif entry.is_file(follow_symlinks=False) and rel.startswith(prefix):
                    found.append(rel)

        walk(base)
        return found

    # --- remote filesystems ------------------------------------------------------------

    def _put_remote(self, path: str, data: bytes | bytearray | memoryview) -> None:
        value = data if isinstance(data, bytes) else bytes(data)
        target = path
        if not self._atomic:
            target = f"{path.rpartition('/')[0]}/{_tmp_basename()}"
        try:
            self.fs.pipe_file(target, value)
        except FileNotFoundError:
            self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)
            self.fs.pipe_file(target, value)
        if target != path:
            try:
                self.fs.mv(target, path)
            except BaseException:
                try:
                    self.fs.rm_file(target)
                except Exception:
                    pass
                raise

    def _list_remote(self, base: str, prefix: str) -> list[str]:
        top = f"{self.root}/{base}" if base else self.root
        try:
            paths = self.fs.find(top or "/", withdirs=False, detail=False)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        names = []
        for path in paths:
            if not path.startswith(self.root + "/"):
                continue
            rel = path[start:]
            if rel.startswith(prefix) and not rel.rpartition("/")[2].startswith(TMP_PREFIX):
                names.append(rel)
        return sorted(names)


def open_store(
    url: str,
    storage_options: dict | None = None,
    *,
    create: bool = False,
    retry: bool = True,
) -> Store:
    """Open the store at ``url``: a local path (relative or absolute) or any fsspec URL.

    ``storage_options`` go to the fsspec filesystem (credentials, endpoint, ...).  With
    ``create`` the root directory is made; otherwise a missing root is not an error here.
    An unknown protocol or a missing driver package raises StorageError carrying fsspec's
    advice (for example "Install s3fs to access S3").  Unless ``retry`` is false, the
    store is wrapped in :class:`~strongroom.storage.retry.RetryingStore`.
    """
    from .retry import RetryingStore

    shown = redact_url(url)
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise StorageError(message=f"cannot open {shown}: {exc}") from exc
    except Exception as exc:
        mapped = map_error(exc, shown)
        if mapped is exc:
            raise
        raise mapped from exc
    plain_path = "://" not in url and isinstance(fs, LocalFileSystem)
    store = FsspecStore(fs, root, url="" if plain_path else shown)
    if create:
        if store._local:
            store._call(shown, os.makedirs, store.root, mode=_DIR_MODE, exist_ok=True)
        else:
            store._call(shown, fs.makedirs, store.root, exist_ok=True)
    return RetryingStore(store) if retry else store
