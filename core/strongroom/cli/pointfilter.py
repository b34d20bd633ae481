"""``points --tag T --host H --path P``: which recovery points a listing keeps.

Each option is repeatable and the kinds combine with AND: a point is kept when it has
one of the ``--tag`` values (a value ``a,b`` needs both tags), was made on one of the
``--host`` names, and read one of the ``--path`` paths (compared as absolute paths).
Tags, host and paths are those of the point header (``backup --tag``, the host that ran
the backup, the paths of the item's source then); a point made before the header held
them has none, so it is left out by any filter.
"""

from __future__ import annotations

import os
from typing import Iterable

import attrs

from ..models import RecoveryPoint

__all__ = ["PointFilter"]


def _path(text: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(text)))


@attrs.frozen
class PointFilter:
    tags: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.tags or self.hosts or self.paths)

    def keeps(self, point: RecoveryPoint) -> bool:
        if self.tags and not any(set(filter(None, wanted.split(","))) <= set(point.user_tags) for wanted in self.tags):
            return False
        if self.hosts and point.host not in self.hosts:
            return False
        if self.paths and not {_path(p) for p in self.paths} & {_path(p) for p in point.paths}:
            return False
        return True

    def apply(self, points: Iterable[RecoveryPoint]) -> list[RecoveryPoint]:
        return [p for p in points if self.keeps(p)]
