"""The parent point's folders, as the backup walk compares the files it scans with them.

:meth:`ParentFolders.folder` gives a :class:`Folder` of the parent point by its path:
its tree id (None if the parent point has no folder there), its entries *as stored*
(``stored``: the JSON objects of its tree node by name, see
:func:`~strongroom.catalog.tree.decode_tree_stored`), the hex ids of its files' chunks
that the vault no longer holds (``missing``), and on demand its decoded, checked entries
(:meth:`Folder.entries`).  The backup takes a file as unchanged by comparing the entry it
scanned with the stored object, and a folder whose entries all match reuses the parent's
node: such a folder costs no :class:`~strongroom.catalog.entry.Entry` decoded from the
parent at all, which is most of the time of a backup of an unchanged tree.

What is trusted of a stored object: its name (the node is JSON of this version, entries
with unique string names), its ``type`` and ``chunks`` (chunk ids of 64 lowercase hex
digits each, checked when the folder is loaded; if one is not, ``stored`` is None and
the folder is only read through the checked decoder), and any other field only by
equality with an entry this backup scanned.

A folder whose node (or an ancestor's) cannot be read is no error: ``on_damaged`` is
called with the :class:`~strongroom.errors.DamagedFolder` and the folder counts as empty
(every file below it is read again).  Kept: the folders on the way to the folder loaded
last (the walk needs them for the next sibling folders: a folder of many subfolders is
decoded once, however deep each subtree) and, besides them, the most recent up to
``keep`` folders in all (the stored rows of a folder take about 1 MB per 1,000 files).
When the backup has all the entries of a folder, it compares them with the parent's
node through :meth:`ParentFolders.compared`, which reads a folder dropped from the cache
again without checking its chunks (only rows equal to entries made from checked rows
count).  The object is safe to use from several threads (a folder may be loaded twice,
never wrongly).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from ..catalog.entry import DIR, FILE, HARDLINK, Entry
from ..catalog.tree import TreeReader
from ..errors import DamagedFolder

if TYPE_CHECKING:
    from ..repository.index import Index

__all__ = ["Folder", "ParentFolders"]

_HEX_IDS = re.compile(r"(?:[0-9a-f]{64})*")
_UNKNOWN = object()


class Folder:
    """One folder of the parent point (see the module docstring)."""

    __slots__ = ("path", "tree_id", "stored", "missing", "_entries", "_load")

    def __init__(self, path: str, tree_id: bytes | None, stored: dict[str, dict] | None,
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

    def compared(self, path: str) -> tuple[bytes | None, dict[str, dict] | None]:
        """``(tree_id, stored)`` of the folder at ``path``, as :meth:`folder` gives them,
        for the backup to compare the folder with its entries once they are all known
        (once per folder: what this object keeps for it is then let go).  A folder no
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
            return tree_id, self.reader.stored_folder(tree_id, path)  # type: ignore[arg-type]
        except DamagedFolder as exc:
            self._on_damaged(exc)
            return tree_id, {}

    def _load(self, path: str) -> Folder:
        tree_id = self.reader.root if not path else self._subtree(path)
        self._tree_ids[path] = tree_id
        if tree_id is None:
            return Folder(path, None, {}, frozenset(), dict)
        try:
            stored: dict[str, dict] | None = self.reader.stored_folder(tree_id, path)
        except DamagedFolder as exc:
            self._on_damaged(exc)
            return Folder(path, tree_id, {}, frozenset(), dict)
        hexes = [c for row in stored.values() if row.get("type") in (FILE, HARDLINK)  # type: ignore[union-attr]
                 for c in _chunk_list(row)]
        folder = Folder(path, tree_id, stored, frozenset(), lambda: self._decode(tree_id, path))
        ids = _hex_ids(hexes)
        if ids is not None:
            gone = self._index.missing(ids[i:i + 32] for i in range(0, len(ids), 32))
            folder.missing = frozenset(b.hex() for b in gone)
        else:  # a chunk id the writer cannot have made: only the checked decoder reads it
            folder.stored = None
            chunks = (c for e in folder.entries().values() if e.type in (FILE, HARDLINK) for c in e.chunks)
            folder.missing = frozenset(b.hex() for b in self._index.missing(chunks))
        return folder

    def _subtree(self, path: str) -> bytes | None:
        """The tree id of the folder at ``path``, from its parent folder's entry."""
        up, _, name = path.rpartition("/")
        parent = self.folder(up)
        if parent.stored is not None:
            row = parent.stored.get(name)
            if row is None or row.get("type") != DIR:
                return None
            subtree = row.get("subtree")
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


def _chunk_list(row: dict) -> list:
    if "chunks" not in row:
        return []
    chunks = row["chunks"]
    return chunks if isinstance(chunks, list) else [None]  # None fails the check below


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
