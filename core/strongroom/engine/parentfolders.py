"""The parent point's folders, as the backup walk compares the files it scans with them.

:meth:`ParentFolders.folder` gives a :class:`Folder` of the parent point by its path:
its tree id (None if the parent point has no folder there), its entries *as stored*
(``stored``: the typed rows of its tree node by name, see
:func:`~strongroom.catalog.tree.decode_tree_rows`), the hex ids of its files' chunks
that the vault no longer holds (``missing``), and on demand its decoded, checked entries
(:meth:`Folder.entries`).  The backup takes a file as unchanged by comparing the entry it
scanned with the stored object, and a folder whose entries all match reuses the parent's
node: such a folder costs no :class:`~strongroom.catalog.entry.Entry` decoded from the
parent at all, which is most of the time of a backup of an unchanged tree.

What is trusted of a stored row: its name and every field's type (the node is JSON of
this version, each field of an entry with its JSON type, no other field, unique names),
its ``chunks`` (chunk ids of 64 lowercase hex digits each, checked when the folder is
loaded), and any other field's value only by equality with an entry this backup
scanned.  A node whose rows are not all so has ``stored`` None: the folder is only read
through the checked decoder.

A folder whose node (or an ancestor's) cannot be read is no error: ``on_damaged`` is
called with the :class:`~strongroom.errors.DamagedFolder` and the folder counts as empty
(every file below it is read again).  Kept: the folders on the way to the folder loaded
last (the walk needs them for the next sibling folders: a folder of many subfolders is
decoded once, however deep each subtree) and, besides them, the most recent up to
``keep`` folders in all (the stored rows of a folder take about 1 MB per 1,000 files).
When the walk leaves a folder, the backup takes the parent's node of it through
:meth:`ParentFolders.compared`, and keeps it to compare with the folder's entries once
they are all known; a folder dropped from the cache meanwhile is read again without
checking its chunks (only rows equal to entries made from checked rows count).  The object is safe to use from several threads (a folder may be loaded twice,
never wrongly).

Loaded ahead: a folder is loaded together with the subfolders of its parent that follow
it in the parent's node (the walk's order), up to :data:`AHEAD_FOLDERS` of them and
:data:`AHEAD_ROWS` rows in all, so that the index is searched for the missing chunks of
all of them at once: that search has a fixed cost of about 0.1 ms (a few dozen numpy
calls), which a tree of many small folders paid for each (the 2 GiB corpus: 487).  A
folder loaded ahead is kept until the walk asks for it, or until folders loaded ahead
after it hold more than twice :data:`AHEAD_ROWS` rows (it is no longer in the source:
the walk went past it); one whose node cannot be read, or
holds a chunk id the writer cannot have made, is not loaded ahead but when it is asked
for, as any other (so ``on_damaged`` is called only for folders the walk asks for).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from ..catalog.entry import DIR, FILE, HARDLINK, Entry
from ..catalog.tree import TreeReader
from ..errors import DamagedFolder

if TYPE_CHECKING:
    from ..repository.index import Index

__all__ = ["Folder", "ParentFolders"]

_HEX_IDS = re.compile(r"(?:[0-9a-f]{64})*")
_UNKNOWN = object()

#: At most this many subfolders are loaded ahead with a folder (module docstring) ...
AHEAD_FOLDERS = 16
#: ... and only while they hold at most this many rows together (about 1 KB each).
AHEAD_ROWS = 4096


class Folder:
    """One folder of the parent point (see the module docstring)."""

    __slots__ = ("path", "tree_id", "stored", "missing", "_entries", "_load")

    def __init__(self, path: str, tree_id: bytes | None, stored: dict[str, Any] | None,
                 missing: frozenset[str], load: Callable[[], dict[str, Entry]]) -> None:
        self.path = path
        self.tree_id = tree_id
        self.stored = stored
        self.missing = missing
        self._entries: dict[str, Entry] | None = None
        self._load = load

    def entries(self) -> dict[str, Entry]:
        """The decoded, checked entries by name ({} if the node cannot be read)."""
        if self._entries is None:
            self._entries = self._load()
        return self._entries


class ParentFolders:
    def __init__(self, reader: TreeReader, index: "Index", on_damaged: Callable[[DamagedFolder], None],
                 *, keep: int = 4) -> None:
        self.reader = reader
        self._index = index
        self._on_damaged = on_damaged
        self._keep = keep
        self._cache: OrderedDict[str, Folder] = OrderedDict()
        self._lock = threading.Lock()
        self._last: Folder | None = None  # asked for once per file of the folder: no lock for it
        self._tree_ids: dict[str, bytes | None] = {}  # of the folders loaded, until compared
        self._ahead: dict[str, Folder] = {}  # loaded ahead, by path, until asked for
        self._ahead_rows = 0  # the rows they hold
        # the subfolders of the parent of the folder loaded last: (its path, their names
        # in node order, the index of each name)
        self._siblings: tuple[str, list[str], dict[str, int]] = ("", [], {})

    def folder(self, path: str) -> Folder:
        """The parent point's folder at point path ``path`` ('' for the top)."""
        last = self._last
        if last is not None and last.path == path:
            return last
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None:
                self._cache.move_to_end(path)
                self._last = cached
                return cached
        loaded = self._load(path)
        with self._lock:
            self._cache[path] = loaded
            self._cache.move_to_end(path)
            while len(self._cache) > self._keep:
                # the least recent folder that is not on the way to this one: the walk
                # needs those again for the next sibling folders (a folder of many
                # subfolders would be decoded again for each)
                gone = next((p for p in self._cache if not _on_the_way(p, path)), None)
                if gone is None:
                    break
                del self._cache[gone]
        self._last = loaded
        return loaded

    def compared(self, path: str) -> tuple[bytes | None, dict[str, Any] | None]:
        """``(tree_id, stored)`` of the folder at ``path``, as :meth:`folder` gives them,
        for the backup to compare the folder with its entries once they are all known
        (asked once per folder, as the walk leaves it: what this object keeps for it is
        then let go).  A folder no
        longer cached is read again without the check of its chunk ids and the search
        for missing chunks, and not cached (the walk may have gone on to other folders,
        which it keeps): a stored row equal to an entry of this backup has passed them,
        as that entry was made from it.  A folder never loaded is loaded."""
        tree_id = self._tree_ids.pop(path, _UNKNOWN)
        last = self._last
        if last is not None and last.path == path:
            return last.tree_id, last.stored
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None:
            return cached.tree_id, cached.stored
        if tree_id is _UNKNOWN:
            folder = self.folder(path)
            self._tree_ids.pop(path, None)
            return folder.tree_id, folder.stored
        if tree_id is None:
            return None, {}
        try:
            return tree_id, self.reader.stored_rows(tree_id, path)  # type: ignore[arg-type]
        except DamagedFolder as exc:
            self._on_damaged(exc)
            return tree_id, {}

    def _load(self, path: str) -> Folder:
        with self._lock:
            ready = self._ahead.pop(path, None)
            if ready is not None:
                self._ahead_rows -= len(ready.stored)  # type: ignore[arg-type]
        if ready is not None:
            self._tree_ids[path] = ready.tree_id
            return ready
        tree_id = self.reader.root if not path else self._subtree(path)
        self._tree_ids[path] = tree_id
        if tree_id is None:
            return Folder(path, None, {}, frozenset(), dict)
        try:
            stored: dict[str, Any] | None = self.reader.stored_rows(tree_id, path)
        except DamagedFolder as exc:
            self._on_damaged(exc)
            return Folder(path, tree_id, {}, frozenset(), dict)
        hexes = _chunk_hexes(stored) if stored is not None else []
        folder = self._folder_of(path, tree_id, stored)
        ids = _hex_ids(hexes) if stored is not None else None
        if ids is not None:
            ahead = self._read_ahead(path, len(stored))  # type: ignore[arg-type]
            for _, _, more in ahead:
                ids += more
            gone = self._index.missing(ids[i:i + 32] for i in range(0, len(ids), 32))
            gone_hex = {b.hex() for b in gone}
            folder.missing = frozenset(gone_hex.intersection(hexes)) if gone_hex else frozenset()
            with self._lock:
                for other, other_hexes, _ in ahead:
                    if gone_hex:
                        other.missing = frozenset(gone_hex.intersection(other_hexes))
                    self._ahead[other.path] = other
                    self._ahead_rows += len(other.stored)  # type: ignore[arg-type]
                while self._ahead_rows > 2 * AHEAD_ROWS:  # the oldest were not asked for: gone
                    self._ahead_rows -= len(self._ahead.pop(next(iter(self._ahead))).stored)  # type: ignore[arg-type]
        else:  # a field or chunk id the writer cannot have made: only the checked decoder reads it
            folder.stored = None
            chunks = (c for e in folder.entries().values() if e.type in (FILE, HARDLINK) for c in e.chunks)
            folder.missing = frozenset(b.hex() for b in self._index.missing(chunks))
        return folder

    def _folder_of(self, path: str, tree_id: bytes, stored: dict[str, Any] | None) -> Folder:
        return Folder(path, tree_id, stored, frozenset(), lambda: self._decode(tree_id, path))

    def _read_ahead(self, path: str, rows: int) -> list[tuple[Folder, list, bytes]]:
        """The subfolders after ``path`` in its parent's node, each as (its folder without
        ``missing``, its chunk ids in hex, and as bytes), read while they stay within the
        limits (module docstring); a folder that cannot be read so is left out."""
        if not path:
            return []
        up, _, name = path.rpartition("/")
        parent = self.folder(up)
        if parent.stored is None:
            return []
        if self._siblings[0] != up or name not in self._siblings[2]:
            names = [n for n, row in parent.stored.items() if row.type == DIR]
            self._siblings = (up, names, {n: i for i, n in enumerate(names)})
        _, names, index = self._siblings
        position = index.get(name)
        if position is None:
            return []
        found: list[tuple[Folder, list, bytes]] = []
        prefix = f"{up}/" if up else ""
        for sibling in names[position + 1:position + 1 + AHEAD_FOLDERS]:
            subtree = parent.stored[sibling].subtree
            if not (isinstance(subtree, str) and len(subtree) == 64 and _HEX_IDS.fullmatch(subtree)):
                continue
            sibling_path = prefix + sibling
            if sibling_path in self._ahead:
                continue
            tree_id = bytes.fromhex(subtree)
            try:
                stored = self.reader.stored_rows(tree_id, sibling_path)
            except DamagedFolder:
                continue  # warned about if the walk asks for it
            if stored is None:
                continue  # read through the checked decoder if the walk asks for it
            rows += len(stored)
            if rows > AHEAD_ROWS:
                break
            hexes = _chunk_hexes(stored)
            ids = _hex_ids(hexes)
            if ids is None:
                continue
            found.append((self._folder_of(sibling_path, tree_id, stored), hexes, ids))
        return found

    def _subtree(self, path: str) -> bytes | None:
        """The tree id of the folder at ``path``, from its parent folder's entry."""
        up, _, name = path.rpartition("/")
        parent = self.folder(up)
        if parent.stored is not None:
            row = parent.stored.get(name)
            if row is None or row.type != DIR:
                return None
            subtree = row.subtree
            if isinstance(subtree, str) and len(subtree) == 64 and _HEX_IDS.fullmatch(subtree):
                return bytes.fromhex(subtree)
        entry = parent.entries().get(name)  # checked: a malformed entry makes the folder damaged
        return entry.subtree if entry is not None and entry.type == DIR else None

    def _decode(self, tree_id: bytes, path: str) -> dict[str, Entry]:
        try:
            return {e.name: e for e in self.reader.folder(tree_id, path)}
        except DamagedFolder as exc:
            self._on_damaged(exc)
            return {}


def _on_the_way(folder: str, path: str) -> bool:
    """Whether ``folder`` is ``path`` or one of the folders above it."""
    return not folder or folder == path or path.startswith(folder + "/")


def _chunk_hexes(stored: dict[str, Any]) -> list:
    """The chunk ids of the files of a folder's stored rows, as stored (not checked)."""
    return [c for row in stored.values() if row.type in (FILE, HARDLINK) for c in row.chunks]


def _hex_ids(hexes: list) -> bytes | None:
    """The ids ``hexes`` (strings of 64 lowercase hex digits each) as one bytes of 32
    per id, or None if one is not such a string (checked in C: the joined string must
    be what ``bytes.hex`` gives of what ``bytes.fromhex`` made of it)."""
    try:
        joined = "".join(hexes)
        ids = bytes.fromhex(joined)
    except (TypeError, ValueError):
        return None
    if len(joined) != 64 * len(hexes) or not set(map(len, hexes)) <= {64} or ids.hex() != joined:
        return None
    return ids
