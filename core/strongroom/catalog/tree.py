"""Tree nodes: one blob per directory, listing its entries sorted by name.

A node is the JSON document ``{"v": 1, "entries": [Entry.to_dict(), ...]}`` stored as a
blob of kind TREE; a directory entry names its node by ``subtree``.  The root node of a
recovery point is named by the point header's ``root``.  Unchanged directories produce
identical nodes, so they deduplicate like any other blob.

Nodes are read with :func:`json.loads` until a process has read 4 MiB of them, then with
msgspec's JSON decoder (about twice as fast on nodes, where decoding is much of an
unchanged backup's time; importing it takes about 10 ms and 1.5 MiB, which a command
reading a few nodes is spared) and, for any document it refuses, with json.loads: the
documents msgspec accepts it decodes as json.loads does (the same objects, integers of
any size), and what it refuses but json.loads accepts (lone surrogates in ``\\u``
escapes, NaN, a byte-order mark, UTF-16) is json.loads's to decode.  So a node means the
same, and is refused alike, with or without msgspec.
"""

from __future__ import annotations

import functools
import json
import operator
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator

import attrs

from ..errors import DamagedFolder, IntegrityError, PathNotInPoint, UsageError
from .entry import DIR, STORED_TYPES, Entry

#: Bytes of nodes read with json.loads before msgspec's decoder is imported and used.
FAST_AFTER = 4 << 20
#: A point of at least this many entries has more than FAST_AFTER bytes of nodes (a file's
#: row takes about 300 bytes): :func:`decode_fast_now` before reading it whole.
FAST_FROM_ENTRIES = 12_000
_json_read = 0
_fast_loads: Callable[[bytes | memoryview], object] | None | bool = None  # None: not yet; False: no msgspec
_stored_codec: tuple | None | bool = None  # the same, for encode_stored (_make_stored_codec)
_rows_codec: tuple | None | bool = None  # the same, for decode_tree_rows (_make_rows_codec)

if TYPE_CHECKING:
    from ..repository.repository import Repository

TREE_VERSION = 1


def _name_bytes(entry: Entry) -> bytes:
    return entry.name.encode("utf-8", "surrogateescape")


def sort_entries(entries: list[Entry]) -> list[Entry]:
    """``entries`` in the order of a tree node: by the bytes of their names (for names
    all ASCII, the order of the names themselves: no name encoded)."""
    if "".join([e.name for e in entries]).isascii():
        return sorted(entries, key=_name)
    return sorted(entries, key=_name_bytes)


_name = operator.attrgetter("name")


def encode_tree(entries: list[Entry], encoded: list[tuple[str, str]] | None = None) -> bytes:
    """The node of ``entries``: the bytes of ``json.dumps({"v": 1, "entries":
    [e.to_dict() for e in sort_entries(entries)]}, separators=(",", ":"))`` for entries
    whose fields hold their declared types, written field by field without a dict per
    entry (a node is encoded for every new folder; this takes about 60% of the time).
    An entry with extended attributes goes through ``to_dict`` and ``json.dumps``.  A
    number field holding a bool or float (which no reader accepts) is written as an
    integer.

    ``encoded``: more entries of the node, already written, as ``(name, text)`` pairs
    (:func:`encode_stored`); the node lists them all in its order."""
    if not encoded:
        body = ",".join(map(_encode_entry, sort_entries(entries)))
    else:
        items = [(e.name, _encode_entry(e)) for e in entries]
        items += encoded
        if "".join([name for name, _ in items]).isascii():
            items.sort(key=_first)
        else:
            items.sort(key=_first_bytes)
        body = ",".join([text for _, text in items])
    return ('{"v":%d,"entries":[%s]}' % (TREE_VERSION, body)).encode()


_first = operator.itemgetter(0)


def _first_bytes(item: tuple[str, str]) -> bytes:
    return item[0].encode("utf-8", "surrogateescape")


