"""Walking the source of a ``files`` item.

A :class:`Scanner` turns a list of source paths into a stream of :class:`ScannedEntry`
records, the metadata of every file, directory, link and special file to back up.  It
never reads file content and never follows a symbolic link.

Layout of the point: a source path ``P`` (made absolute and normalised) appears under its
absolute path without the leading ``/``.  Backing up ``/srv/www`` yields ``srv`` (a
directory with the metadata of ``/srv``), ``srv/www``, then ``srv/www/...``.  The parents
of the source paths are emitted once each, before anything under them, and only if
something under them is kept.  Parents are read with ``os.stat`` (a parent that is a
symlink to a directory appears as that directory, so files are found where they were
named); a source path itself is read with ``os.lstat`` (a source that is a symlink is
backed up as the symlink).  A source path inside another one is scanned once.  ``/`` as a
source yields its children at the top of the point.

Order, which the backup engine relies on to know when a directory is complete: pre-order
depth first; a directory comes before its contents; the children of a directory come
sorted by the bytes of their names (``os.fsencode``); the whole subtree of a directory
comes before its next sibling.  Equivalently, the points' paths, split at ``/`` and
encoded, are in strictly increasing lexicographic order.

Hardlinks: a regular file with ``nlink > 1`` whose ``(dev, ino)`` was already yielded is
yielded with type ``HARDLINK`` and ``target`` set to the path of its first name.

Filters (glob patterns, see :mod:`strongroom_files.patterns`): an excluded entry is
skipped, and an excluded directory is not descended.  With includes, only entries
matching an include are kept, plus the directories on the way to them; a directory that
matches an include is kept with its whole subtree.  Source paths are filtered like any
entry.  With ``one_file_system``, a directory on another device than its source path is
emitted but not descended.

Tagged folders: with ``exclude_if_present`` (file names), a directory holding an entry
of one of those names (any type, a symbolic link not followed) is left out whole, itself
included, as an excluded directory is; with ``exclude_caches``, so is a directory holding
a ``CACHEDIR.TAG`` regular file whose content starts with the standard signature
(:data:`CACHEDIR_SIGNATURE`, https://bford.info/cachedir/).  A source path that is such a
directory is left out too.  Neither records a warning: it is what was asked.

Folders left out (``leave_out``, the vault's own folder when it lies inside a source):
such a folder, wherever the walk meets it (found by device and inode, so another path
to it counts too), is neither emitted nor descended, and a :class:`ScanWarning` names
it; a source path at or inside one is left out the same way.

Listing ahead (off by default): the folders the walk enters next can be listed in a
second thread, up to :data:`LIST_AHEAD` of them (``scandir``, each child's ``lstat`` and
the names of its extended attributes), so a child's metadata is that of the moment its
folder was listed.  A folder with a tag that leaves it out, an excluded one, a folder
left out or (``one_file_system``) on another device is not listed ahead.  What the scan
yields and warns about does not depend on it.  It is off because it does not pay: the
thread needs the GIL back after each of its system calls while the walk holds it, so
the two hand it over two or three times per file (about 1,600 voluntary context
switches against 100 for a backup of the unchanged 2 GiB corpus), and the walk waited
for the folders anyway.

Errors: a source path that does not exist raises :class:`~strongroom.errors.SourceError`
when the scanner is built.  Anything that goes wrong later (permission denied, an entry
vanishing during the scan, an unreadable link or xattr) is appended to
``Scanner.warnings`` as a :class:`ScanWarning` naming the absolute path, and the scan
goes on.
"""

from __future__ import annotations

import errno
import grp
import operator
import os
import pwd
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import attrs

from strongroom import (
    BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK, Entry, FileSource, FolderSource, LinkSource,
    SourceError, SpecialSource,
)

from .patterns import Matcher, compile_patterns

__all__ = ["CACHEDIR_SIGNATURE", "ScanWarning", "ScannedEntry", "Scanner"]

