"""Which packs a partial ``verify --read-data-subset`` reads (restic's ``N/M`` and ``N%``).

- ``N/M``: the packs fall into ``M`` groups by their id (the first 32 bits of the id
  modulo ``M``: stable, and about even); the N-th group is read.  Running ``1/M`` to
  ``M/M`` reads every pack once.
- ``N%``: about N percent of the packs (at least one), taken in pack-id order starting
  just after a *cursor* (the last pack id the previous run read) and wrapping around;
  the new cursor is the last pack read.  Runs that keep the cursor therefore go round
  every pack, those added meanwhile included, in ``ceil(100 / N)`` runs.

Pure functions of their inputs: where the cursor is kept is the caller's business.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Iterable

import attrs

__all__ = ["Subset"]

_FRACTION = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


@attrs.frozen
class Subset:
    """A part of the packs to read: ``part`` of ``groups``, or ``percent`` per run."""

    text: str
    part: int = 0
    groups: int = 0
    percent: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Subset:
        """``"2/5"`` or ``"10%"``; ValueError saying what is wrong otherwise."""
        found = _FRACTION.fullmatch(text)
        if found:
            part, groups = int(found.group(1)), int(found.group(2))
            if not 1 <= part <= groups:
                raise ValueError(f"in {text!r}, N/M needs 1 <= N <= M")
            return cls(text.strip(), part=part, groups=groups)
        found = _PERCENT.fullmatch(text)
        if found:
            percent = float(found.group(1))
            if not 0 < percent <= 100:
                raise ValueError(f"in {text!r}, the percentage must be above 0 and at most 100")
            return cls(text.strip(), percent=percent)
        raise ValueError(f"{text!r} is neither N/M (such as 2/5) nor N% (such as 10%)")

    @property
    def rotates(self) -> bool:
        """Whether the selection depends on (and moves) a cursor."""
        return not self.groups

    def select(self, pack_ids: Iterable[str], cursor: str | None = None) -> tuple[list[str], str | None]:
        """(the packs to read, in id order of reading; the cursor for the next run)."""
        ids = sorted(set(pack_ids))
        if self.groups:
            return [p for p in ids if int(p[:8], 16) % self.groups == self.part - 1], cursor
        if not ids:
            return [], cursor
        count = min(len(ids), max(1, math.ceil(len(ids) * self.percent / 100)))
        start = bisect.bisect_right(ids, cursor) if cursor else 0
        chosen = [ids[(start + i) % len(ids)] for i in range(count)]
        return chosen, chosen[-1]
