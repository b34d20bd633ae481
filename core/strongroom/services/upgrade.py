"""Moving a vault to the newest format in place (``strongroom vault upgrade``).

A vault's format decides how new objects are written; every format this version knows
is read (the envelope tells the encodings apart object by object), so an upgrade
rewrites nothing that is stored: packs, index files and documents written before it
stay as they are, and every recovery point stays restorable.  It writes, in this order,
each write one atomic put of a new object (or of ``strongroom.json`` whole):

0. the journal's ``upgrade started`` entry;
1. a new settings document with ``format`` set to :data:`~strongroom.models.FORMAT_VERSION`
   (encrypted, so only the key holder can set it; from then on this version writes the
   new format even if ``strongroom.json`` is edited back), and the vault head after it;
2. ``strongroom.json`` with the new ``format`` (clear: it is what keeps versions of
   strongroom that do not know the format from opening the vault at all);
3. the journal's ``upgrade succeeded`` entry.

**Crash safety.**  Killed at any moment, the upgrade leaves one of three states, each a
vault this version opens and restores from: nothing changed (the old format); the settings
ahead of ``strongroom.json`` (opened as the new format: :func:`format_in_force` takes the
higher); both changed (the new format).  Running the upgrade again finishes it: each step
is skipped when its format is already there.  A version of strongroom that reads the
settings' format but not the new one refuses the half state exactly as it refuses the
finished upgrade (UnsupportedFormat, exit 13, naming the format); never a state it cannot
name.  A later format whose new objects need something stored first (a key document, say)
writes it before step 1, under a new name old versions ignore, so that a crash before
step 1 still leaves a plain old-format vault.  ``tests/format/test_upgrade_crash.py`` kills
the command between every two writes and at random moments, on each fixture vault.

The chunker's parameters and seed stay: they decide chunk boundaries, and new ones would
defeat deduplication against everything already stored.  Without ``apply`` nothing is
written (``vault upgrade --dry-run``): once upgraded, versions of strongroom that do not
know the new format refuse the vault.

:func:`format_in_force` is the rule every writer follows: the higher of the two
formats, refused when it is newer than this version knows (:func:`newer_format`).
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
    3: "a vault may have several data keys ('vault key rotate': datakeys/<id>); pack trailers and index files"
       " name the data key of each pack's blobs, and the settings are sealed with the first data key",
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