_KINDS = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFCHR: CHARDEV,
    stat.S_IFBLK: BLOCKDEV,
    stat.S_IFSOCK: SOCKET,
}
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})
_VANISHED = "vanished during backup"
_LEFT_OUT = "the vault itself is stored here: left out of the backup"

#: The first bytes of a cache directory tag (``CACHEDIR.TAG``), by the Cache Directory
#: Tagging Specification.
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


#: What a scan yields: the source entry of each file, folder, link and special file.
#: ``path`` is point-relative (``home/alice/a.txt``), ``abspath`` the path on this
#: machine; ``entry`` has no chunks or subtree.
ScannedEntry = FileSource | FolderSource | LinkSource | SpecialSource


@attrs.frozen
class ScanWarning:
    """Something the scan had to skip; ``path`` is the absolute path on this machine."""

    path: str
    reason: str


# --- sources -----------------------------------------------------------------------------


def _normalise(path: str | os.PathLike[str] | bytes) -> str:
    norm = os.path.normpath(os.path.abspath(os.fsdecode(path)))
    return "/" + norm.lstrip("/")


def _components(path: str) -> tuple[bytes, ...]:
    return tuple(os.fsencode(part) for part in path.split("/") if part)


def _source_trie(paths: Sequence[str]) -> dict | None:
    """Nested dicts of path components; ``None`` marks a source (its subtree is scanned).

    A source inside another source is dropped.  ``None`` as a whole means ``/`` itself.
    """
    trie: dict = {}
    for path in sorted(set(paths), key=_components):
        if path == "/":
            return None
        node: dict | None = trie
        *parents, last = path[1:].split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if node is None:  # inside a source already listed (sorted: parents first)
                break
        else:
            node[last] = None
    return trie


def _check_exists(path: str) -> None:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceError(message=f"source path {path} does not exist") from None
    except OSError as exc:
        raise SourceError(message=f"source path {path} is not accessible: {exc.strerror}") from None


#: At most this many folders are listed ahead of the walk (0: none; module docstring).
#: With 4, a backup of the unchanged 2 GiB corpus took 1.05 s of wall and CPU against
#: 0.85 s with none, and one of 100,000 unchanged small files the same CPU.
LIST_AHEAD = 0
_TAGGED = object()  # a folder listed ahead holds a marker that leaves it out
_S_ISREG = stat.S_ISREG
_name = operator.attrgetter("name")
_listxattr = os.listxattr


def _name_key(entry: os.DirEntry[str]) -> bytes:
    return os.fsencode(entry.name)


# --- the scanner -------------------------------------------------------------------------


def _patterns(values) -> tuple[str, ...]:  # a Python function: attrs reads a built-in's signature slowly
    return tuple(values)


