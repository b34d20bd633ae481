"""Recovery points: their headers (``points/<item-id>/<point-id>``) with their newest
status applied, and read access to their trees.

A header is written once, as the commit of a backup; what changes later is a status
document (:mod:`.pointstatus`).  :meth:`PointBook.context` opens a point for a workload
(:class:`~strongroom.contexts.PointContext`), loading the vault's index first.

Damage stays with the point it hits.  A header that cannot be read (it fails
authentication, is cut short, is not a header) makes a
:class:`~strongroom.models.DamagedPoint`: :meth:`PointBook.survey` lists it, with its
error, beside the intact points; :meth:`PointBook.of` leaves it out, so it is never an
item's latest point, a backup's parent or a point retention decides about, and
:meth:`PointBook.find` refuses it by name with an
:class:`~strongroom.errors.IntegrityError`.  A point whose status documents cannot be
read keeps the newest one that can, or else its header's own retention; the survey
carries a notice for it.  A foreign object under ``points/`` (a name that is not a
header's, :mod:`strongroom.repository.names`) is not a point, damaged or not.

Soft-deleted points (:mod:`.pointstatus`, :mod:`.softdelete`) are set apart the same
way: :meth:`PointBook.survey` lists them in ``deleted`` (a :class:`DeletedPoint` each,
with when they are purged), never among ``points``; so they are never an item's latest
point, a backup's parent or a point retention decides about, and :meth:`PointBook.find`
refuses one by name with :class:`~strongroom.errors.PointSoftDeleted`, naming the
command that undeletes it.  Their headers stay on storage until they are purged, so
garbage collection keeps their data.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

import attrs

from ..catalog.tree import TreeReader
from ..contexts import PointContext
from ..errors import AmbiguousPoint, IntegrityError, ObjectNotFound, PointNotFound, PointSoftDeleted
from ..models import DELETED, DamagedPoint, ProtectedItem, RecoveryPoint, parse_iso, time_of
from .pointstatus import STATUS_PREFIX, PointStatus, apply as apply_status, load_statuses

if TYPE_CHECKING:
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from ..results import RestoreStats

__all__ = ["POINT_PREFIX", "DeletedPoint", "PointBook", "PointSurvey", "soft_deleted_error"]

POINT_PREFIX = "points/"


@attrs.frozen
class DeletedPoint:
    """A soft-deleted point: its header as it stands, and the status that deleted it."""

    point: RecoveryPoint
    status: PointStatus

    @property
    def point_id(self) -> str:
        return self.point.point_id

    @property
    def purge_at(self) -> str:
        return self.status.purge_at or ""

    @property
    def deleted_at(self) -> str:
        return self.status.deleted_at or ""

    @property
    def deleted_by(self) -> str:
        return self.status.deleted_by

    def to_dict(self) -> dict:
        return {**self.point.to_dict(), "deleted_at": self.deleted_at, "purge_at": self.purge_at,
                "deleted_by": self.deleted_by}


@attrs.frozen
class PointSurvey:
    """The points of one item (or of every item) as storage holds them.

    ``points``: the intact ones, oldest first, with their current status; ``damaged``:
    those whose header cannot be read; ``notices``: point id -> one line, for intact
    points whose status documents could not be read; ``rollback``: one line if the
    vault's storage went back to an older state (:mod:`.head`), else empty.
    """

    points: tuple[RecoveryPoint, ...] = ()
    damaged: tuple[DamagedPoint, ...] = ()
    notices: dict[str, str] = attrs.field(factory=dict)
    rollback: str = ""
    deleted: tuple[DeletedPoint, ...] = ()


class PointBook:
    """The recovery points of one vault; ``check_head()`` (the vault head's check,
    :mod:`.head`) gives the survey's ``rollback`` line."""

    def __init__(self, repo: Repository, index: IndexState, check_head: Callable[[], str] | None = None) -> None:
        self.repo = repo
        self.index = index
        self.check_head = check_head

    def of(self, item: ProtectedItem | None) -> list[RecoveryPoint]:
        """The intact points of ``item`` (or of every item) that are not soft-deleted,
        oldest first, with their current status."""
        return list(self.survey(item, notices=False).points)

    def deleted(self, item: ProtectedItem | None) -> list[DeletedPoint]:
        """The soft-deleted points of ``item`` (or of every item), oldest first."""
        return list(self.survey(item, notices=False).deleted)

    def survey(self, item: ProtectedItem | None, *, notices: bool = True) -> PointSurvey:
        """Every point of ``item`` (or of every item): intact, damaged, and (unless
        ``notices`` is false) the notices about their status documents and the
        ``rollback`` line of the vault head's check."""
        rollback = self.check_head() if notices and self.check_head is not None else ""
        item_id = item.item_id if item is not None else None
        prefix = f"{POINT_PREFIX}{item_id}/" if item_id else POINT_PREFIX
        names = self.repo.list_names(prefix)  # points/<item-id>/<point-id> only: no foreign object
        if not names:
            return PointSurvey(rollback=rollback)
        statuses = load_statuses(self.repo, item_id)
        points: list[RecoveryPoint] = []
        deleted: list[DeletedPoint] = []
        damaged: list[DamagedPoint] = []
        for name, header in zip(names, self._read_all(names)):
            if isinstance(header, RecoveryPoint):
                status = statuses.get(header.point_id)
                if status is not None and status.soft_deleted:
                    deleted.append(DeletedPoint(apply_status(header, status), status))
                else:
                    points.append(apply_status(header, status))
            elif header is not None:
                _, found_item, point_id = name.split("/")
                damaged.append(DamagedPoint(point_id, found_item, header, item.name if item else ""))
        points.sort(key=lambda p: (p.created, p.point_id))
        deleted.sort(key=lambda d: (d.point.created, d.point_id))
        damaged.sort(key=lambda d: (d.item_id, d.point_id))
        notes = self._status_notices(item_id, points + [d.point for d in deleted], statuses) if notices else {}
        return PointSurvey(tuple(points), tuple(damaged), notes, rollback, tuple(deleted))

    def find(self, item: ProtectedItem, ref: str | None = None) -> RecoveryPoint:
        """The latest intact point of ``item`` that is not soft-deleted, or the one whose
        id starts with ``ref`` (an :class:`IntegrityError` if its header is damaged,
        :class:`PointSoftDeleted` if it is soft-deleted)."""
        points, damaged, deleted = self._matches(item, ref)
        if deleted:
            raise soft_deleted_error(deleted[0], item)
        if not points:
            if damaged:
                more = f", and {len(damaged) - 1} more" if len(damaged) > 1 else ""
                raise IntegrityError(what=f"every recovery point of item '{item.name}'",
                                     reason=f"{damaged[0].object_name}: {damaged[0].error}{more}")
            raise PointNotFound(point=ref or "latest", item=item.name)
        return points[-1]

    def find_deleted(self, item: ProtectedItem, ref: str) -> DeletedPoint:
        """The soft-deleted point of ``item`` whose id starts with ``ref``; PointNotFound
        if none is (a point that is not soft-deleted included)."""
        points, _, deleted = self._matches(item, ref)
        if not deleted:
            if points:
                raise PointNotFound(point=f"{ref} (it is not soft-deleted)", item=item.name)
            raise PointNotFound(point=ref, item=item.name)
        return deleted[0]

    def _matches(self, item: ProtectedItem, ref: str | None) -> tuple[
            list[RecoveryPoint], list[DamagedPoint], list[DeletedPoint]]:
        """Intact, damaged and soft-deleted points of ``item`` that ``ref`` names (at most
        one in all, else AmbiguousPoint; a damaged one is an IntegrityError); without
        ``ref``, every intact point and no other."""
        survey = self.survey(item, notices=False)
        if not ref:
            return list(survey.points), list(survey.damaged), []
        ref = ref.lower()
        points = [p for p in survey.points if p.point_id.startswith(ref)]
        damaged = [d for d in survey.damaged if d.point_id.startswith(ref)]
        deleted = [d for d in survey.deleted if d.point_id.startswith(ref)]
        if len(points) + len(damaged) + len(deleted) > 1:
            raise AmbiguousPoint(point=ref, count=len(points) + len(damaged) + len(deleted), item=item.name)
        if damaged:
            raise _damaged_error(damaged[0], item)
        return points, damaged, deleted

    def tree(self, point: RecoveryPoint) -> TreeReader:
        """A reader of the point's tree (the index is loaded first; a damaged index file
        is skipped and its packs read from their trailers: ``index.problems``)."""
        try:
            root = bytes.fromhex(point.root)
        except (TypeError, ValueError):
            raise IntegrityError(what=f"the header of point {point.short_id}", reason="its root is not a blob id") from None
        self.index.load_for_reading()
        return TreeReader(self.repo, root, point=point.short_id)

    def context(self, item: ProtectedItem, point: RecoveryPoint,
                progress: Callable[[RestoreStats], None] | None = None, *,
                options: dict | None = None) -> PointContext:
        """The point opened for a workload's browse or restore; ``options`` are the
        restore command's (``overwrite`` reaches :meth:`PointContext.restore_paths`)."""
        return PointContext(item, point, self.repo, self.tree(point), progress,
                            overwrite=(options or {}).get("overwrite"))

    # --- reading headers -------------------------------------------------------------

    def _read_all(self, names: list[str]) -> list[RecoveryPoint | str | None]:
        if len(names) < 4:
            return [self._read(name) for name in names]
        with ThreadPoolExecutor(self.repo.io_threads) as pool:
            return list(pool.map(self._read, names))

    def _read(self, name: str) -> RecoveryPoint | str | None:
        """The header at ``name``; the reason it is damaged; None if it is gone (a prune
        deleted it after the listing)."""
        try:
            doc = self.repo.get_document(name)
        except ObjectNotFound:
            return None
        except IntegrityError as exc:
            return str(exc.fields.get("reason") or exc)
        try:
            point = RecoveryPoint.from_dict(doc)
        except IntegrityError as exc:
            return str(exc.fields.get("reason") or exc)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            return f"not a point header ({type(exc).__name__}: {exc})"
        if f"{POINT_PREFIX}{point.item_id}/{point.point_id}" != name:
            return f"the header names another point ({point.item_id}/{point.point_id})"
        return point

    def _status_notices(self, item_id: str | None, points: list[RecoveryPoint],
                        statuses: dict[str, PointStatus]) -> dict[str, str]:
        """Notices for points whose status documents exist but whose newest cannot be
        read (:mod:`.pointstatus` then uses an older one, or the header's retention)."""
        newest: dict[str, str] = {}
        for name in self.repo.list_names(f"{STATUS_PREFIX}{item_id}/" if item_id else STATUS_PREFIX):
            parts = name.split("/")
            if len(parts) == 4 and name > newest.get(parts[2], ""):
                newest[parts[2]] = name
        notices: dict[str, str] = {}
        for point in points:
            name = newest.get(point.point_id)
            if name is None:
                continue
            status = statuses.get(point.point_id)
            if status is None:
                notices[point.point_id] = (f"no status document of point {point.short_id} can be read"
                                           f" ({name} is damaged): its header's retention is used")
            elif _older(status, name) and not self._readable_status(name):
                notices[point.point_id] = (f"the newest status document of point {point.short_id} is damaged"
                                           f" ({name}): an older one is used")
        return notices

    def _readable_status(self, name: str) -> bool:
        try:
            PointStatus.from_dict(self.repo.get_document(name))
        except (IntegrityError, ObjectNotFound, AttributeError, KeyError, TypeError, ValueError):
            return False
        return True


def _older(status: PointStatus, name: str) -> bool:
    """Whether ``status`` was written before the document ``name`` was named (then it
    may be an older document, used because ``name`` could not be read)."""
    try:
        return parse_iso(status.written) < time_of(name)
    except (TypeError, ValueError):
        return True


def soft_deleted_error(deleted: DeletedPoint, item: ProtectedItem) -> PointSoftDeleted:
    """The refusal to open soft-deleted ``deleted``, naming the command that undeletes it."""
    if item.state == DELETED:
        hint = f"strongroom items undelete {item.name}"
    else:
        hint = f"strongroom points undelete {item.name}@{deleted.point.short_id}"
    return PointSoftDeleted(what=f"recovery point {deleted.point.short_id} of item '{item.name}'",
                            purge_at=(deleted.purge_at or "?")[:19], hint=hint)


def _damaged_error(point: DamagedPoint, item: ProtectedItem) -> IntegrityError:
    return IntegrityError(what=f"recovery point {point.short_id} of item '{item.name}' ({point.object_name})",
                          reason=point.error)
