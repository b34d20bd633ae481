"""Item lifecycle (protect, stop, resume, delete data) and the retention of an item's points.

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
policy).
Each change appends a new item version (``items/<item-id>/<time-id>``), records a job
(``stop`` or ``resume``) and re-evaluates the retention of the item's points, writing a
status document for each point whose retention changed (:mod:`strongroom.pointstatus`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Iterable

import attrs

from .errors import ItemStateError, PolicyNotFound
from .models import (
    DELETED, PROTECTED, STOPPED_RETAIN_FOREVER, STOPPED_RETAIN_POLICY, Policy, ProtectedItem,
    RecoveryPoint, iso, parse_iso,
)
from .pointstatus import PointStatus, write_status
from .policy.retention import PointFacts, Verdict, evaluate
from .policy.schedule import load_timezone

if TYPE_CHECKING:
    from .vault import Vault

__all__ = ["RETAIN_CHOICES", "evaluate_item", "facts_of", "reevaluate", "resume", "retention_mode", "stop"]

RETAIN_CHOICES = ("forever", "policy")


def retention_mode(item: ProtectedItem, policy: Policy | None) -> str:
    """How retention applies to ``item``'s points (see :func:`strongroom.policy.retention.evaluate`)."""
    if item.state == DELETED:
        return "deleted"
    if item.state == STOPPED_RETAIN_FOREVER:
        return "forever"
    return "policy" if policy is not None else "none"


def facts_of(point: RecoveryPoint) -> PointFacts:
    return PointFacts(point.point_id, parse_iso(point.created),
                      parse_iso(point.retain_until) if point.retain_until else None)


def evaluate_item(
    vault: Vault, item: ProtectedItem, points: list[RecoveryPoint], now: dt.datetime,
    policy: Policy | None = None, *, extra: PointFacts | None = None,
) -> list[Verdict]:
    """The retention verdict of each of ``points`` (plus ``extra``, a point being made).

    ``policy`` defaults to the item's; extra tags come from the ``strongroom_retention_tags``
    hook and keep a point while a plugin returns them.
    """
    if policy is None and item.policy:
        policy = vault.policies.find(item.policy)
    hook = vault.plugins.pm.hook.strongroom_retention_tags
    holds: dict[str, list[str]] = {}
    for point in points:
        for answer in hook(vault=vault, point=point, policy=policy):
            holds.setdefault(point.point_id, []).extend(str(tag) for tag in answer or ())
    facts = [facts_of(p) for p in points] + ([extra] if extra is not None else [])
    tz = load_timezone(policy.timezone) if policy else dt.timezone.utc
    return evaluate(facts, policy.retention if policy else None, tz, now,
                    mode=retention_mode(item, policy), holds=holds)


def reevaluate(vault: Vault, items: Iterable[ProtectedItem], now: dt.datetime | None = None) -> int:
    """Write a status for every point of ``items`` whose retention changed; how many."""
    now = now or vault.clock()
    written = 0
    for item in items:
        points = vault.points_of(item)
        for point, verdict in zip(points, evaluate_item(vault, item, points, now)):
            expires = iso(verdict.expires_at) if verdict.expires_at else None
            if (expires, verdict.tags) != (point.expires_at, point.tags):
                write_status(vault.repo, PointStatus(point.point_id, item.item_id, point.state, expires,
                                                     verdict.tags, verdict.reason), now)
                written += 1
    return written


def _change(vault: Vault, item: ProtectedItem, job_type: str, **changes) -> ProtectedItem:
    job = vault.jobs.start(job_type, item.name, **{k: v for k, v in changes.items() if k != "state"})
    try:
        updated = vault.put_item(attrs.evolve(item, **changes))
        statuses = reevaluate(vault, [updated])
    except BaseException as exc:
        vault.finish_job(job, "failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    vault.finish_job(job, "completed", details={"state": updated.state, "policy": updated.policy,
                                                "statuses_written": statuses})
    return updated


def stop(vault: Vault, name: str, *, retain: str | None = None, delete_data: bool = False) -> ProtectedItem:
    """Stop protecting item ``name``, keeping its points (``retain``) or deleting them."""
    item = vault.item(name)
    if item.state == DELETED:
        raise ItemStateError(item=name, state=item.state, reason="its data is already deleted")
    if delete_data == (retain is not None):
        raise ItemStateError(item=name, state=item.state, reason="give either --retain forever|policy or --delete-data")
    if delete_data:
        return _change(vault, item, "stop", state=DELETED)
    if retain not in RETAIN_CHOICES:
        raise ItemStateError(item=name, state=item.state, reason=f"--retain must be 'forever' or 'policy', not {retain!r}")
    if retain == "policy":
        if not item.policy:
            raise ItemStateError(item=name, state=item.state, reason="it has no policy to retain by; use --retain forever")
        vault.policies.get(item.policy)
    state = STOPPED_RETAIN_FOREVER if retain == "forever" else STOPPED_RETAIN_POLICY
    if state == item.state:
        raise ItemStateError(item=name, state=item.state, reason="it is stopped that way already")
    return _change(vault, item, "stop", state=state)


def resume(vault: Vault, name: str, *, policy: str | None = None) -> ProtectedItem:
    """Protect a stopped item again, with its policy or ``policy``."""
    item = vault.item(name)
    if item.state == DELETED:
        raise ItemStateError(item=name, state=item.state, reason="its data was deleted; protect the source again as a new item")
    if item.state == PROTECTED:
        raise ItemStateError(item=name, state=item.state, reason="it is not stopped")
    chosen = policy or item.policy
    if not chosen:
        raise ItemStateError(item=name, state=item.state, reason="it has no policy; give --policy NAME")
    if vault.policies.find(chosen) is None:
        raise PolicyNotFound(policy=chosen)
    return _change(vault, item, "resume", state=PROTECTED, policy=chosen)
