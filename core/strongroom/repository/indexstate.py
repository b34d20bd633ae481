"""Which index files a repository's in-memory index holds, and keeping it current.

A process loads the index once (every ``index/`` file) and, before a backup, loads the
files written since by other processes (:meth:`IndexState.refresh`).  When a file it
loaded is gone (a prune replaced it, dropping the entries of deleted packs), the whole
index is read again, so no blob of a deleted pack is ever taken for present.
:meth:`IndexState.forget` drops the in-memory index after an operation that rewrote
index files (prune, rebuild-index).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .index import Index

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["INDEX_PREFIX", "IndexState"]

INDEX_PREFIX = "index/"


class IndexState:
    """The index files loaded into ``repo.index``."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._problems: list[str] | None = None
        self._files: frozenset[str] = frozenset()

    @property
    def files(self) -> frozenset[str]:
        """The index files loaded into the in-memory index."""
        return self._files

    def load(self, *, tolerant: bool = False) -> list[str]:
        """Load every index file unless loaded already; the damaged files (``tolerant``:
        they are reported and skipped; else IntegrityError)."""
        if self._problems is None:
            names = frozenset(self.repo.store.list(INDEX_PREFIX))
            self._problems = self.repo.load_index_files(sorted(names), tolerant=tolerant)
            self._files = names
        return list(self._problems)

    def refresh(self) -> None:
        """Load index files written since the index was loaded; reload it all if a prune
        replaced some."""
        if self._problems is None:
            self.load()
            return
        names = frozenset(self.repo.store.list(INDEX_PREFIX))
        if not self._files <= names:
            self.forget()
            self.load()
        elif names != self._files:
            self.repo.load_index_files(sorted(names - self._files))
            self._files = names

    def forget(self) -> None:
        """Drop the in-memory index; the next operation that needs it reads it again."""
        self.repo.index = Index()
        self._problems = None
        self._files = frozenset()
