"""Which index files a repository's in-memory index holds, and keeping it current.

A process loads the index once (every ``index/`` file) and, before a backup, loads the
files written since by other processes (:meth:`IndexState.refresh`).  When a file it
loaded is gone (a prune replaced it, dropping the entries of deleted packs), the whole
index is read again, so no blob of a deleted pack is ever taken for present.
:meth:`IndexState.forget` drops the in-memory index after an operation that rewrote
index files (prune, rebuild-index).

A damaged index file does not take the vault down: loaded ``tolerant``, it is skipped and
reported (:attr:`IndexState.problems`).  Readers (restore, browse) then also index, in
memory only, the packs that no readable index file names, from the packs' own trailers
(:meth:`IndexState.load_for_reading`), so every intact pack is found; a backup adopts
them for good (it writes a new index file for them), which heals the vault's index.

Foreign objects under ``index/`` (names that are not index files, :mod:`.names`) are
never read and never count as index files; the repository remembers them
(:attr:`Repository.foreign <.repository.Repository.foreign>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import IntegrityError, ObjectNotFound
from .index import Index
from .pack import pack_name, read_trailer

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

    @property
    def problems(self) -> list[str]:
        """The damaged index files skipped by a tolerant load (one line each)."""
        return list(self._problems or ())

    def load(self, *, tolerant: bool = False) -> list[str]:
        """Load every index file unless loaded already; the damaged files (``tolerant``:
        they are reported and skipped; else IntegrityError)."""
        if self._problems is None:
            names = frozenset(self.repo.list_names(INDEX_PREFIX))
            self._problems = self.repo.load_index_files(sorted(names), tolerant=tolerant)
            self._files = names
        return list(self._problems)

    def load_for_reading(self) -> list[str]:
        """Load tolerantly; if an index file is damaged, also index (in memory) the packs
        that no loaded index file names, from their trailers.  Returns the problems."""
        if self._problems is not None:
            return self.problems
        problems = self.load(tolerant=True)
        if problems:
            unnamed = self.repo.pack_ids_on_storage() - self.repo.index.named_pack_ids()
            for pack_id in sorted(unnamed):
                try:
                    self.repo.index.add(read_trailer(self.repo.store, pack_id, self.repo.envelope))
                except (IntegrityError, ObjectNotFound) as exc:
                    self._problems.append(f"{pack_name(pack_id)}: {exc}")  # type: ignore[union-attr]
        return self.problems

    def refresh(self, *, tolerant: bool = False) -> list[str]:
        """Load index files written since the index was loaded; reload it all if a prune
        replaced some.  Returns the damaged files skipped (``tolerant``; else they raise)."""
        if self._problems is None:
            return self.load(tolerant=tolerant)
        names = frozenset(self.repo.list_names(INDEX_PREFIX))
        if not self._files <= names:
            self.forget()
            return self.load(tolerant=tolerant)
        if names != self._files:
            self._problems.extend(self.repo.load_index_files(sorted(names - self._files), tolerant=tolerant))
            self._files = names
        return self.problems

    def forget(self) -> None:
        """Drop the in-memory index; the next operation that needs it reads it again."""
        self.repo.index = Index()
        self._problems = None
        self._files = frozenset()
