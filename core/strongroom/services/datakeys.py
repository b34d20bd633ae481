"""The data keys of an open vault: the current one, listing, rotation, checking.

``strongroom vault key rotate`` (format 3) starts a new data key for everything written
from then on; old objects stay readable through their key id and nothing is
re-encrypted (:mod:`strongroom.repository.datakeys` has the objects and the rules).
A rotation writes, in this order:

1. ``datakeys/<new id>``, sealed with the vault's first data key;
2. a settings document whose ``data_keys`` ends with the new id: from then on every
   client writes with it (the settings are authenticated: storage write access cannot
   pick or roll back the current key; the vault head records the settings).

Interrupted between the two, the new key object is there but never used (``vault
verify`` names it); the rotation is simply run again.  A rotation is journaled
(``key.rotate``, with the new key id) and raises a security alert, as every change of
the vault's keys does.  It is refused, with one line, on a vault that cannot be written
here (a geo secondary, a read-only store, a role that may not write data keys) and on a
vault of a format before 3 (``vault upgrade`` first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import attrs

from ..errors import IntegrityError, RotateRefused
from ..models import iso
from ..repository import datakeys
from ..repository.datakeys import DATAKEY_FORMAT, DataKey

if TYPE_CHECKING:
    import datetime as dt

    from ..models import VaultSettings
    from ..repository.repository import Repository
    from .journal import Journal
    from .settings import SettingsBook

__all__ = ["DataKeyInfo", "DataKeys", "KeyChecks", "read_only_reason", "use_current"]


@attrs.frozen
class DataKeyInfo:
    """One data key as ``vault key list`` shows it (``problem``: why it cannot be read)."""

    key_id: str
    created: str
    current: bool
    first: bool = False
    problem: str = ""

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def use_current(repo: Repository, settings: VaultSettings) -> None:
    """Make ``repo`` write with the current data key the ``settings`` name (none: the
    master key's); IntegrityError naming ``datakeys/<id>`` when it cannot be read."""
    if not settings.data_keys:
        return
    key = datakeys.load(repo, bytes.fromhex(settings.data_keys[-1]))
    repo.envelope = datakeys.envelope_with_current(repo.envelope, key)


def read_only_reason(store: Any) -> str | None:
    """Why ``store`` (or a store it wraps) cannot be written, or None."""
    from ..storage.readonly import ReadOnlyStore

    seen = 0
    while store is not None and seen < 16:
        if isinstance(store, ReadOnlyStore):
            return str(getattr(store, "why", "read-only"))
        store, seen = getattr(store, "inner", None), seen + 1
    return None


class DataKeys:
    """The data keys of one vault (its repository, settings book, journal and clock)."""

    def __init__(self, repo: Repository, settings: SettingsBook, journal: Journal,
                 clock: Callable[[], dt.datetime], *, created: str = "",
                 format: Callable[[], int] = lambda: DATAKEY_FORMAT,
                 alert: Callable[..., object] = lambda *args, **kwargs: None) -> None:
        self.repo = repo
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self.created = created  # the vault's creation: the first data key's
        self.format = format
        self.alert = alert

    @property
    def current_id(self) -> str:
        return self.repo.envelope.key_id.hex()

    def list(self) -> list[DataKeyInfo]:
        """Every data key: the master key's first, then the rotated ones, oldest first."""
        named = self.settings.current.data_keys
        current = named[-1] if named else self.repo.envelope.base_key_id.hex()
        out = [DataKeyInfo(self.repo.envelope.base_key_id.hex(), self.created,
                           current == self.repo.envelope.base_key_id.hex(), first=True)]
        for key_hex in named:
            try:
                created, problem = datakeys.load(self.repo, bytes.fromhex(key_hex)).created, ""
            except IntegrityError as exc:
                created, problem = "", str(exc)
            out.append(DataKeyInfo(key_hex, created, key_hex == current, problem=problem))
        return out

    def rotate(self, *, url: str = "", read_only: str | None = None) -> DataKey:
        """Start a new data key (see the module docstring); the new key."""
        if read_only:
            raise RotateRefused(url=url, reason=f"the vault is read-only here ({read_only})")
        if self.format() < DATAKEY_FORMAT:
            raise RotateRefused(url=url, reason=f"the vault is in format {self.format()}; data keys need format"
                                                f" {DATAKEY_FORMAT} ('strongroom vault upgrade' moves it there)")
        named = self.settings.current.data_keys
        taken = {bytes.fromhex(k) for k in (*named, *datakeys.listed(self.repo))}
        key = datakeys.generate(self.repo.master, taken, iso(self.clock()))
        with self.journal.operation("key.rotate", {"key_id": key.key_id.hex(),
                                                   "previous": self.current_id}):
            datakeys.write(self.repo, key)
            self.settings.update(data_keys=(*named, key.key_id.hex()))
            self.repo.envelope = datakeys.envelope_with_current(self.repo.envelope, key)
        self.alert("security", "key.rotated", f"the vault's data key was rotated: data key {key.key_id.hex()} is"
                   " current", details={"key_id": key.key_id.hex()})
        return key

    def check(self) -> list[str]:
        """Problems with the data keys, for ``vault verify``."""
        return datakeys.check(self.repo, self.settings.current.data_keys)


class KeyChecks:
    """The key slots (:class:`~.keys.KeySlots`) as ``vault verify`` checks them, with the
    data keys' problems added to the slots' (every other attribute is the slots')."""

    def __init__(self, slots: Any, data_keys: DataKeys) -> None:
        self._slots = slots
        self._data_keys = data_keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._slots, name)

    def check(self) -> tuple[list[str], list[str]]:
        notes, problems = self._slots.check()
        return notes, [*problems, *self._data_keys.check()]