def encode_stored(row: dict) -> str | None:
    """An entry as a node stores it (a JSON object, as :meth:`Entry.to_dict` gives it)
    written for :func:`encode_tree`'s ``encoded``, or None if a field is not one of an
    entry or does not hold its JSON type (an integer, not a bool or float, where a
    number is stored): such a row must be decoded and written from its entry.

    The text is what :func:`encode_tree` writes of the entry.  The backup writes the node
    of a changed folder so: its files unchanged since the parent point cost no
    :class:`~.entry.Entry` (about a tenth of the time).  The row is checked and written
    by msgspec (a struct of the stored fields, defaults left out), where it writes what
    ``json.dumps`` writes: ASCII without DEL (``json.dumps`` escapes the others).
    Without msgspec, each field's type is checked here and the row written by
    ``json.dumps`` as it is (a row an older writer wrote keeps its fields' order)."""
    codec = _stored_codec if _stored_codec is not None else _make_stored_codec()
    if codec:
        convert, _, _, invalid = codec  # type: ignore[misc]
        try:
            struct = convert(row)
        except invalid:
            return None
        if struct.mode == _DEFAULT_MODE:  # msgspec leaves out a default by identity (not an int > 256)
            struct.mode = _DEFAULT_MODE
        return encode_row(struct)
    types = STORED_TYPES
    for key, value in row.items():
        if type(value) is not types.get(key):
            return None
    return json.dumps(row, separators=(",", ":"))


def encode_row(row: Any) -> str:
    """A typed row (:func:`decode_tree_rows`) as :func:`encode_tree` writes its entry, for
    its ``encoded``: msgspec writes it, where it writes what ``json.dumps`` writes (ASCII
    without DEL; ``json.dumps`` escapes the others)."""
    _, encode, as_dict, _ = _stored_codec  # type: ignore[misc]
    try:
        data = encode(row)
    except (ValueError, OverflowError):  # a lone surrogate: json.dumps escapes it
        data = None
    if data is not None and data.isascii() and b"\x7f" not in data:
        return data.decode("ascii")
    return json.dumps(as_dict(row), separators=(",", ":"))


def encode_tree_rows(entries: list[Entry], rows: list[Any]) -> bytes | None:
    """The node :func:`encode_tree` writes of ``entries`` and of the typed rows ``rows``
    (:func:`decode_tree_rows`; as its ``encoded``, by :func:`encode_row`), written by msgspec
    in one call: each entry made a row of its stored form, the rows sorted by name.  None
    where that would not be the same bytes: no msgspec, a name or text not ASCII (without
    DEL), a field of an entry not of its stored type; :func:`encode_tree` writes those.
    The backup writes a changed folder's node so: most of its rows are its files unchanged
    since the parent point."""
    codec = _rows_codec if _rows_codec is not None else _make_rows_codec()
    if not codec:
        return None
    convert, encode, _, invalid = _stored_codec  # type: ignore[misc]
    items = list(rows)
    try:
        for entry in entries:
            row = convert(entry.to_dict())
            if row.mode == _DEFAULT_MODE:  # msgspec leaves out a default by identity (not an int > 256)
                row.mode = _DEFAULT_MODE
            items.append(row)
        items.sort(key=_name)  # names all ASCII (else the bytes are not, and None): their order is the bytes'
        data = encode(codec[2](TREE_VERSION, items))  # type: ignore[index]
    except (invalid, ValueError, OverflowError):  # a lone surrogate is a ValueError
        return None
    if not data.isascii() or b"\x7f" in data:
        return None
    return data


def row_dict(row: Any) -> dict:
    """A typed row as :meth:`Entry.to_dict` gives the entry it stores (defaults left out)."""
    return _stored_codec[2](row)  # type: ignore[index]


_DEFAULT_MODE = attrs.fields(Entry).mode.default


