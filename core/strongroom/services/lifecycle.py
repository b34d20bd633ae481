"""Item lifecycle: protect, stop, resume, delete data.

States of a protected item and the commands that move it::

    protected --- items stop --retain forever --> stopped-retain-forever
        |     --- items stop --retain policy  --> stopped-retain-policy
        |                                           |  items resume [--policy NAME]
        |  <----------------------------------------+
        +-------- items stop --delete-data -------> deleted   (from any state but deleted)

- **protected**: scheduled backups run (when the item has a policy) and the policy's
  retention applies.
- **stopped-retain-forever**: no scheduled backups; no point ever expires.
- **stopped-retain-policy**: no scheduled backups; the policy's retention goes on, and
  the latest point is kept forever (the newest point of an item is never expired).
- **deleted**: every point expires at once; the next prune removes them and their data.
  A deleted item cannot be resumed; its name may be protected again.

On-demand backups (``strongroom backup``) need the protected state (with or without a
policy).  Each change appends a new item version, records a job (``stop`` or
``resume``) and re-evaluates the retention of the item's points, writing a status
document for each point whose retention changed; a vault head then records the new
version (:mod:`.head`), so that its disappearing from storage is noticed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import ItemExists, ItemStateError, PolicyNotFound, UsageError
from ..models import DELETED, PROTECTED, STOPPED_RETAIN_FOREVER, STOPPED_RETAIN_POLICY, ProtectedItem, iso, new_id

if TYPE_CHECKING:
    from ..workload import Workload
    from .head import HeadService
    from .items import ItemBook
    from .jobs import JobLog
    from .policies import PolicyBook
    from .retention import Retention

__all__ = ["RETAIN_CHOICES", "Lifecycle"]

RETAIN_CHOICES = ("forever", "policy")


class Lifecycle:
    """Protecting items and changing their state."""

    def __init__(self, items: ItemBook, policies: PolicyBook, retention: Retention, jobs: JobLog,
                 workload: Callable[[str], Workload], clock: Callable[[], dt.datetime], heads: HeadService) -> None:
        self.items = items
        self.policies = policies
        self.retention = retention
        self.jobs = jobs
        self.workload = workload
        self.clock = clock
        self.heads = heads

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

    def stop(self, name: str, *, retain: str | None = None, delete_data: bool = False) -> ProtectedItem:
        """Stop protecting item ``name``, keeping its points (``retain``) or deleting them."""
        item = self.items.get(name)
        if item.state == DELETED:
            raise ItemStateError(item=name, state=item.state, reason="its data is already deleted")
        if delete_data == (retain is not None):
            raise ItemStateError(item=name, state=item.state, reason="give either --retain forever|policy or --delete-data")
        if delete_data:
            return self._change(item, "stop", state=DELETED)
        if retain not in RETAIN_CHOICES:
            raise ItemStateError(item=name, state=item.state, reason=f"--retain must be 'forever' or 'policy', not {retain!r}")
        if retain == "policy":
            if not item.policy:
                raise ItemStateError(item=name, state=item.state, reason="it has no policy to retain by; use --retain forever")
            self.policies.get(item.policy)
        state = STOPPED_RETAIN_FOREVER if retain == "forever" else STOPPED_RETAIN_POLICY
        if state == item.state:
            raise ItemStateError(item=name, state=item.state, reason="it is stopped that way already")
        return self._change(item, "stop", state=state)

    def resume(self, name: str, *, policy: str | None = None) -> ProtectedItem:
        """Protect a stopped item again, with its policy or ``policy``."""
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
        return self._change(item, "resume", state=PROTECTED, policy=chosen)

    def _change(self, item: ProtectedItem, job_type: str, **changes: object) -> ProtectedItem:
        with self.jobs.running(job_type, item.name, **{k: v for k, v in changes.items() if k != "state"}) as run:
            updated = self.items.put(attrs.evolve(item, **changes))
            statuses = self.retention.reevaluate([updated])
            run.end("completed", details={"state": updated.state, "policy": updated.policy,
                                          "statuses_written": statuses})
        self.heads.record(f"items {job_type}")
        return updated
