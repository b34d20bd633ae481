"""Point status documents: what changes about a recovery point after its header is written.

A header (``points/<item-id>/<point-id>``) is written once, as the commit of a backup,
and never changed.  What changes later - its retention, re-evaluated when the item's
policy or state changes, and its state - is appended beside it as a small document::

    point-status/<item-id>/<point-id>/<time-id>

The newest *valid* document of a point wins: one that fails to decrypt or parse, or
that names another point than the one it is stored under, is skipped and the next
newest used.  :meth:`PointStatus.from_dict` raises IntegrityError for a malformed
document (a field of the wrong type, an unknown state, an expiry that is not an ISO
8601 time), never another exception.  Statuses live under their own prefix because a
local folder cannot hold a file ``points/<item>/<point>`` and a folder of the same name.

A status has ``state``, ``expires_at`` (None: never), ``tags`` and ``reason`` (see
:class:`strongroom.policy.retention.Verdict`).  The states:

- ``active``: the point follows its retention;
- ``soft-deleted``: the point was deleted (``deleted_at``) but its header, statuses and
  data stay until ``purge_at``; ``deleted_by`` says why (:data:`DELETED_BY`: ``points
  delete``, ``items stop --delete-data`` or ``prune: expired``).  It is not restored,
  browsed, listed by plain ``points`` nor taken for a parent until undeleted
  (:mod:`.softdelete`).

Documents written before soft deletion existed (no ``deleted_at``, ``purge_at``,
``deleted_by``) read as they always did.  Prune deletes a point's statuses right after
its header, and statuses whose header is gone (a point deleted while one was written) on
its next run.  Only names of status
documents count (:mod:`strongroom.repository.names`): a foreign object under
``point-status/`` is never read, taken for a status or deleted.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterable

import attrs

from ..errors import IntegrityError, ObjectNotFound
from ..models import RecoveryPoint, iso, stored_fields, stored_time
from .versions import version_name

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = [
    "ACTIVE", "DELETED_BY", "POINT_STATES", "SOFT_DELETED", "STATUS_PREFIX", "PointStatus", "apply",
    "delete_statuses", "load_statuses", "write_status",
]

STATUS_PREFIX = "point-status/"
ACTIVE, SOFT_DELETED = "active", "soft-deleted"
POINT_STATES = (ACTIVE, SOFT_DELETED)
#: Why a point was soft-deleted: the command or the rule that deleted it.
DELETED_BY = ("points delete", "items stop --delete-data", "prune: expired")


@attrs.frozen
class PointStatus:
    """The current retention and state of one point."""

    point_id: str
    item_id: str
    state: str = attrs.field(default="active", validator=attrs.validators.in_(POINT_STATES))
    expires_at: str | None = None
    tags: tuple[str, ...] = ()
    reason: str = ""
    written: str = ""
    deleted_at: str | None = None
    purge_at: str | None = None
    deleted_by: str = ""

    @property
    def soft_deleted(self) -> bool:
        return self.state == SOFT_DELETED

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["tags"] = list(self.tags)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> PointStatus:
        """The status stored as ``doc``; IntegrityError if it is malformed."""
        what = "point status"
        fields = stored_fields(cls, doc, what)
        if fields.get("state", "active") not in POINT_STATES:
            raise IntegrityError(what=what, reason=f"unknown state {fields['state']!r}")
        for name in ("expires_at", "deleted_at", "purge_at"):
            stored_time(fields.get(name), name, what, optional=True)
        if fields.get("state") == SOFT_DELETED and not (fields.get("purge_at") and fields.get("deleted_at")):
            raise IntegrityError(what=what, reason="a soft-deleted point without deleted_at and purge_at")
        if fields.get("written"):
            stored_time(fields["written"], "written", what)
        return cls(**fields)


def _prefix(item_id: str | None, point_id: str | None = None) -> str:
    if item_id is None:
        return STATUS_PREFIX
    return f"{STATUS_PREFIX}{item_id}/" + (f"{point_id}/" if point_id else "")


def load_statuses(repo: Repository, item_id: str | None = None) -> dict[str, PointStatus]:
    """point id -> newest valid status, for one item's points or every point."""
    versions: dict[str, list[str]] = {}
    for name in repo.list_names(_prefix(item_id)):
        parts = name.split("/")
        if len(parts) == 4:
            versions.setdefault(parts[2], []).append(name)
    newest = {point: sorted(names, reverse=True) for point, names in versions.items()}
    out: dict[str, PointStatus] = {}
    first = [names[0] for names in newest.values()]
    for name, doc in _read_all(repo, first):
        point = name.split("/")[2]
        status = _parse(doc, name)
        for older in newest[point][1:] if status is None else ():
            status = _parse(_read(repo, older), older)
            if status is not None:
                break
        if status is not None:
            out[point] = status
    return out


def _read(repo: Repository, name: str) -> dict | None:
    try:
        return repo.get_document(name)
    except (IntegrityError, ObjectNotFound):
        return None


def _read_all(repo: Repository, names: list[str]) -> Iterable[tuple[str, dict | None]]:
    if len(names) < 4:
        return [(name, _read(repo, name)) for name in names]
    with ThreadPoolExecutor(repo.io_threads) as pool:
        return list(zip(names, pool.map(lambda name: _read(repo, name), names)))


def _parse(doc: dict | None, name: str) -> PointStatus | None:
    """The status in ``doc`` read from ``name``, or None if it is damaged."""
    if doc is None:
        return None
    try:
        status = PointStatus.from_dict(doc)
    except IntegrityError:
        return None
    if _prefix(status.item_id, status.point_id) != name.rpartition("/")[0] + "/":
        return None  # stored under another point's name
    return status


def write_status(repo: Repository, status: PointStatus, now: dt.datetime) -> PointStatus:
    """Append ``status``; its name sorts after the point's earlier statuses even if
    ``now`` is behind the time they were written."""
    status = attrs.evolve(status, written=iso(now))
    name = version_name(repo.store, _prefix(status.item_id, status.point_id), now, repo.foreign)
    repo.put_document(name, status.to_dict())
    return status


def apply(point: RecoveryPoint, status: PointStatus | None) -> RecoveryPoint:
    """The point as it stands: its header with the newest status applied."""
    if status is None:
        return point
    return attrs.evolve(point, state=status.state, expires_at=status.expires_at, tags=status.tags)


def delete_statuses(repo: Repository, item_id: str, point_id: str) -> None:
    """Delete the status documents of one point (a foreign object beside them stays)."""
    for name in repo.list_names(_prefix(item_id, point_id)):
        repo.store.delete(name)
