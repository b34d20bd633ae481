"""Moving a vault to the newest format in place (``strongroom vault upgrade``).

A vault's format decides how new objects are written; every format this version knows
is read (the envelope tells the encodings apart object by object), so an upgrade
rewrites nothing that is stored: packs, index files and documents written before it
stay as they are, and every recovery point stays restorable.  It changes two things,
in this order:

1. a new settings document with ``format`` set to :data:`~strongroom.models.FORMAT_VERSION`
   (encrypted, so only the key holder can set it; from then on this version writes the
   new format even if ``strongroom.json`` is edited back);
2. ``strongroom.json`` with the new ``format`` (clear: it is what keeps versions of
   strongroom that do not know the format from opening the vault at all).

Interrupted between the two, the vault is written in the new format by this version and
still opened by older ones; running the upgrade again finishes it.  The chunker's
parameters and seed stay: they decide chunk boundaries, and new ones would defeat
deduplication against everything already stored.  Without ``apply`` nothing is written
(a dry run, as for ``vault repair``): once upgraded, versions of strongroom that do not
know the new format refuse the vault.

:func:`format_in_force` is the rule every writer follows: the higher of the two
formats, refused when it is newer than this version knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import UnsupportedFormat
from ..models import FORMAT_VERSION, VaultConfig, VaultSettings
from ..version import __version__

if TYPE_CHECKING:
    from .settings import SettingsBook

__all__ = ["UpgradeReport", "UpgradeService", "format_in_force", "newer_format"]

#: What each format changes, shown by ``vault upgrade``.
FORMAT_CHANGES = {
    2: "blobs are written without a clear header (their kind, compression and exact size are no longer"
       " visible in packs) and every sealed object is padded to a size bucket",
}


def newer_format(url: str, found: int) -> UnsupportedFormat:
    """The one-line refusal of a vault of a format newer than this version reads: it names
    the format the vault has, this strongroom's version and the formats it reads."""
    return UnsupportedFormat(url=url, reason=f"has format {found} and this strongroom ({__version__}) reads"
                                            f" formats 1 to {FORMAT_VERSION}")


def format_in_force(config: VaultConfig, settings: VaultSettings, url: str) -> int:
    """The format new objects are written in: the higher of ``strongroom.json``'s and the
    (authenticated) settings'; UnsupportedFormat when that is newer than this version's."""
    newest = max(config.format, settings.format)
    if newest > FORMAT_VERSION:
        raise newer_format(url, newest)
    return newest


@attrs.frozen
class UpgradeReport:
    """What ``vault upgrade`` found and did (or, in a dry run, would do)."""

    url: str
    from_format: int
    to_format: int
    changes: tuple[str, ...]
    dry_run: bool
    config: VaultConfig

    @property
    def needed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict:
        return {"url": self.url, "from_format": self.from_format, "to_format": self.to_format,
                "changes": list(self.changes), "dry_run": self.dry_run,
                "upgraded": self.needed and not self.dry_run}


class UpgradeService:
    """Upgrades one vault: its settings book and a way to write ``strongroom.json``."""

    def __init__(self, url: str, settings: SettingsBook, write_config: Callable[[VaultConfig], None]) -> None:
        self.url = url
        self.settings = settings
        self.write_config = write_config

    def run(self, config: VaultConfig, *, apply: bool = False) -> UpgradeReport:
        """Move the vault whose ``strongroom.json`` is ``config`` to :data:`FORMAT_VERSION`
        (with ``apply``; else only say what would change)."""
        current = format_in_force(config, self.settings.current, self.url)
        changes: list[str] = []
        if self.settings.current.format < FORMAT_VERSION:
            changes.append(f"settings: format {self.settings.current.format} -> {FORMAT_VERSION}")
        if config.format < FORMAT_VERSION:
            changes.append(f"strongroom.json: format {config.format} -> {FORMAT_VERSION}")
        changes += [f"format {n}: {FORMAT_CHANGES[n]}" for n in range(current + 1, FORMAT_VERSION + 1)
                    if n in FORMAT_CHANGES and changes]
        new_config = attrs.evolve(config, format=max(config.format, FORMAT_VERSION))
        if apply and changes:
            if self.settings.current.format < FORMAT_VERSION:
                self.settings.update(format=FORMAT_VERSION)
            if config.format < FORMAT_VERSION:
                self.write_config(new_config)
        return UpgradeReport(self.url, current, FORMAT_VERSION, tuple(changes), not apply,
                             new_config if apply else config)
