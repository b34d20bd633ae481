"""FsspecStore: the Store contract over any fsspec filesystem, and open_store().

Object ``name`` lives at ``<root>/<name>`` on the filesystem.  How each operation keeps
the contract of :mod:`strongroom.storage.base`:

- **Local filesystem** (a plain path, or fsspec's ``LocalFileSystem``): plain ``os``
  calls; a plain path opens without fsspec at all (no filesystem object, ``fs`` is None,
  and fsspec is not imported: about 25 ms of a command's start).  ``put`` writes
  ``.tmp-<random>`` in the object's directory (created as needed, mode 0700), fsyncs it,
  renames it over the name with ``os.replace`` and fsyncs the directory, so a crash
  leaves the old object or the new one, plus at worst a tmp file that ``list`` never
  shows.  Objects are created with mode 0600.  Objects of 1 MiB and more (packs) are
  written past the page cache where the filesystem allows it
  (:mod:`strongroom.storage.directwrite`).
- **Object stores** (S3, GCS, Azure, fsspec ``memory``): ``fs.pipe_file`` (one request,
  atomic by the service's own guarantee) and ``fs.cat_file(path, start, end)`` for ranges.
  File-object writes are never used: they are slow on some drivers.
- **Other remote filesystems** (SFTP, FTP, SMB, WebDAV ...): ``pipe_file`` to a tmp name in
  the same directory, then ``fs.mv`` over the name (SFTP uses ``posix-rename``), since a
  plain write there is visible while it is in progress.  Where the driver's ``cat_file``
  ignores byte ranges (sshfs), ranges are read with ``open``, ``seek`` and ``read``.
- **Which driver** serves a scheme, and its default options, is decided by the
  registered storage backends (:mod:`strongroom.storage.backends`); the store's :meth:`~FsspecStore.capabilities`
  (remote or not, operations to keep in flight, object lock support) follow from it.
- **Object lock** (S3 buckets created with it, which are versioned): ``delete`` removes
  every version of the object, or raises :class:`~strongroom.errors.ObjectLocked` while
  one is retained (the object stays readable); per-object retention and hidden objects
  are :mod:`strongroom.storage.locking`'s, answered here by :mod:`strongroom.storage.s3`.
  Other storage answers them with StorageError.
- **Errors** are translated by :func:`strongroom.storage.base.map_error`: missing objects
  raise ObjectNotFound, connection failures TransientStorageError, the rest StorageError.

:func:`open_store` turns a URL or a local path into a store wrapped in the retry
decorator.  It reads no configuration: the vault merges the user's storage options
(:mod:`strongroom.config`) before it opens the store.  The option ``concurrency``
(operations in flight) is the vault's own and is not passed to fsspec.

Options are checked, never dropped without a word: a local folder takes no option but
``concurrency``; for the filesystems whose keyword arguments are known (fsspec's
``memory``, ``s3fs``, ``sshfs``: the names in their constructors' signatures, fsspec's
own, and those of where the implementation passes the rest) any other option raises
:class:`~strongroom.errors.UnknownStorageOption`, naming it and where it came from.
Other implementations get their options unchecked.  A vault created where a regular
file is in the way (the path itself, or a folder above it) raises StorageError saying
which file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import errno
import functools
import importlib
import inspect
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ..errors import ObjectNotFound, StorageError, UnknownStorageOption
from .backends import StorageBackend, backend_for
from .base import TMP_PREFIX, Store, check_name, check_prefix, check_range, is_transient, map_error, redact_url
from .capabilities import LOCAL_CONCURRENCY, REMOTE_CONCURRENCY, Capabilities, ObjectLock
from .directwrite import open_for_writing, write_all
from .ratelimit import LIMIT_OPTIONS, limited

if TYPE_CHECKING:
    import fsspec

__all__ = ["FsspecStore", "local_folder_of", "open_store"]

T = TypeVar("T")

#: fsspec protocols whose single-request writes are atomic (a reader sees all or nothing).
ATOMIC_WRITE_PROTOCOLS = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci", "oss", "memory"}
)
#: fsspec protocols whose objects :mod:`strongroom.storage.s3` can lock.
LOCKING_PROTOCOLS = frozenset({"s3", "s3a"})
#: fsspec protocols that are not reached over a network.
LOCAL_PROTOCOLS = frozenset({"file", "local", "memory"})
#: The storage option that sets :attr:`Capabilities.concurrency` (not passed to fsspec).
CONCURRENCY_OPTION = "concurrency"

_FILE_MODE = 0o600
_DIR_MODE = 0o700
#: Keyword arguments every fsspec filesystem takes (its instance cache, its listings cache).
_FSSPEC_OPTIONS = frozenset({"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths"})
#: Implementations whose keyword arguments are known (see :func:`known_options`): where
#: each sends those its own constructors do not name, and names it takes out of ``kwargs``.
_KNOWN_IMPLEMENTATIONS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "fsspec.implementations.memory.MemoryFileSystem": ((), frozenset()),
    "s3fs.core.S3FileSystem": (("aiobotocore.session:AioSession",), frozenset()),
    "sshfs.spec.SSHFileSystem": (
        ("asyncssh:connect", "asyncssh:SSHClientConnectionOptions.prepare"),
        frozenset({"timeout", "max_sessions"}),
    ),
}
_IGNORED_FSYNC_ERRNOS = frozenset(
    getattr(errno, code) for code in ("EINVAL", "ENOTSUP", "EOPNOTSUPP") if hasattr(errno, code)
)


def _tmp_basename() -> str:
    return f"{TMP_PREFIX}{secrets.token_hex(8)}"


def _local_filesystem_class() -> type:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem


def _plain_local_root(url: str) -> str | None:
    """The root fsspec's ``LocalFileSystem`` gives a plain path (no ``:`` in it, POSIX),
    worked out without fsspec; None for anything else (left to fsspec)."""
    if ":" in url or os.sep != "/" or not url:
        return None
    if url.startswith("/"):
        path = url
    elif url.startswith("~"):
        path = os.path.expanduser(url)
    else:
        path = f"{os.getcwd()}/{'' if url == '.' else url.removeprefix('./')}"
    return path.rstrip("/") or "/"


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def _could_contain(dirname: str, prefix: str) -> bool:
    """Whether names under directory ``dirname`` (relative, '' = root) may match ``prefix``."""
    if not dirname:
        return True
    head = dirname + "/"
    return head.startswith(prefix) or prefix.startswith(head)


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


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
    """A Store over ``fs`` rooted at ``root`` (a path as ``fs`` understands it); ``fs``
    None: a local folder (as with fsspec's ``LocalFileSystem``)."""

    fs: fsspec.AbstractFileSystem | None = attrs.field(repr=False)
    root: str = attrs.field(converter=lambda r: r.rstrip("/") if r != "/" else "", repr=False)
    url: str = attrs.field(default="")
    backend: StorageBackend | None = attrs.field(default=None, repr=False)
    concurrency: int | None = attrs.field(default=None, repr=False)
    _local: bool = attrs.field(init=False, repr=False)
    _atomic: bool = attrs.field(init=False, repr=False)
    _object_lock: ObjectLock | None = attrs.field(default=None, init=False, repr=False)
    _versioned: bool | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # a filesystem object means fsspec is imported already
        self._local = self.fs is None or isinstance(self.fs, _local_filesystem_class())
        if self.backend is not None:
            self._atomic = self.backend.one_request_put
        elif self.fs is None:
            self._atomic = False  # a local folder: tmp file + rename
        else:
            self._atomic = bool(_protocols(self.fs) & ATOMIC_WRITE_PROTOCOLS)
        if not self.url:
            self.url = redact_url(self.root if self._local else self.fs.unstrip_protocol(self.root))

    # --- capabilities ------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """What this store can do (no I/O); see :mod:`strongroom.storage.capabilities`."""
        remote = not (self._local or _protocols(self.fs) & LOCAL_PROTOCOLS)
        if self.concurrency is not None:
            concurrency = self.concurrency
        elif self.backend is not None:
            concurrency = self.backend.concurrency
        else:
            concurrency = REMOTE_CONCURRENCY if remote else LOCAL_CONCURRENCY
        return Capabilities(
            remote=remote,
            concurrency=concurrency,
            atomic_rename=not self._atomic,
            object_lock=self.backend is not None and self.backend.object_lock,
        )

    def direct_read_folder(self) -> str | None:
        """The folder whose files are this store's objects, for a plain local folder
        (see :func:`~strongroom.storage.capabilities.direct_read_folder_of`); None otherwise."""
        if not self._local:
            return None
        return self.root or "/"

    def object_lock(self) -> ObjectLock:
        """The object lock of the storage under this store (an S3 bucket's), asked once
        and remembered."""
        if self._object_lock is None:
            reader = self.backend.read_object_lock if self.backend is not None else None
            self._object_lock = reader(self.fs, self.root) if reader is not None else ObjectLock()
        return self._object_lock

    # --- object lock (strongroom.storage.locking) -------------------------------------

    def _s3(self):
        """The S3 functions when this store can lock objects; else StorageError."""
        if not (self.capabilities().object_lock and _protocols(self.fs) & LOCKING_PROTOCOLS):
            raise StorageError(message=f"{self.url} cannot lock objects (no S3 object lock)")
        from . import s3

        return s3

    def _is_versioned(self) -> bool:
        """Whether deletes must remove versions: the bucket has object lock (asked once;
        storage that cannot say is taken as unversioned, as before object lock)."""
        if self._versioned is None:
            if not (self.capabilities().object_lock and _protocols(self.fs) & LOCKING_PROTOCOLS):
                self._versioned = False
            else:
                try:
                    self._versioned = self.object_lock().enabled
                except StorageError as exc:
                    if is_transient(exc):
                        raise
                    self._versioned = False
        return self._versioned

    def lock_object(self, name: str, until: dt.datetime, mode: str):
        s3 = self._s3()
        return self._call(name, s3.set_retention, self.fs, self._path(name), mode, until)

    def retention(self, name: str):
        s3 = self._s3()
        return self._call(name, s3.object_retention, self.fs, self._path(name))

    def hidden_objects(self, prefix: str = ""):
        check_prefix(prefix)
        s3 = self._s3()
        return [h for h in self._call(prefix or "/", s3.hidden_keys, self.fs, self.root, prefix)
                if _valid_name(h.name)]

    def unhide(self, name: str) -> bool:
        s3 = self._s3()
        return self._call(name, s3.remove_delete_markers, self.fs, self._path(name), name) > 0

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
        if self.backend is not None and not self.backend.ranged_cat:
            return self._call(name, self._get_range_open, path, offset, length)
        return self._call(name, self._get_range_cat, path, offset, length)

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
            elif self._is_versioned():
                from .s3 import delete_versions

                self._call(name, delete_versions, self.fs, path, name, dt.datetime.now(dt.timezone.utc))
            else:
                self._call(name, self.fs.rm_file, path)
        except ObjectNotFound:
            pass

    # --- local filesystem --------------------------------------------------------------

    def _put_local(self, path: str, data: bytes | bytearray | memoryview) -> None:
        directory = os.path.dirname(path)
        tmp = f"{directory}/{_tmp_basename()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        size = memoryview(data).nbytes
        try:
            fd, direct = open_for_writing(tmp, flags, _FILE_MODE, size)
        except FileNotFoundError:
            os.makedirs(directory, mode=_DIR_MODE, exist_ok=True)
            _fsync_dir(os.path.dirname(directory))
            fd, direct = open_for_writing(tmp, flags, _FILE_MODE, size)
        try:
            try:
                write_all(fd, data, direct=direct)
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
            # no larger buffer than what is there: callers ask for up to 16 MiB to read a
            # small object whole, and a buffer of the size asked is mapped, then shrunk
            length = min(length, max(0, os.fstat(fd).st_size - offset))
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

    def _get_range_cat(self, path: str, offset: int, length: int) -> bytes:
        try:
            return self.fs.cat_file(path, start=offset, end=offset + length)
        except OSError as exc:
            # S3 answers a range that starts past the end with 416 (EINVAL from s3fs);
            # the contract says: no bytes
            if exc.errno == errno.EINVAL and self.fs.size(path) <= offset:
                return b""
            raise

    def _get_range_open(self, path: str, offset: int, length: int) -> bytes:
        with self.fs.open(path, "rb", **(self.backend.range_open_options if self.backend else {})) as f:
            f.seek(offset)
            parts = []
            got = 0
            while got < length:
                more = f.read(length - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            return b"".join(parts)

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


def local_folder_of(store: object) -> str | None:
    """The absolute local folder that ``store`` keeps its objects in (asking the inner
    store of decorators), or None for a store that is not a local folder."""
    for _ in range(32):  # decorators nest a few levels deep, never cyclically
        if isinstance(store, FsspecStore):
            return os.path.abspath(store.root) if store._local else None
        store = getattr(store, "inner", None)
        if store is None:
            break
    return None


def _keyword_names(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The names ``fn`` takes as keywords, and whether it also takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self", "cls"}, any(p.kind is p.VAR_KEYWORD for p in params)


def _resolve_callable(spec: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


@functools.cache
def known_options(cls: type) -> frozenset[str] | None:
    """The storage options fsspec filesystem ``cls`` takes, or None when they are not
    known (an implementation not in :data:`_KNOWN_IMPLEMENTATIONS`).

    They are the names of its constructors' keyword arguments, up the class tree while
    an ``__init__`` passes ``**kwargs`` on, fsspec's own (:data:`_FSSPEC_OPTIONS`), and
    the keyword arguments of the callables it passes the rest to.
    """
    import fsspec

    if issubclass(cls, _local_filesystem_class()):
        return frozenset()  # the local store uses plain os calls: no fsspec option applies
    known = _KNOWN_IMPLEMENTATIONS.get(f"{cls.__module__}.{cls.__qualname__}")
    if known is None:
        return None
    targets, extra = known
    names = set(_FSSPEC_OPTIONS) | extra
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        if klass is fsspec.AbstractFileSystem:
            break
        own, more = _keyword_names(init)
        names |= own
        if not more:
            break
    for target in targets:
        try:
            names |= _keyword_names(_resolve_callable(target))[0]
        except (ImportError, AttributeError, ValueError, TypeError):
            return None  # another version of the package than the one this knows: no check
    return frozenset(names)


def _check_options(cls: type, options: dict[str, Any], origins: dict[str, str], url: str) -> None:
    """UnknownStorageOption for the first option ``cls`` does not take (see :func:`known_options`)."""
    known = known_options(cls)
    if known is None:
        return
    if issubclass(cls, _local_filesystem_class()):
        _refuse_local_options(options, origins)
    for option in sorted(set(options) - known):
        origin = origins.get(option, "")
        storage = f"{url.split('://', 1)[0]} storage"
        close = difflib.get_close_matches(option, sorted(known | {CONCURRENCY_OPTION, *LIMIT_OPTIONS}), n=1)
        hint = f"; did you mean {close[0]}?" if close else "."
        raise UnknownStorageOption(
            option=option, origin=f" (from {origin})" if origin and origin != "given" else "",
            storage=storage, hint=hint,
        )


def _refuse_local_options(options: dict[str, Any], origins: dict[str, str]) -> None:
    """UnknownStorageOption for the first of ``options``: a local folder takes none."""
    for option in sorted(options):
        origin = origins.get(option, "")
        raise UnknownStorageOption(
            option=option, origin=f" (from {origin})" if origin and origin != "given" else "",
            storage="a local folder", hint=f"; it takes only {CONCURRENCY_OPTION}, limit_upload and limit_download.",
        )


def _filesystem_class(url: str) -> type | None:
    """The fsspec class that serves a plain (not chained) URL or path, None if unknown."""
    import fsspec

    if "::" in url:
        return None
    protocol = fsspec.core.split_protocol(url)[0] or "file"
    try:
        return fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):
        return None  # url_to_fs says why, below


def _file_in_the_way(root: str) -> str | None:
    """The regular file (or other non-folder) at ``root`` or above it, if there is one."""
    path = os.path.abspath(root)
    while True:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent
            continue
        except OSError:
            return None
        return None if stat.S_ISDIR(st.st_mode) else path


def _make_local_root(store: FsspecStore, shown: str) -> None:
    try:
        os.makedirs(store.root, mode=_DIR_MODE, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = _file_in_the_way(store.root)
        if blocker is None:
            raise map_error(exc, shown) from exc
        where = "it" if os.path.abspath(blocker) == os.path.abspath(store.root) else blocker
        raise StorageError(
            message=f"cannot make a vault folder at {shown}: {where} is a file, not a folder"
        ) from None
    except Exception as exc:
        mapped = map_error(exc, shown)
        if mapped is exc:
            raise
        raise mapped from exc


def open_store(
    url: str,
    storage_options: dict | None = None,
    *,
    create: bool = False,
    retry: bool = True,
    backends: Iterable[StorageBackend] | None = None,
) -> Store:
    """Open the store at ``url``: a local path (relative or absolute) or any fsspec URL.

    ``storage_options`` go to the fsspec filesystem (credentials, endpoint, ...) over the
    backend's defaults; ``concurrency`` sets the store's
    :attr:`~strongroom.storage.capabilities.Capabilities.concurrency` instead.  (The
    options of the user's configuration are merged by the caller:
    :func:`strongroom.config.storage_options_for`.)  ``backends`` are the registered
    storage backends (default: the built-in ones, :mod:`strongroom.storage.backends`).
    With ``create`` the root directory (an S3 bucket, if needed) is made (StorageError
    naming the regular file in the way, if there is one); otherwise a missing root is
    not an error here.  An option the filesystem does not take raises
    UnknownStorageOption (see the module docstring).  An unknown protocol or a missing driver package
    raises StorageError saying what to install.  The options ``limit_upload`` and
    ``limit_download`` (KiB/s) wrap the store in a
    :class:`~strongroom.storage.ratelimit.RateLimitedStore`.  Unless ``retry`` is false,
    the store is wrapped in :class:`~strongroom.storage.retry.RetryingStore` (outermost,
    so every attempt's bytes count against the limit).
    """
    from .retry import RetryingStore

    shown = redact_url(url)
    origins: dict[str, str] = dict(getattr(storage_options, "origins", None) or {})
    options = dict(storage_options or {})
    concurrency = options.pop(CONCURRENCY_OPTION, None)
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise StorageError(message=f"storage option {CONCURRENCY_OPTION} must be a positive integer")
    limit = limited(options)  # pops limit_upload/limit_download; StorageError for a bad value
    backend = backend_for(url, backends)
    if backend is not None and backend.opener is not None:  # a store of its own, not fsspec's
        backend.load()  # StorageError naming what to install
        if concurrency is not None:
            options[CONCURRENCY_OPTION] = concurrency
        store = limit(_resolve_callable(backend.opener)(url, options, create=create))
        return RetryingStore(store) if retry else store
    local_root = _plain_local_root(url) if backend is None else None
    if local_root is not None:  # a local folder: no fsspec
        _refuse_local_options(options, origins)
        store = FsspecStore(None, local_root, concurrency=concurrency)
        if create:
            _make_local_root(store, shown)
        store = limit(store)
        return RetryingStore(store) if retry else store
    import fsspec

    try:
        if backend is not None:
            cls = backend.load()
            _check_options(cls, options, origins, url)
            options = backend.options(options)
            # the class's own URL parsing, as fsspec.core.url_to_fs does it, but with the
            # implementation the backend names instead of whatever fsspec's registry holds
            kwargs = {**cls._get_kwargs_from_urls(url), **options}
            fs, root = cls(**kwargs), cls._strip_protocol(url)
        else:
            plain_cls = _filesystem_class(url)
            if plain_cls is not None:
                _check_options(plain_cls, options, origins, url)
            fs, root = fsspec.core.url_to_fs(url, **options)
    except (StorageError, UnknownStorageOption):
        raise
    except (ImportError, ValueError, TypeError) as exc:
        raise StorageError(message=f"cannot open {shown}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        mapped = map_error(exc, shown)
        if mapped is exc:
            raise
        raise mapped from exc
    plain_path = "://" not in url and isinstance(fs, _local_filesystem_class())
    store = FsspecStore(fs, root, url="" if plain_path else shown, backend=backend,
                        concurrency=concurrency)
    if create:
        if store._local:
            _make_local_root(store, shown)
        else:
            store._call(shown, fs.makedirs, store.root, exist_ok=True)
    store = limit(store)
    return RetryingStore(store) if retry else store