def _make_stored_codec() -> tuple | bool:
    """``(convert, encode, as_dict, the error of convert)`` for :func:`encode_stored`,
    from msgspec (False without it)."""
    global _stored_codec
    try:
        import msgspec
    except ImportError:  # a dependency; without it json.dumps writes every row
        _stored_codec = False
        return False
    fields = []
    for field in attrs.fields(Entry):
        kind = STORED_TYPES[field.name]
        if field.name in ("name", "type"):
            fields.append((field.name, kind))
        elif field.name == "subtree":
            fields.append((field.name, str | None, None))
        else:
            fields.append((field.name, kind, [] if kind is list else field.default))
    row_type = msgspec.defstruct("StoredEntry", fields, omit_defaults=True, forbid_unknown_fields=True, gc=False)
    _stored_codec = (
        functools.partial(msgspec.convert, type=row_type), msgspec.json.Encoder().encode, msgspec.to_builtins,
        msgspec.ValidationError,
    )
    return _stored_codec


_quote = json.encoder.encode_basestring_ascii  # what json.dumps writes a string with (ensure_ascii)
_values = operator.attrgetter(*(f.name for f in attrs.fields(Entry)))


def _encode_entry(entry: Entry) -> str:
    """One entry of a node as ``json.dumps(entry.to_dict(), separators=(",", ":"))``."""
    (name, kind, mode, uid, gid, user, group, mtime_ns, atime_ns, ctime_ns, size, ino, dev, nlink, rdev,
     target, xattrs, sparse, chunk_size, chunks, subtree) = _values(entry)
    if xattrs or type(sparse) is not bool:
        return json.dumps(entry.to_dict(), separators=(",", ":"))
    # one format of every field, each piece chosen inline: no list of pieces, no call
    # per field (about a fifth faster than appending the pieces to a list and joining it)
    return '{"name":%s,"type":%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s}' % (
        _quote(name), _quote(kind),
        "" if mode == 0o644 else ',"mode":%d' % mode,
        ',"uid":%d' % uid if uid else "",
        ',"gid":%d' % gid if gid else "",
        ',"user":' + _quote(user) if user else "",
        ',"group":' + _quote(group) if group else "",
        ',"mtime_ns":%d' % mtime_ns if mtime_ns else "",
        ',"atime_ns":%d' % atime_ns if atime_ns else "",
        ',"ctime_ns":%d' % ctime_ns if ctime_ns else "",
        ',"size":%d' % size if size else "",
        ',"ino":%d' % ino if ino else "",
        ',"dev":%d' % dev if dev else "",
        "" if nlink == 1 else ',"nlink":%d' % nlink,
        ',"rdev":%d' % rdev if rdev else "",
        ',"target":' + _quote(target) if target else "",
        ',"sparse":true' if sparse else "",
        ',"chunk_size":%d' % chunk_size if chunk_size else "",
        ',"chunks":["%s"]' % '","'.join([c.hex() for c in chunks]) if chunks else "",
        ',"subtree":"%s"' % subtree.hex() if subtree is not None else "",
    )


def decode_tree(raw: bytes | memoryview, what: str = "tree") -> list[Entry]:
    """The entries of a tree node; IntegrityError about ``what`` if the node is
    malformed (not JSON, another version, a malformed entry: :meth:`Entry.from_dict`,
    two entries of one name), never another exception."""
    entries = [Entry.from_dict(item, what) for item in _node_items(raw, what)]
    if len({e.name for e in entries}) != len(entries):
        raise IntegrityError(what=what, reason="malformed tree node (two entries of one name)")
    return entries


