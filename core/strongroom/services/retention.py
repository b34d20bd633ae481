"""The retention of an item's points: verdicts from its policy and state, kept as statuses.

:meth:`Retention.evaluate` gives every point of an item its verdict
(:func:`strongroom.policy.retention.evaluate`): the GFS tags it holds, when it expires,
whether it is kept.  How retention applies depends on the item's state
(:func:`retention_mode`): a protected item follows its policy; an item stopped with
``retain forever`` keeps everything; one stopped with ``retain policy`` follows the
policy but always keeps its newest point; a deleted item's points all expire.  Plugins
add tags through the ``strongroom_retention_tags`` hook (``hooks.retention_tags``): a
point with an extra tag is kept while a plugin returns it.

:meth:`Retention.reevaluate` writes a status for each point whose verdict changed
(after a policy update or an item change); prune acts on the verdicts.

**Retention only grows under protection.**  Before a change that may shorten retention
is written (a policy update, ``items stop --retain policy``, ``items resume``, lowering
or turning off the floors), its caller compares verdicts first
(:meth:`Retention.shortened`: the points that would get an earlier expiry, or an expiry
where they had none) and asks :meth:`Retention.allow_shortening`: while immutability is
on the change is refused (:class:`~strongroom.errors.ImmutabilityViolation`, journaled
and alerted by the security service); with a guard linked it needs a
``retention.shorten`` ticket (params ``policy=NAME``, ``item=NAME`` or ``floors=off|lower``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable, Iterable

from ..errors import ImmutabilityViolation, InvalidRetention
from ..models import DELETED, STOPPED_RETAIN_FOREVER, ProtectedItem, RecoveryPoint, iso, parse_iso
from ..policy.retention import PointFacts, Verdict, evaluate
from ..policy.schedule import load_timezone
from .pointstatus import PointStatus, write_status

if TYPE_CHECKING:
    from ..policy.record import Policy
    from ..policy.retention import RetentionFloors
    from .hooks import VaultHooks
    from .points import PointBook
    from .security import SecurityService

__all__ = ["Retention", "facts_of", "retention_mode"]


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


class Retention:
    """Retention verdicts of the points of a vault's items."""

    def __init__(self, points: PointBook, find_policy: Callable[[str], Policy | None],
                 floors: Callable[[], RetentionFloors | None], hooks: VaultHooks,
                 clock: Callable[[], dt.datetime], security: SecurityService | None = None) -> None:
        self.points = points
        self.find_policy = find_policy
        self.floors = floors
        self.hooks = hooks
        self.clock = clock
        self.security = security  # None: no rule keeps retention from shrinking

    def evaluate(self, item: ProtectedItem, points: list[RecoveryPoint], now: dt.datetime,
                 policy: Policy | None = None, *, extra: PointFacts | None = None) -> list[Verdict]:
        """The verdict of each of ``points`` (plus ``extra``, a point being made), in order.

        ``policy`` defaults to the item's.
        """
        if policy is None and item.policy:
            policy = self.find_policy(item.policy)
        holds: dict[str, list[str]] = {}
        for point in points:
            tags = [str(tag) for tag in self.hooks.retention_tags(point, policy)]
            if tags:
                holds[point.point_id] = tags
        facts = [facts_of(p) for p in points] + ([extra] if extra is not None else [])
        tz = load_timezone(policy.timezone) if policy else dt.timezone.utc
        return evaluate(facts, policy.retention if policy else None, tz, now,
                        mode=retention_mode(item, policy), holds=holds)

    def reevaluate(self, items: Iterable[ProtectedItem], now: dt.datetime | None = None) -> int:
        """Write a status for every point of ``items`` whose retention changed; how many."""
        now = now or self.clock()
        written = 0
        for item in items:
            points = self.points.of(item)
            for point, verdict in zip(points, self.evaluate(item, points, now)):
                if self.changed(point, verdict):
                    self.write(item, point, verdict, now)
                    written += 1
        return written

    def shortened(self, before: ProtectedItem, after: ProtectedItem, now: dt.datetime | None = None, *,
                  policy: Policy | None = None) -> list[RecoveryPoint]:
        """The points of ``before`` that ``after`` (the item changed; with ``policy``, a new
        version of its policy) would give an earlier expiry, or an expiry where they had
        none, or expire where they are kept now."""
        now = now or self.clock()
        points = self.points.of(before)
        if not points:
            return []
        old = self.evaluate(before, points, now)
        new = self.evaluate(after, points, now, policy)
        return [point for point, was, will in zip(points, old, new) if _shorter(was, will)]

    def allow_shortening(self, params: dict[str, str], ticket: str | None, what: str,
                         points: list[RecoveryPoint] | None = None) -> None:
        """Let ``what``, a change that shortens retention (of ``points``, if it names
        them), through, or refuse it (see the module docstring)."""
        if self.security is None:
            return
        if self.security.settings.immutability.on:
            shown = ""
            if points:
                ids = ", ".join(p.short_id for p in points[:3]) + (f" and {len(points) - 3} more" if len(points) > 3 else "")
                shown = f" of {len(points)} existing point(s) ({ids})"
            self.security.refuse("retention.shorten", params, ImmutabilityViolation(
                reason=f"{what} would shorten the retention{shown}; while immutability is on retention may only grow"))
        self.security.authorize("retention.shorten", params, ticket)

    @staticmethod
    def changed(point: RecoveryPoint, verdict: Verdict) -> bool:
        """Whether ``verdict`` differs from the retention the point has now."""
        expires = iso(verdict.expires_at) if verdict.expires_at else None
        return (expires, verdict.tags) != (point.expires_at, point.tags)

    def write(self, item: ProtectedItem, point: RecoveryPoint, verdict: Verdict, now: dt.datetime) -> None:
        """Record ``verdict`` as the point's status."""
        expires = iso(verdict.expires_at) if verdict.expires_at else None
        write_status(self.points.repo, PointStatus(point.point_id, item.item_id, point.state, expires,
                                                   verdict.tags, verdict.reason), now)

    def check_retain_until(self, retain_until: dt.datetime) -> None:
        """InvalidRetention unless ``retain_until`` is ahead, and past the floor when floors are on."""
        now = self.clock()
        if retain_until <= now:
            raise InvalidRetention(reason=f"--retain-until {iso(retain_until)[:19]} is not in the future")
        floors = self.floors()
        if floors is not None and retain_until < now + dt.timedelta(days=floors.daily):
            raise InvalidRetention(reason=f"--retain-until must be at least {floors.daily} days ahead (the vault's floor)")


def _shorter(was: Verdict, will: Verdict) -> bool:
    """Whether ``will`` keeps a point less than ``was`` did."""
    if was.keep and not will.keep:
        return True
    if will.expires_at is None:
        return False
    return was.expires_at is None or will.expires_at < was.expires_at
