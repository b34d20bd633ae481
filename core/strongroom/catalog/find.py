"""Entries of a tree whose path matches a glob: what ``strongroom find`` looks for.

A pattern without a ``/`` is matched against each entry's name (``*.conf``); one with a
``/`` against the end of its point path, whole names only (``nginx/*.conf`` finds
``etc/nginx/sites.conf``), or, starting with a ``/``, against the whole point path
(``/etc/*.conf``).  ``*`` matches across ``/`` as :func:`fnmatch.fnmatchcase` does;
``**`` is nothing more.  Matching is case-sensitive.  :class:`Finder` remembers the matches below each folder by its tree
id and path, so searching many points of one item reads each distinct folder node once:
an unchanged subtree of the next point is answered from memory.  Folders whose node
cannot be read are passed to ``on_damaged`` and left out.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Callable

from .entry import DIR, Entry

if TYPE_CHECKING:
    from ..errors import DamagedFolder
    from .tree import TreeReader

__all__ = ["Finder"]


class Finder:
    """Finds entries matching ``pattern`` in trees of one vault (see the module docstring)."""

    def __init__(self, pattern: str, *, on_damaged: Callable[[DamagedFolder], None] | None = None) -> None:
        self.anchored = pattern.startswith("/")
        self.pattern = pattern.lstrip("/")
        self.whole_path = "/" in pattern
        self.on_damaged = on_damaged
        self._memo: dict[tuple[bytes, str], list[tuple[str, Entry]]] = {}

    def matches(self, path: str, entry: Entry) -> bool:
        if not self.whole_path:
            return fnmatch.fnmatchcase(entry.name, self.pattern)
        if self.anchored:
            return fnmatch.fnmatchcase(path, self.pattern)
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), self.pattern) for i in range(len(parts)))

    def find(self, tree: TreeReader) -> list[tuple[str, Entry]]:
        """Every ``(point path, entry)`` of ``tree`` that matches, pre-order."""
        return self._folder(tree, tree.root, "")

    def _folder(self, tree: TreeReader, tree_id: bytes, prefix: str) -> list[tuple[str, Entry]]:
        from ..errors import DamagedFolder

        key = (tree_id, prefix)
        if key in self._memo:
            return self._memo[key]
        found: list[tuple[str, Entry]] = []
        try:
            entries = tree.folder(tree_id, prefix)
        except DamagedFolder as exc:
            if self.on_damaged is None:
                raise
            self.on_damaged(exc)
            return found
        for entry in entries:
            path = f"{prefix}/{entry.name}" if prefix else entry.name
            if self.matches(path, entry):
                found.append((path, entry))
            if entry.type == DIR and entry.subtree is not None:
                found.extend(self._folder(tree, entry.subtree, path))
        self._memo[key] = found
        return found