def decode_tree_rows(raw: bytes | memoryview, what: str = "tree") -> dict[str, Any] | None:
    """The entries of a tree node as typed rows by name, or None.

    A row is a msgspec struct of the stored fields (those of :class:`~.entry.Entry`, each
    with its default, the one :func:`encode_row` leaves out): every field holds its JSON
    type (an integer, not a bool or float, where a number is stored), no field is one an
    entry does not have, no two rows share a name.  Only ``chunks`` and ``xattrs`` are
    lists of anything, to be checked by what uses them.  A node that is not all so (a
    lone surrogate in a name is one), or any node without msgspec, gives None: the
    caller reads it through the checked decoder.  IntegrityError about ``what`` for bytes
    that are not a node of this version, as :func:`decode_tree_stored` says it.  About a
    third of the time of :func:`decode_tree_stored` and :func:`encode_stored` together,
    for a node the backup compares and writes again."""
    codec = _rows_codec if _rows_codec is not None else _make_rows_codec()
    if codec:
        decode, refused, _ = codec  # type: ignore[misc]
        try:
            node = decode(raw)
        except refused:
            node = None
        if node is not None and node.v == TREE_VERSION:
            rows = {row.name: row for row in node.entries}
            if len(rows) == len(node.entries):
                default = _DEFAULT_MODE
                for row in node.entries:
                    if row.mode == default:  # the default by identity, which encode_row leaves out
                        row.mode = default
                return rows
    decode_tree_stored(raw, what)  # says why, if it is not a node
    return None


def _make_rows_codec() -> tuple | bool:
    """``(decode, its error, the node's struct type)`` for :func:`decode_tree_rows` and
    :func:`encode_tree_rows`, from msgspec (False without it)."""
    global _rows_codec
    codec = _stored_codec if _stored_codec is not None else _make_stored_codec()
    if not codec:
        _rows_codec = False
        return False
    import msgspec

    row_type = codec[0].keywords["type"]  # type: ignore[index]
    node_type = msgspec.defstruct("StoredNode", [("v", int), ("entries", list[row_type])], gc=False)
    _rows_codec = (msgspec.json.Decoder(node_type).decode, msgspec.DecodeError, node_type)
    return _rows_codec


def decode_tree_stored(raw: bytes | memoryview, what: str = "tree") -> dict[str, dict]:
    """The entries of a tree node as stored, JSON objects by name, checked only this far:
    the node is JSON of this version, each entry an object with a string ``name``, no
    two of one name (IntegrityError about ``what`` otherwise).  Any other field may be
    anything: what uses one must check it, or read the node with :func:`decode_tree`."""
    items = _node_items(raw, what)
    by_name: dict[str, dict] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise IntegrityError(what=what, reason="malformed tree node (an entry without a name)")
        by_name[item["name"]] = item
    if len(by_name) != len(items):
        raise IntegrityError(what=what, reason="malformed tree node (two entries of one name)")
    return by_name


