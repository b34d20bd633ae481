"""Healing from the geo secondary: intact copies of blobs and documents, checked before use.

:func:`reach` opens the geo secondary that a vault's redundancy names (the user's storage
options for its URL, never the vault's) read-only (:class:`~strongroom.storage.readonly.ReadOnlyStore`)
with the vault's own key, and checks within :data:`PROBE_TIMEOUT` seconds (or
``replication_timeout`` when that is longer, :mod:`.geo`) that it answers and holds this
vault (its ``strongroom.json`` names the same vault id).  It gives a :class:`Secondary`:
its :class:`SecondaryCopies`, or the reason, in one line, why there are none.  A vault
without a geo secondary, and a secondary itself, have none to reach (None).

:class:`SecondaryCopies` never writes and never trusts what it reads:

- :meth:`~SecondaryCopies.blob` finds a blob through the secondary's own index (its index
  files, read once, a damaged one left out), reads it from the pack that index names,
  opens it (the envelope authenticates it with its blob id as associated data) and
  re-hashes it (the keyed hash of its plaintext must be its id, as the vault's own reader
  checks): its plaintext, or None when the secondary holds no intact copy.  Packs are read
  whole and the last ones kept (:data:`CACHE_BYTES` at most), so healing the blobs of one
  lost pack reads it once.
- :meth:`~SecondaryCopies.document` returns the sealed bytes stored under a document's
  name, only when the envelope opens them under that very name and they parse (as JSON,
  and with ``parse`` when given): a copy that is not the vault's document of that name is
  None.  Document names are never reused (each version has its own time id), so a copy
  that opens under the name is the document the primary lost, never an older one.

A storage error other than a missing object, once the secondary has answered, raises
:class:`SecondaryFailed`: a repair stops before it writes anything rather than declare
lost what the secondary holds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound, StorageError, StrongroomError
from ..repository.envelope import KIND_DOCUMENT
from ..repository.pack import pack_name
from ..storage.readonly import ReadOnlyStore
from .bounded import Late, run_bounded
from .geo import replication_timeout

if TYPE_CHECKING:
    from ..policy.redundancy import Redundancy
    from ..repository.repository import Repository
    from ..storage.base import Store

__all__ = ["CACHE_BYTES", "HEALABLE", "PROBE_TIMEOUT", "Advisor", "Secondary", "SecondaryCopies", "SecondaryFailed",
           "reach"]

#: Bytes of whole packs kept from the secondary between blob reads.
CACHE_BYTES = 64 * 1024 * 1024
#: Seconds the secondary has to answer its first read (its identity) at least.
PROBE_TIMEOUT = 10.0
IDENTITY = "strongroom.json"
#: What verify adds to a damaged or missing blob or document the secondary holds intact.
HEALABLE = "healable from the secondary: run 'strongroom vault repair --apply'"
#: ... and to one it does not.
NOT_HEALABLE = "the secondary holds no intact copy either"


class SecondaryFailed(StorageError):
    """Storage error: the geo secondary {url} failed while its copies were read ({reason}): the repair stopped before rewriting the index; run it again, or with --no-secondary to use this vault's own copies only."""