@attrs.define
class Scanner:
    """Walks source paths and yields their entries in point order (see module docs)."""

    paths: tuple[str, ...] = attrs.field(converter=lambda ps: tuple(_normalise(p) for p in ps))
    excludes: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_patterns)
    includes: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_patterns)
    one_file_system: bool = attrs.field(default=False, kw_only=True)
    exclude_if_present: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=_patterns)
    exclude_caches: bool = attrs.field(default=False, kw_only=True)
    leave_out: tuple[str, ...] = attrs.field(
        default=(), kw_only=True, converter=lambda ps: tuple(_normalise(p) for p in ps)
    )
    warnings: list[ScanWarning] = attrs.field(factory=list, init=False)
    _excluded: Matcher | None = attrs.field(init=False, repr=False)
    _included: Matcher | None = attrs.field(init=False, repr=False)
    _trie: dict | None = attrs.field(init=False, repr=False)
    _left_out: dict[tuple[int, int], str] = attrs.field(factory=dict, init=False, repr=False)
    _links: dict[tuple[int, int], str] = attrs.field(factory=dict, init=False, repr=False)
    _pending: list[ScannedEntry] = attrs.field(factory=list, init=False, repr=False)
    _users: dict[int, str] = attrs.field(factory=dict, init=False, repr=False)
    _groups: dict[int, str] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for path in self.paths:
            _check_exists(path)
        self._excluded = compile_patterns(self.excludes) if self.excludes else None
        self._included = compile_patterns(self.includes) if self.includes else None
        self._trie = _source_trie(self.paths)
        for path in self.leave_out:
            try:
                st = os.stat(path)
            except OSError:
                continue  # nothing there to leave out
            self._left_out[(st.st_dev, st.st_ino)] = os.path.realpath(path)

    def __iter__(self) -> Iterator[ScannedEntry]:
        self.warnings.clear()
        self._links.clear()
        self._pending.clear()
        if self._trie is None:
            root = os.lstat("/")
            yield from self._walk("/", "", self._included is None, root.st_dev)
        else:
            yield from self._visit_parents(self._trie, "", "")

    # -- the parents of the source paths and the source paths themselves --

    def _visit_parents(self, node: dict, relpath: str, abspath: str) -> Iterator[ScannedEntry]:
        for name in sorted(node, key=os.fsencode):
            child_rel = f"{relpath}/{name}" if relpath else name
            child_abs = f"{abspath}/{name}"
            if node[name] is None:
                yield from self._visit_source(name, child_rel, child_abs)
                continue
            try:
                st = os.stat(child_abs)
            except OSError as exc:
                self._warn(child_abs, exc)
                continue
            mark = len(self._pending)
            self._pending.append(FolderSource(child_rel, self._entry(name, child_abs, st, DIR), child_abs))
            yield from self._visit_parents(node[name], child_rel, child_abs)
            del self._pending[mark:]

    def _visit_source(self, name: str, relpath: str, abspath: str) -> Iterator[ScannedEntry]:
        if self._excluded is not None and self._excluded(abspath, name):
            return
        try:
            st = os.lstat(abspath)
        except OSError as exc:
            self._warn(abspath, exc)
            return
        if self._left_out and self._inside_left_out(abspath, st):
            return
        if stat.S_ISDIR(st.st_mode) and self._tagged(abspath):
            return
        kept = self._included is None or self._included(abspath, name)
        if not stat.S_ISDIR(st.st_mode):
            if kept:
                yield from self._emit(self._leaf(name, relpath, abspath, st))
            return
        mark = len(self._pending)
        scanned = FolderSource(relpath, self._entry(name, abspath, st, DIR), abspath)
        self._pending.append(scanned)
        if kept:
            yield from self._flush()
        yield from self._walk(abspath, relpath, kept, st.st_dev)
        del self._pending[mark:]

    # -- the walk below one source directory --

    def _walk(self, abspath: str, relpath: str, kept: bool, dev: int) -> Iterator[ScannedEntry]:
        """Yield the contents of the directory ``abspath`` (not the directory itself).

        With :data:`LIST_AHEAD`, the folders the walk will enter next are listed ahead
        in one thread (at most that many; see :meth:`_listing` and the module docstring)."""
        excluded, included, left_out = self._excluded, self._included, self._left_out
        pending = self._pending
        users, groups = self._users, self._groups
        ahead: dict[str, Future] = {}  # folders being listed ahead, by path
        pool = ThreadPoolExecutor(1, thread_name_prefix="scan")
        # a frame: the folder's listing, its point path, whether it is kept, the length
        # of ``pending`` when it was entered, and its subfolders not yet listed ahead
        listing = self._listed(abspath, self._listing(abspath))
        stack = [(iter(listing), relpath, kept, len(pending), self._subfolders(listing, dev))]
        try:
            self._list_ahead(stack, ahead, pool)
            while stack:
                children, dir_rel, dir_kept, _, subfolders = stack[-1]
                prefix = f"{dir_rel}/" if dir_rel else ""
                # the children of the deepest folder, up to its next subfolder (which is
                # pushed: its children come next, then this loop resumes after it)
                for child, xattr_names in children:
                    name, child_abs = child.name, child.path
                    if excluded is not None and excluded(child_abs, name):
                        continue
                    try:
                        st = child.stat(follow_symlinks=False)
                    except OSError as exc:
                        self._warn(child_abs, exc)
                        continue
                    child_rel = prefix + name
                    child_kept = dir_kept or included(child_abs, name)  # type: ignore[misc]
                    mode = st.st_mode
                    if _S_ISREG(mode) and st.st_nlink == 1:
                        # a regular file of one name, most of any tree: what _leaf and _entry
                        # do, inline (this runs for every file of every backup)
                        if child_kept:
                            size, uid, gid = st.st_size, st.st_uid, st.st_gid
                            user = users.get(uid)
                            if user is None:
                                user = self._user(uid)
                            group = groups.get(gid)
                            if group is None:
                                group = self._group(gid)
                            if xattr_names == []:  # none: the most common answer
                                xattrs = ()
                            else:
                                xattrs = self._listed_xattrs(child_abs, xattr_names)
                            if pending:
                                yield from pending
                                pending.clear()
                            yield FileSource(child_rel, child_abs, Entry(
                                name, FILE, mode & 0o7777, uid, gid, user, group, st.st_mtime_ns, st.st_atime_ns,
                                st.st_ctime_ns, size, st.st_ino, st.st_dev, 1, 0, "", xattrs,
                                size > 0 and st.st_blocks * 512 < size,
                            ))
                        continue
                    if not stat.S_ISDIR(mode):
                        if child_kept and (leaf := self._leaf(name, child_rel, child_abs, st)):
                            if pending:
                                yield from pending
                                pending.clear()
                            yield leaf
                        continue
                    # a folder: listed ahead, or to be (or not entered: dropped)
                    if subfolders and subfolders[0] == child_abs:
                        subfolders.popleft()
                    listed = ahead.pop(child_abs, None)
                    if left_out and (st.st_dev, st.st_ino) in left_out:
                        self.warnings.append(ScanWarning(child_abs, _LEFT_OUT))
                        self._list_ahead(stack, ahead, pool)
                        continue
                    if self._tagged(child_abs):
                        self._list_ahead(stack, ahead, pool)
                        continue
                    mark = len(pending)
                    folder = self._entry(name, child_abs, st, DIR, xattrs=self._listed_xattrs(child_abs, xattr_names))
                    pending.append(FolderSource(child_rel, folder, child_abs))
                    if child_kept:
                        yield from pending
                        pending.clear()
                    if self.one_file_system and st.st_dev != dev:
                        del pending[mark:]
                        self._list_ahead(stack, ahead, pool)
                        continue
                    made = listed.result() if listed is not None else None
                    if made is None or made is _TAGGED:
                        made = self._listing(child_abs)
                    listing = self._listed(child_abs, made)
                    stack.append((iter(listing), child_rel, child_kept, mark, self._subfolders(listing, dev)))
                    self._list_ahead(stack, ahead, pool)
                    break  # into the subfolder
                else:  # every child of the deepest folder done: leave it
                    del pending[stack.pop()[3] :]
        finally:
            for future in ahead.values():
                future.cancel()
            pool.shutdown(wait=True)

    def _list_ahead(self, stack: list, ahead: dict[str, Future], pool: ThreadPoolExecutor) -> None:
        """Have the folders the walk enters next listed in ``pool``, up to
        :data:`LIST_AHEAD` at a time: the deepest frame's next subfolders first."""
        for frame in reversed(stack):
            subfolders = frame[4]
            while subfolders and len(ahead) < LIST_AHEAD:
                path = subfolders.popleft()
                ahead[path] = pool.submit(self._listing, path, True)
            if len(ahead) >= LIST_AHEAD:
                return

    def _subfolders(self, listing: list, dev: int) -> deque[str]:
        """The paths of the folders of ``listing`` that the walk will enter, as far as
        can be told without more system calls (not excluded, not left out, on the same
        device with ``one_file_system``), in walk order; none without listing ahead."""
        found: deque[str] = deque()
        if not LIST_AHEAD:
            return found
        excluded, left_out = self._excluded, self._left_out
        for child, names in listing:
            if names is None or not child.is_dir(follow_symlinks=False):
                continue
            if excluded is not None and excluded(child.path, child.name):
                continue
            st = child.stat(follow_symlinks=False)  # cached: it was taken for the listing
            if (left_out and (st.st_dev, st.st_ino) in left_out) or (self.one_file_system and st.st_dev != dev):
                continue
            found.append(child.path)
        return found

    def _listing(self, abspath: str, ahead: bool = False) -> list | OSError | object:
        """The children of folder ``abspath`` sorted by the bytes of their names, each as
        ``(DirEntry, names)``: its ``lstat`` taken (cached in the DirEntry) and the names
        of its extended attributes (a list, or the OSError of listing them; None if the
        ``lstat`` failed).  Or the OSError of listing the folder, or (``ahead``: run in
        the thread, where nothing is warned about) :data:`_TAGGED` if the folder holds
        a marker that leaves it out, without listing it."""
        if ahead and self._tagged(abspath):
            return _TAGGED
        try:
            with os.scandir(abspath) as found:
                children = list(found)
        except OSError as exc:
            return exc
        if "".join([c.name for c in children]).isascii():
            children.sort(key=_name)  # ASCII: the order of the names is that of their bytes
        else:
            children.sort(key=_name_key)
        listing = []
        for child in children:
            try:
                child.stat(follow_symlinks=False)
            except OSError:
                listing.append((child, None))
                continue
            try:
                names: list[str] | OSError = _listxattr(child.path, follow_symlinks=False)
            except OSError as exc:
                names = exc
            listing.append((child, names))
        return listing

    def _listed(self, abspath: str, made: list | OSError | object) -> list:
        """The listing :meth:`_listing` made, or [] with a warning if it failed."""
        if isinstance(made, OSError):
            self._warn(abspath, made)
            return []
        return made  # type: ignore[return-value]

    def _tagged(self, abspath: str) -> bool:
        """Whether directory ``abspath`` holds a marker that leaves it out (module docs)."""
        for name in self.exclude_if_present:
            if os.path.lexists(os.path.join(abspath, name)):
                return True
        if not self.exclude_caches:
            return False
        tag = os.path.join(abspath, "CACHEDIR.TAG")
        try:
            if not stat.S_ISREG(os.lstat(tag).st_mode):
                return False
            with open(tag, "rb") as handle:
                return handle.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
        except OSError:
            return False

    def _inside_left_out(self, abspath: str, st: os.stat_result) -> bool:
        """Whether source path ``abspath`` is a folder left out or lies inside one (with
        a warning if so)."""
        real = os.path.realpath(abspath)
        inside = (st.st_dev, st.st_ino) in self._left_out or any(
            real.startswith(folder.rstrip("/") + "/") for folder in self._left_out.values()
        )
        if inside:
            self.warnings.append(ScanWarning(abspath, _LEFT_OUT))
        return inside

    def _flush(self) -> Iterator[ScannedEntry]:
        yield from self._pending
        self._pending.clear()

    def _emit(self, leaf: ScannedEntry | None) -> Iterator[ScannedEntry]:
        if leaf is not None:
            yield from self._flush()
            yield leaf

    def _leaf(self, name: str, relpath: str, abspath: str, st: os.stat_result) -> ScannedEntry | None:
        """The entry of a non-directory, or ``None`` (with a warning) if it cannot be read."""
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            self.warnings.append(ScanWarning(abspath, "unsupported file type"))
            return None
        target = ""
        if kind == SYMLINK:
            try:
                target = os.readlink(abspath)
            except OSError as exc:
                self._warn(abspath, exc)
                return None
        elif kind == FILE and st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), relpath)
            if first != relpath:
                kind, target = HARDLINK, first
        entry = self._entry(name, abspath, st, kind, target)
        if kind in (FILE, HARDLINK):
            return FileSource(relpath, abspath, entry)
        if kind == SYMLINK:
            return LinkSource(relpath, entry, abspath)
        return SpecialSource(relpath, entry, abspath)

    # -- metadata --

    def _entry(self, name: str, abspath: str, st: os.stat_result, kind: str, target: str = "",
               xattrs: tuple[tuple[str, bytes], ...] | None = None) -> Entry:
        # positional, with the user and group caches read inline: this runs for every
        # file of every backup (the order is Entry's fields')
        regular = kind == FILE or kind == HARDLINK
        size = st.st_size if regular else 0
        uid, gid = st.st_uid, st.st_gid
        user = self._users.get(uid)
        if user is None:
            user = self._user(uid)
        group = self._groups.get(gid)
        if group is None:
            group = self._group(gid)
        return Entry(
            name, kind, st.st_mode & 0o7777, uid, gid, user, group, st.st_mtime_ns, st.st_atime_ns,
            st.st_ctime_ns, size, st.st_ino, st.st_dev, st.st_nlink,
            st.st_rdev if kind == CHARDEV or kind == BLOCKDEV else 0, target,
            self._xattrs(abspath) if xattrs is None else xattrs,
            regular and size > 0 and st.st_blocks * 512 < size,
        )

    def _xattrs(self, abspath: str) -> tuple[tuple[str, bytes], ...]:
        try:
            names = os.listxattr(abspath, follow_symlinks=False)
        except OSError as exc:
            return self._xattrs_failed(abspath, exc)
        return self._xattr_values(abspath, names)

    def _listed_xattrs(self, abspath: str, names: list[str] | OSError | None) -> tuple[tuple[str, bytes], ...]:
        """The extended attributes of ``abspath`` from the names :meth:`_listing` found."""
        if type(names) is list:
            return self._xattr_values(abspath, names)
        if names is None:  # its lstat failed when it was listed
            return self._xattrs(abspath)
        return self._xattrs_failed(abspath, names)  # type: ignore[arg-type]

    def _xattrs_failed(self, abspath: str, exc: OSError) -> tuple[()]:
        """No extended attributes, as ``listxattr`` failed (a warning unless the file
        system has none)."""
        if exc.errno not in _NO_XATTRS:
            self._warn(abspath, exc, "cannot list xattrs")
        return ()

    def _xattr_values(self, abspath: str, names: list[str]) -> tuple[tuple[str, bytes], ...]:
        """The extended attributes ``names`` of ``abspath`` with their values."""
        if not names:
            return ()
        values = []
        for key in sorted(names):
            try:
                values.append((key, os.getxattr(abspath, key, follow_symlinks=False)))
            except OSError as exc:
                if exc.errno not in _NO_XATTRS and exc.errno != errno.ENODATA:
                    self._warn(abspath, exc, f"cannot read xattr {key}")
        return tuple(values)

    def _user(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = ""
            self._users[uid] = name
        return name

    def _group(self, gid: int) -> str:
        name = self._groups.get(gid)
        if name is None:
            try:
                name = grp.getgrgid(gid).gr_name
            except KeyError:
                name = ""
            self._groups[gid] = name
        return name

    def _warn(self, abspath: str, exc: OSError, what: str = "") -> None:
        if isinstance(exc, FileNotFoundError):
            reason = _VANISHED
        elif isinstance(exc, PermissionError):
            reason = "permission denied"
        else:
            reason = exc.strerror or str(exc)
        self.warnings.append(ScanWarning(abspath, f"{what}: {reason}" if what else reason))