def _node_items(raw: bytes | memoryview, what: str) -> list:
    try:
        doc = _loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise IntegrityError(what=what, reason=f"malformed tree node ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("v") != TREE_VERSION:
        version = doc.get("v") if isinstance(doc, dict) else None
        raise IntegrityError(what=what, reason=f"malformed tree node (unknown tree version {version!r})")
    items = doc.get("entries")
    if not isinstance(items, list):
        raise IntegrityError(what=what, reason="malformed tree node (no list of entries)")
    return items


def _loads(raw: bytes | memoryview) -> object:
    """``json.loads(bytes(raw))``, through msgspec's decoder first once this process has
    read :data:`FAST_AFTER` bytes of nodes (module docstring)."""
    global _json_read, _fast_loads
    fast = _fast_loads
    if fast is None:
        _json_read += len(raw)  # a lost update between threads only delays the switch
        if _json_read > FAST_AFTER:
            fast = _fast_loads = _fast_decoder()
    if fast:
        try:
            return fast(raw)  # type: ignore[operator]
        except Exception:  # refused (or nested too deep): json.loads decodes it or says why not
            pass
    return json.loads(bytes(raw))


def decode_fast_now() -> None:
    """Read every node from now on with msgspec's decoder, as :func:`_loads` does past
    :data:`FAST_AFTER` bytes: for a reader about to read a point of many files (a backup
    compares every folder of its parent point), importing it first costs less than the
    first :data:`FAST_AFTER` bytes read with ``json.loads`` (a few percent of the walk)."""
    global _fast_loads
    if _fast_loads is None:
        _fast_loads = _fast_decoder()


def _fast_decoder() -> Callable[[bytes | memoryview], object] | bool:
    try:
        from msgspec.json import Decoder
    except ImportError:  # a dependency; without it json.loads reads every node
        return False
    return Decoder().decode


def normalize_path(path: str) -> str:
    """A user-given path inside a point as a point-relative path ('' is the root)."""
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(message=f"a path inside a point cannot contain '..': {path}")
    return "/".join(parts)


class TreeReader:
    """Navigates the tree of one recovery point, loading nodes on demand.

    Nodes read are kept in an LRU cache of at most ``cache_size`` nodes holding at most
    ``cache_entries`` entries together (the most recent node is kept whatever its size):
    a tree of folders of thousands of files would otherwise hold the whole point.

    A node that cannot be read (damaged, missing) is reported by the folder it lists:
    :meth:`lookup`, :meth:`listdir`, :meth:`dir_map` and :meth:`walk` raise
    :class:`~strongroom.errors.DamagedFolder` with its point path (``/`` for the top).
    :meth:`walk` given ``on_damaged`` calls it instead and goes on with the rest of the
    tree: the damaged folder is not yielded, and nothing below it.
    """

    def __init__(
        self,
        repo: "Repository",
        root: bytes,
        *,
        point: str = "",
        cache_size: int = 256,
        cache_entries: int = 16384,
    ):
        self.repo = repo
        self.root = root
        self.point = point
        self._cache: OrderedDict[bytes, list[Entry]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_entries = cache_entries
        self._cached_entries = 0
        self._damaged: dict[bytes, IntegrityError] = {}  # nodes that could not be read
        self._lock = threading.Lock()

    def node(self, tree_id: bytes) -> list[Entry]:
        """The entries of the node ``tree_id`` (:class:`IntegrityError` naming the blob
        if it cannot be read; a node that could not be read is not read again)."""
        with self._lock:
            if tree_id in self._cache:
                self._cache.move_to_end(tree_id)
                return self._cache[tree_id]
            damage = self._damaged.get(tree_id)
        if damage is not None:
            raise IntegrityError(**damage.fields)
        try:
            entries = decode_tree(self.repo.get_blob(tree_id), what=f"tree {tree_id.hex()[:16]}")
        except IntegrityError as exc:
            with self._lock:
                self._damaged[tree_id] = exc
            raise
        with self._lock:
            if tree_id not in self._cache:
                self._cache[tree_id] = entries
                self._cached_entries += len(entries)
            while len(self._cache) > 1 and (
                len(self._cache) > self._cache_size or self._cached_entries > self._cache_entries
            ):
                self._cached_entries -= len(self._cache.popitem(last=False)[1])
        return entries

    def stored_rows(self, tree_id: bytes, path: str) -> dict[str, Any] | None:
        """The entries of the folder at ``path`` whose node is ``tree_id`` as typed rows
        by name (:func:`decode_tree_rows`; None for a node that is not so), not cached;
        :class:`DamagedFolder` as :meth:`stored_folder` raises it."""
        return self._stored(tree_id, path, decode_tree_rows)

    def stored_folder(self, tree_id: bytes, path: str) -> dict[str, dict]:
        """The entries of the folder at ``path`` whose node is ``tree_id`` as stored, by
        name (:func:`decode_tree_stored`: only names are checked), not cached;
        :class:`DamagedFolder` naming ``path`` if the node cannot be read (and the node
        counts as damaged, as for :meth:`node`)."""
        return self._stored(tree_id, path, decode_tree_stored)

    def _stored(self, tree_id: bytes, path: str, decode: Callable[..., Any]) -> Any:
        with self._lock:
            damage = self._damaged.get(tree_id)
        try:
            if damage is not None:
                raise IntegrityError(**damage.fields)
            try:
                return decode(self.repo.get_blob(tree_id), what=f"tree {tree_id.hex()[:16]}")
            except IntegrityError as exc:
                with self._lock:
                    self._damaged[tree_id] = exc
                raise
        except IntegrityError as exc:
            raise self._damaged_folder(exc, path) from None

    def _damaged_folder(self, exc: IntegrityError, path: str) -> DamagedFolder:
        what, reason = exc.fields.get("what"), exc.fields.get("reason")
        return DamagedFolder(path=path or "/", point=self.point,
                             reason=f"{what}: {reason}" if what and reason else str(exc))

    def is_damaged(self, tree_id: bytes) -> bool:
        """Whether the node ``tree_id`` was found damaged by this reader."""
        return tree_id in self._damaged

    def folder(self, tree_id: bytes, path: str) -> list[Entry]:
        """The entries of the folder at point path ``path`` whose node is ``tree_id``;
        :class:`DamagedFolder` naming ``path`` if the node cannot be read."""
        try:
            return self.node(tree_id)
        except IntegrityError as exc:
            raise self._damaged_folder(exc, path) from None

    def lookup(self, path: str) -> Entry | None:
        """The entry at ``path`` (None for the root); PathNotInPoint if absent."""
        path = normalize_path(path)
        if not path:
            return None
        node = self.root
        parts = path.split("/")
        entry: Entry | None = None
        for i, name in enumerate(parts):
            entry = next((e for e in self.folder(node, "/".join(parts[:i])) if e.name == name), None)
            if entry is None or (i < len(parts) - 1 and entry.type != DIR):
                raise PathNotInPoint(path=path, point=self.point)
            if entry.type == DIR:
                node = entry.subtree  # type: ignore[assignment]
        return entry

    def listdir(self, path: str = "") -> list[Entry]:
        """The entries of the directory at ``path``."""
        entry = self.lookup(path)
        if entry is None:
            return self.folder(self.root, "")
        if entry.type != DIR:
            return [entry]
        return self.folder(entry.subtree, normalize_path(path))  # type: ignore[arg-type]

    def dir_map(self, path: str) -> dict[str, Entry]:
        """Entries of a directory by name, or {} if the point has no such directory."""
        try:
            entry = self.lookup(path)
        except PathNotInPoint:
            return {}
        if entry is not None and entry.type != DIR:
            return {}
        tree_id = self.root if entry is None else entry.subtree
        return {e.name: e for e in self.folder(tree_id, normalize_path(path))}  # type: ignore[arg-type]

    def walk(self, path: str = "", *,
             on_damaged: Callable[[DamagedFolder], None] | None = None) -> Iterator[tuple[str, Entry]]:
        """Every entry at and below ``path``, pre-order, with its point-relative path.

        A folder whose node cannot be read raises :class:`DamagedFolder`; with
        ``on_damaged``, it is passed to it instead, and the walk leaves that folder out
        (its entry too) and goes on."""
        path = normalize_path(path)
        try:
            entry = self.lookup(path)
            below = self.folder(self.root if entry is None else entry.subtree, path) \
                if entry is None or entry.type == DIR else []  # type: ignore[arg-type]
        except DamagedFolder as exc:
            if on_damaged is None:
                raise
            on_damaged(exc)
            return
        if entry is not None:
            yield path, entry
        yield from self._walk_entries(below, path, on_damaged)

    def _walk_entries(self, entries: list[Entry], prefix: str,
                      on_damaged: Callable[[DamagedFolder], None] | None) -> Iterator[tuple[str, Entry]]:
        for entry in entries:
            child = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.type != DIR or entry.subtree is None:
                yield child, entry
                continue
            try:
                below = self.folder(entry.subtree, child)
            except DamagedFolder as exc:
                if on_damaged is None:
                    raise
                on_damaged(exc)
                continue
            yield child, entry
            yield from self._walk_entries(below, child, on_damaged)
