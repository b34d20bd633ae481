"""Item lifecycle: protect, stop, resume, delete data.

States of a protected item and the commands that move it::

    protected --- items stop --retain forever --> stopped-retain-forever
        |     --- items stop --retain policy  --> stopped-retain-policy
        |                                           |  items resume [--policy NAME]
        |  <----------------------------------------+
        +-------- items stop --delete-data -------> deleted   (from any state but deleted)
                                                       |  items undelete (soft delete)
                        stopped-retain-forever  <------+

- **protected**: scheduled backups run (when the item has a policy) and the policy's
  retention applies.
- **stopped-retain-forever**: no scheduled backups; no point ever expires.
- **stopped-retain-policy**: no scheduled backups; the policy's retention goes on, and
  the latest point is kept forever (the newest point of an item is never expired).
- **deleted**: with soft delete on (:mod:`.softdelete`), every point is soft-deleted
  and purged once its purge time passes; with it off, every point expires at once and
  the next prune removes them and their data.  A deleted item cannot be resumed; its name
  may be protected again.  ``items undelete`` brings it back, stopped with retain forever
  (as in Azure), with the points its deletion soft-deleted, while they are not purged.

Guarded changes: ``--delete-data`` needs the guard's ``items.delete-data`` ticket when
the vault has a guard, and is refused while immutability is on and a point has not
expired; a stop or resume that would shorten the retention of existing points
(:meth:`.retention.Retention.shortened`) is refused while immutability is on and needs
a ``retention.shorten`` ticket (``item=NAME``) with a guard.  Both are checked before
anything is written.

``items update`` changes a protected item's source (validated by its workload) or policy:
a new version of the item, which the next backup follows (points already made keep what
they hold).  It is refused for a stopped or a deleted item, and a new policy goes through
the same check as a resume with another policy (a shortening of retention is refused
while immutability is on, and needs a ``retention.shorten`` ticket with a guard).

On-demand backups (``strongroom backup``) need the protected state (with or without a
policy).  Each change appends a new item version, records a job (``stop`` or
``resume``) and re-evaluates the retention of the item's points, writing a status
document for each point whose retention changed; a vault head then records the new
version (:mod:`.head`), so that its disappearing from storage is noticed.

:meth:`Lifecycle.rehearse_stop` is ``items stop --dry-run``: every check :meth:`Lifecycle.stop`
makes (the state, the policy, immutability, the guard's ticket) under the security
service's rehearsal, and nothing written: no item version, no job, no status, no journal
entry, no alert.  Its :class:`StopPlan` is the item as it would be and the points its data
deletion would remove.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import contextlib

import attrs

from ..errors import ItemExists, ItemStateError, PolicyNotFound, UsageError
from ..models import DELETED, PROTECTED, STOPPED_RETAIN_FOREVER, STOPPED_RETAIN_POLICY, ProtectedItem, iso, new_id
from .softdelete import BY_ITEM, Deletion

if TYPE_CHECKING:
    from ..workload import Workload
    from .head import HeadService
    from .items import ItemBook
    from .jobs import JobLog
    from .policies import PolicyBook
    from .retention import Retention
    from .softdelete import SoftDeletion

__all__ = ["RETAIN_CHOICES", "Lifecycle", "StopPlan"]

RETAIN_CHOICES = ("forever", "policy")


@attrs.frozen
class StopPlan:
    """What ``items stop`` did (or, with ``dry_run``, would do): the item as it is (would be)
    after, and the points its data deletion removed (would remove), if any."""

    item: ProtectedItem
    deletion: Deletion | None = None
    dry_run: bool = False


class Lifecycle:
    """Protecting items and changing their state."""

    def __init__(self, items: ItemBook, policies: PolicyBook, retention: Retention, jobs: JobLog,
                 workload: Callable[[str], Workload], clock: Callable[[], dt.datetime], heads: HeadService,
                 soft: SoftDeletion | None = None) -> None:
        self.items = items
        self.policies = policies
        self.retention = retention
        self.jobs = jobs
        self.workload = workload
        self.clock = clock
        self.heads = heads
        self.soft = soft  # None: no soft delete, no security rules

    def protect(self, workload: str, name: str, source: dict, *, policy: str | None = None) -> ProtectedItem:
        """A new item of ``workload`` called ``name``, protecting ``source`` (validated by
        the workload), following ``policy`` if given."""
        plugin = self.workload(workload)
        try:
            item = ProtectedItem(item_id=new_id(8), name=name, workload=workload, source={},
                                 policy=policy, created=iso(self.clock()))
        except ValueError as exc:
            raise UsageError(message=str(exc)) from None
        if self.items.has_live(name):
            raise ItemExists(item=name)
        if policy is not None:
            self.policies.get(policy)
        created = self.items.put(attrs.evolve(item, source=plugin.validate_source(source)))
        self.heads.record("protect")
        return created

    def stop(self, name: str, *, retain: str | None = None, delete_data: bool = False,
             ticket: str | None = None) -> ProtectedItem:
        """Stop protecting item ``name``, keeping its points (``retain``) or deleting them;
        ``ticket``: the guard's, for deleting data or shortening retention."""
        return self._stop(name, retain, delete_data, ticket, dry_run=False).item

    def rehearse_stop(self, name: str, *, retain: str | None = None, delete_data: bool = False,
                      ticket: str | None = None) -> StopPlan:
        """What :meth:`stop` would do, after the same checks; nothing written."""
        security = self.soft.security if self.soft is not None else self.retention.security
        with security.rehearsal() if security is not None else contextlib.nullcontext():
            return self._stop(name, retain, delete_data, ticket, dry_run=True)

    def _stop(self, name: str, retain: str | None, delete_data: bool, ticket: str | None, *,
              dry_run: bool) -> StopPlan:
        item = self.items.get(name)
        if item.state == DELETED:
            raise ItemStateError(item=name, state=item.state, reason="its data is already deleted")
        if delete_data == (retain is not None):
            raise ItemStateError(item=name, state=item.state, reason="give either --retain forever|policy or --delete-data")
        if delete_data:
            return self._delete_data(item, ticket, dry_run=dry_run)
        if retain not in RETAIN_CHOICES:
            raise ItemStateError(item=name, state=item.state, reason=f"--retain must be 'forever' or 'policy', not {retain!r}")
        if retain == "policy":
            if not item.policy:
                raise ItemStateError(item=name, state=item.state, reason="it has no policy to retain by; use --retain forever")
            self.policies.get(item.policy)
        state = STOPPED_RETAIN_FOREVER if retain == "forever" else STOPPED_RETAIN_POLICY
        if state == item.state:
            raise ItemStateError(item=name, state=item.state, reason="it is stopped that way already")
        self._allow(item, attrs.evolve(item, state=state), ticket, f"stopping item '{name}' with --retain {retain}")
        if dry_run:
            return StopPlan(attrs.evolve(item, state=state), dry_run=True)
        return StopPlan(self._change(item, "stop", state=state))

    def resume(self, name: str, *, policy: str | None = None, ticket: str | None = None) -> ProtectedItem:
        """Protect a stopped item again, with its policy or ``policy``; ``ticket``: the
        guard's, when that shortens retention."""
        item = self.items.get(name)
        if item.state == DELETED:
            raise ItemStateError(item=name, state=item.state, reason="its data was deleted; protect the source again as a new item")
        if item.state == PROTECTED:
            raise ItemStateError(item=name, state=item.state, reason="it is not stopped")
        chosen = policy or item.policy
        if not chosen:
            raise ItemStateError(item=name, state=item.state, reason="it has no policy; give --policy NAME")
        if self.policies.find(chosen) is None:
            raise PolicyNotFound(policy=chosen)
        self._allow(item, attrs.evolve(item, state=PROTECTED, policy=chosen), ticket,
                    f"resuming item '{name}' with policy '{chosen}'")
        return self._change(item, "resume", state=PROTECTED, policy=chosen)

    def update(self, name: str, *, source: dict | None = None, policy: str | None = None,
               ticket: str | None = None) -> ProtectedItem:
        """A new version of protected item ``name`` with ``source`` (checked by its workload's
        ``validate_source``) and/or ``policy``; the item as it was when nothing changes."""
        item = self.items.get(name)
        if item.state == DELETED:
            raise ItemStateError(item=name, state=item.state, reason="its data was deleted; protect the source again as a new item")
        if item.state != PROTECTED:
            raise ItemStateError(item=name, state=item.state, reason="it is stopped; 'items resume' it first")
        if source is None and policy is None:
            raise UsageError(message="nothing to change: give the workload's options (--path, --exclude...) or --policy NAME")
        if policy is not None and self.policies.find(policy) is None:
            raise PolicyNotFound(policy=policy)
        changes: dict[str, object] = {}
        if source is not None:
            validated = self.workload(item.workload).validate_source(source)
            if validated != item.source:
                changes["source"] = validated
        if policy is not None and policy != item.policy:
            changes["policy"] = policy
        if not changes:
            return item
        if "policy" in changes:
            self._allow(item, attrs.evolve(item, **changes), ticket,  # type: ignore[arg-type]
                        f"updating item '{name}' to policy '{policy}'")
        return self._change(item, "update", **changes)

    def undelete(self, name: str) -> ProtectedItem:
        """Bring back deleted item ``name``, stopped with retain forever, and the points its
        deletion soft-deleted."""
        item = self.items.get(name)
        if item.state != DELETED:
            raise ItemStateError(item=name, state=item.state, reason="it is not deleted: nothing to undelete")
        if self.soft is None:
            raise ItemStateError(item=name, state=item.state, reason="this vault has no soft delete")
        back = [d for d in self.soft.points.deleted(item) if d.deleted_by == BY_ITEM]
        if not back:
            raise ItemStateError(item=name, state=item.state,
                                 reason="none of its points is soft-deleted any more (purged, or deleted with soft"
                                        " delete off): nothing to undelete")
        updated = self._change(item, "undelete", state=STOPPED_RETAIN_FOREVER)
        self.soft.restore(updated, back)
        return updated

    # --- guarded changes ---------------------------------------------------------------------

    def _delete_data(self, item: ProtectedItem, ticket: str | None, *, dry_run: bool = False) -> StopPlan:
        """``items stop --delete-data`` (see the module docstring)."""
        if self.soft is None:
            if dry_run:
                return StopPlan(attrs.evolve(item, state=DELETED), dry_run=True)
            return StopPlan(self._change(item, "stop", state=DELETED))
        now = self.clock()
        live = self.soft.points.of(item)
        security = self.soft.security
        for point in live:  # immutability: refused while a point has not expired
            security.require_deletable(point, now, operation="items.delete-data")
        security.authorize("items.delete-data", {"item": item.name}, ticket)
        if dry_run:
            return StopPlan(attrs.evolve(item, state=DELETED), self.soft.would_remove(item, live, now), dry_run=True)
        updated = self._change(item, "stop", state=DELETED)
        if self.soft.setting.on:
            done = self.soft.remove(updated, self.soft.points.of(updated), BY_ITEM, now)
        else:  # expired now: the next prune deletes them
            done = Deletion(item.name, tuple(p.point_id for p in live), soft=False)
        self.soft.alert_deleted(done)
        return StopPlan(updated, done)

    def _allow(self, before: ProtectedItem, after: ProtectedItem, ticket: str | None, what: str) -> None:
        """Let a change of ``before`` into ``after`` through unless it shortens retention
        where that is refused (:meth:`.retention.Retention.allow_shortening`)."""
        shortened = self.retention.shortened(before, after)
        if shortened:
            self.retention.allow_shortening({"item": before.name}, ticket, what, shortened)

    def _change(self, item: ProtectedItem, job_type: str, **changes: object) -> ProtectedItem:
        details = {k: v for k, v in changes.items() if k not in ("state", "source")}  # a source may name secrets
        if "source" in changes:
            details["source_changed"] = True
        with self.jobs.running(job_type, item.name, **details) as run:
            updated = self.items.put(attrs.evolve(item, **changes))
            statuses = self.retention.reevaluate([updated])
            run.end("completed", details={"state": updated.state, "policy": updated.policy,
                                          "statuses_written": statuses})
        self.heads.record(f"items {job_type}")
        return updated