class SecondaryCopies:
    """Checked copies from the secondary's repository ``repo`` (see the module docstring)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.url = repo.store.url
        self._loaded = False
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0

    def _index(self) -> None:
        if not self._loaded:
            self._guard(lambda: self.repo.load_index(tolerant=True))
            self._loaded = True

    def _guard(self, work: Callable[[], Any]) -> Any:
        """``work()``; ObjectNotFound and IntegrityError pass, other storage errors are SecondaryFailed."""
        try:
            return work()
        except (ObjectNotFound, IntegrityError):
            raise
        except StorageError as exc:
            reason = str(exc.fields.get("message") or exc or type(exc).__name__).splitlines()[0]
            raise SecondaryFailed(url=self.url, reason=reason) from None

    def _pack(self, pack_id: str) -> bytes:
        data = self._packs.get(pack_id)
        if data is not None:
            self._packs.move_to_end(pack_id)
            return data
        data = self._guard(lambda: self.repo.read_whole(pack_name(pack_id), "pack"))
        self._packs[pack_id] = data
        self._cached += len(data)
        while self._cached > CACHE_BYTES and len(self._packs) > 1:
            _, old = self._packs.popitem(last=False)
            self._cached -= len(old)
        return data

    def blob(self, blob_id: bytes) -> bytes | None:
        """The plaintext of ``blob_id`` from an intact copy on the secondary, or None."""
        self._index()
        entry = self.repo.index.lookup(blob_id)
        if entry is None:
            return None
        try:
            pack = self._pack(entry.pack_id)
            data = bytes(self.repo.open_blob(entry, memoryview(pack)[entry.offset:entry.offset + entry.length]))
        except (ObjectNotFound, IntegrityError):
            return None
        return data if self.repo.blob_id(data) == blob_id else None

    def has_blob(self, blob_id: bytes) -> bool:
        """Whether the secondary holds an intact copy of ``blob_id``."""
        return self.blob(blob_id) is not None

    def document(self, name: str, parse: Callable[[dict], object] | None = None) -> bytes | None:
        """The sealed bytes of document ``name`` on the secondary, if they open under that
        name and parse (with ``parse``, when given); else None."""
        try:
            sealed = self._guard(lambda: self.repo.read_whole(name, "document"))
            doc = self.opened(name, sealed)
            if parse is not None:
                parse(doc)
        except (ObjectNotFound, IntegrityError, KeyError, TypeError, ValueError, AttributeError, RecursionError):
            return None
        return bytes(sealed)

    def opened(self, name: str, sealed: bytes) -> dict:
        """The document ``sealed`` holds, opened under ``name`` (IntegrityError, ValueError otherwise)."""
        doc = json.loads(self.repo.envelope.open(sealed, name.encode(), kind=KIND_DOCUMENT))
        if not isinstance(doc, dict):
            raise ValueError(f"{name} is not a JSON object")
        return doc


@attrs.frozen
class Secondary:
    """The geo secondary as reached for a repair or a verify: its copies, or why there are none."""

    url: str
    copies: SecondaryCopies | None = None
    error: str = ""

    @property
    def reached(self) -> bool:
        return self.copies is not None

    def note(self) -> str:
        """One line for people: empty when it was reached."""
        if self.reached:
            return ""
        return f"the geo secondary {self.url} could not be reached ({self.error}): only this vault's own copies were used"


def reach(redundancy: Redundancy, open_store: Callable[[str], Store], repository: Callable[[Store], Repository],
          vault_id: str, *, timeout: float | None = None) -> Secondary | None:
    """The vault's geo secondary, opened read-only (see the module docstring); None for a
    vault without one.  ``open_store(url)``: the store at ``url`` with the user's options;
    ``repository(store)``: a repository over it with the vault's key."""
    url = redundancy.secondary
    if redundancy.kind != "geo" or not url:
        return None
    limit = max(PROBE_TIMEOUT, replication_timeout()) if timeout is None else timeout

    def probe() -> SecondaryCopies:
        store = ReadOnlyStore(open_store(url), why="a geo secondary read to heal the vault")
        try:
            doc = json.loads(store.get(IDENTITY))
        except ObjectNotFound:
            raise _Unfit("it holds no vault") from None
        except ValueError:
            raise _Unfit("its strongroom.json cannot be read") from None
        theirs = doc.get("vault_id") if isinstance(doc, dict) else None
        if theirs != vault_id:
            raise _Unfit(f"it holds another vault ({theirs}, not {vault_id})")
        return SecondaryCopies(repository(store))

    # a daemon thread: a probe left behind is abandoned (no retries, no warnings) and never
    # holds the process up
    try:
        return Secondary(url, run_bounded(probe, limit, name="strongroom-secondary"))
    except Late:
        return Secondary(url, error=f"no answer within {limit:g} s")
    except _Unfit as error:
        return Secondary(url, error=str(error))
    except Exception as error:  # a store's own error, whatever its type: out of reach, in one line
        text = str(error).splitlines()[0] if str(error) else ""
        return Secondary(url, error=text if isinstance(error, StrongroomError) and text
                         else f"{type(error).__name__}: {text}".rstrip(": "))


class _Unfit(Exception):
    """The secondary answered but is not this vault's."""


class Advisor:
    """What ``vault verify`` says of damage: whether the geo secondary holds an intact copy.

    The secondary is reached (``reach()``) the first time something damaged or missing asks,
    so a clean vault never contacts it.  :meth:`blob` and :meth:`document` give the text to
    add to a problem ("; " and :data:`HEALABLE` or :data:`NOT_HEALABLE`), empty when there is
    no secondary to ask; ``notes`` receives one line if it could not be reached or failed."""

    def __init__(self, reach: Callable[[], Secondary | None], notes: list[str]) -> None:
        self._reach = reach
        self._secondary: Secondary | None = None
        self._asked = False
        self.notes = notes

    def _copies(self) -> SecondaryCopies | None:
        if not self._asked:
            self._asked = True
            self._secondary = self._reach()
            if self._secondary is not None and not self._secondary.reached:
                self.notes.append(self._secondary.note())
        return self._secondary.copies if self._secondary is not None else None

    def _ask(self, question: Callable[[SecondaryCopies], bool]) -> str:
        copies = self._copies()
        if copies is None:
            return ""
        try:
            return f"; {HEALABLE if question(copies) else NOT_HEALABLE}"
        except SecondaryFailed as exc:
            self.notes.append(f"the geo secondary {copies.url} failed while its copies were read"
                              f" ({exc.fields.get('reason')}): what it holds was not checked")
            self._secondary = None
            return ""

    def blob(self, blob_id: bytes) -> str:
        return self._ask(lambda copies: copies.has_blob(blob_id))

    def blobs(self, blob_ids: list[bytes]) -> str:
        """For a missing pack: how many of its blobs the secondary holds intact."""
        if not blob_ids:
            return ""
        found: list[int] = []

        def question(copies: SecondaryCopies) -> bool:
            found.append(sum(copies.has_blob(b) for b in blob_ids))
            return found[0] == len(blob_ids)
        text = self._ask(question)
        if found and 0 < found[0] < len(blob_ids):
            return f"; {found[0]} of its {len(blob_ids)} blob(s) {HEALABLE}; the secondary holds no intact copy of the others"
        return text

    def document(self, name: str, parse: Callable[[dict], object] | None = None) -> str:
        return self._ask(lambda copies: copies.document(name, parse) is not None)
