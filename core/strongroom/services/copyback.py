"""Copying back from the geo secondary the documents a vault lost: only intact ones, never older ones.

A repair (:mod:`.repair`) with the secondary's copies (:mod:`.heal`) restores two kinds of
document, and no other:

- a **damaged** point header, point status, settings document, item or policy version: the
  secondary's object of the same name, if it opens under that name and parses, replaces it;
  the damaged bytes are kept under ``quarantine/`` (their name kept) first;
- a **gone** one: a point header, the newest settings, item, policy or point status that
  the vault head lists as one that must be on storage (:mod:`.head`), that is not there and
  has no tombstone (it was not removed on purpose), and that the secondary holds intact.  A
  point status is restored only with its point header (present, or restored too).

Why this never rolls the vault back: every document name is used once (a new version gets
a new time id), and a copy is taken only under the name it opens under, so what comes back
is the very document the vault lost, never an older version in place of a newer one.  A
stale secondary simply lacks the newer documents (nothing is restored for them: they stay
findings); documents the vault removed on purpose (a prune's expired points, moved-aside
documents) have tombstones and are never brought back; documents that no head lists are
left alone, since their absence cannot be told from a deletion.  Not copied back: key slots
and the vault identity (rewritten in place: an older copy may be an older wrap of the key),
index files (the repair rewrites the index from the packs, and an old index file is what
the head's check calls a replayed one), packs (their blobs are healed one by one, checked
against their ids), and the heads themselves.

Writes (:func:`apply_copyback` only): ``quarantine/<name>`` for a damaged one, then ``<name>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import attrs

from ..errors import ObjectLocked, ObjectNotFound
from ..models import RecoveryPoint, VaultSettings
from .items import ITEM_PREFIX
from .points import POINT_PREFIX
from .pointstatus import STATUS_PREFIX, PointStatus
from .policies import POLICY_PREFIX
from .settings import SETTINGS_PREFIX

if TYPE_CHECKING:
    from ..repository.repository import Repository
    from .head import HeadService, Rollback
    from .heal import SecondaryCopies

__all__ = ["COPIED_BACK", "Copyback", "apply_copyback", "plan_copyback", "without_restored"]

#: Folders of the documents that may be copied back.
COPIED_BACK = (POINT_PREFIX, STATUS_PREFIX, SETTINGS_PREFIX, ITEM_PREFIX, POLICY_PREFIX)
_PARSE: dict[str, Callable[[dict], object]] = {
    POINT_PREFIX: RecoveryPoint.from_dict, STATUS_PREFIX: PointStatus.from_dict, SETTINGS_PREFIX: VaultSettings.from_dict,
}


@attrs.frozen
class Copyback:
    """What the secondary gives back: name -> its sealed bytes, damaged ones and gone ones."""

    damaged: Mapping[str, bytes] = attrs.field(factory=dict)
    gone: Mapping[str, bytes] = attrs.field(factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({*self.damaged, *self.gone})

    def __bool__(self) -> bool:
        return bool(self.damaged or self.gone)


def _point_of(status: str) -> str:
    """``points/<item>/<point>`` of ``point-status/<item>/<point>/<time-id>``."""
    parts = status.split("/")
    return f"{POINT_PREFIX}{parts[1]}/{parts[2]}" if len(parts) >= 4 else ""


def _parse(name: str) -> Callable[[dict], object] | None:
    return next((parse for prefix, parse in _PARSE.items() if name.startswith(prefix)), None)


def plan_copyback(repo: Repository, heads: HeadService, damaged: Iterable[str], copies: SecondaryCopies) -> Copyback:
    """What ``copies`` can give back (see the module docstring): of the ``damaged``
    documents, and of those the vault head lists that are gone from ``repo``."""
    fixed = {}
    for name in sorted(set(damaged)):
        if name.startswith(COPIED_BACK):
            sealed = copies.document(name, _parse(name))
            if sealed is not None:
                fixed[name] = sealed
    present = {n for prefix in COPIED_BACK for n in repo.list_names(prefix)}
    wanted = sorted(n for n in heads.read().objects if n.startswith(COPIED_BACK) and n not in present)
    gone: dict[str, bytes] = {}
    for name in (n for n in wanted if n.startswith(POINT_PREFIX)):
        sealed = copies.document(name, _parse(name))
        if sealed is not None:
            gone[name] = sealed
    for name in (n for n in wanted if not n.startswith(POINT_PREFIX)):
        if name.startswith(STATUS_PREFIX) and _point_of(name) not in present and _point_of(name) not in gone:
            continue  # a status without its point
        sealed = copies.document(name, _parse(name))
        if sealed is not None:
            gone[name] = sealed
    return Copyback(fixed, gone)


def apply_copyback(repo: Repository, plan: Copyback, check: Callable[[], None] = lambda: None) -> list[str]:
    """Write ``plan`` (damaged bytes kept under ``quarantine/`` first); the names restored.
    One that object lock keeps as it is stays as it is (and is not listed)."""
    from ..engine.repair import QUARANTINE_PREFIX

    store = repo.store
    restored: list[str] = []
    for name in plan.names:
        check()
        try:
            if name in plan.damaged:
                try:
                    store.put(QUARANTINE_PREFIX + name, store.get(name))
                except ObjectNotFound:
                    pass
            store.put(name, plan.damaged.get(name) or plan.gone[name])
        except ObjectLocked:
            continue
        restored.append(name)
    return restored


def without_restored(found: Rollback, restored: Iterable[str]) -> Rollback:
    """``found`` less the gone objects in ``restored`` and their lines (a dry run's view of
    what a repair leaves).  A finding's lines are its heads', its unreadable heads', then
    one per gone object, in the order of ``missing`` (:meth:`HeadService.check`)."""
    back = set(restored)
    if not back & set(found.missing):
        return found
    start = len(found.heads) + len(found.damaged_heads)
    lines = list(found.lines)
    keep = [i for i, name in enumerate(found.missing) if name not in back]
    missing_lines = lines[start:start + len(found.missing)]
    if len(missing_lines) != len(found.missing):
        return found  # not the layout above: leave the finding whole
    lines[start:start + len(found.missing)] = [missing_lines[i] for i in keep]
    return attrs.evolve(found, missing=tuple(found.missing[i] for i in keep), lines=tuple(lines))
