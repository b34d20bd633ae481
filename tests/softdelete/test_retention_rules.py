"""Immutability's client-side rules and the guard: no early delete, retention only grows.

Each refusal changes nothing (the points, their retention, the policy, the item, the
floors stay as they were), is journaled as ``refused`` and raises a security alert.
"""

from __future__ import annotations

import attrs
import pytest

from softkit import immutable, soft_delete
from strongroom.errors import ImmutabilityViolation, TicketInvalid, TicketRequired
from strongroom.policy.options import policy_from_options
from strongroom.policy.retention import RetentionFloors
from strongroom.policy.security import SoftDelete
from strongroom.vault import Vault


def snapshot(vault: Vault) -> tuple:
    """What a refused change must leave as it was."""
    fresh = Vault.open(vault.url)
    fresh.clock = vault.clock
    points = [(p.point_id, p.expires_at, p.state) for p in fresh.points("docs")]
    item = fresh.item("docs")
    return (points, [d.point_id for d in fresh.deleted_points()], item.state, item.policy,
            fresh.policies.get("short").retention, fresh.settings.retention_floors)


def refusals(vault: Vault, operation: str) -> list:
    return [e for e in Vault.open(vault.url).journal.entries() if e.outcome == "refused" and e.operation == operation]


def security_alerts(vault: Vault) -> list:
    return [a for a in Vault.open(vault.url).alerts.list() if a.category == "security" and a.kind == "operation.refused"]


def refused(vault: Vault, error: type, operation: str, call) -> Exception:
    before = snapshot(vault)
    with pytest.raises(error) as caught:
        call()
    assert snapshot(vault) == before
    assert refusals(vault, operation) and security_alerts(vault)
    return caught.value


class TestImmutability:
    @pytest.fixture
    def locked(self, world):
        immutable(world.vault)
        return world

    def test_early_delete_is_refused(self, locked):
        """points delete of a point that has not expired: exit 68, nothing deleted."""
        vault, newest = locked.vault, locked.ids[-1]
        error = refused(vault, ImmutabilityViolation, "points.delete", lambda: vault.delete_point("docs", newest))
        assert error.exit_code == 68 and newest[:8] in str(error)

    def test_an_expired_point_may_be_deleted(self, locked):
        """Once its retention has ended, a point may be deleted (soft-deleted) as usual."""
        vault, first = locked.vault, locked.ids[0]
        locked.clock.advance(days=2)
        assert vault.delete_point("docs", first).soft

    def test_delete_data_is_refused_while_a_point_has_not_expired(self, locked):
        vault = locked.vault
        refused(vault, ImmutabilityViolation, "items.delete-data", lambda: vault.stop("docs", delete_data=True))

    def test_policy_update_that_shortens_retention_is_refused(self, locked):
        """keep-daily 2 -> 1 would expire points earlier: refused; 2 -> 5 is taken."""
        vault = locked.vault
        shorter = policy_from_options("short", {"keep_daily": 1}, base=vault.policies.get("short"))
        error = refused(vault, ImmutabilityViolation, "retention.shorten", lambda: vault.policies.update(shorter))
        assert "updating policy 'short'" in str(error)
        longer = policy_from_options("short", {"keep_daily": 5}, base=vault.policies.get("short"))
        _, changed = vault.policies.update(longer)
        assert changed > 0

    def test_resume_from_retain_forever_is_refused(self, locked):
        """Points kept forever would get an expiry again: refused."""
        vault = locked.vault
        vault.stop("docs", retain="forever")
        refused(vault, ImmutabilityViolation, "retention.shorten", lambda: vault.resume("docs"))
        refused(vault, ImmutabilityViolation, "retention.shorten", lambda: vault.stop("docs", retain="policy"))

    def test_resume_with_a_shorter_policy_is_refused(self, locked):
        """Moving to a longer policy is taken; resuming with a shorter one is refused."""
        vault = locked.vault
        vault.stop("docs", retain="policy")  # the newest point kept forever: longer
        assert vault.resume("docs", policy="long").policy == "long"
        vault.stop("docs", retain="policy")
        error = refused(vault, ImmutabilityViolation, "retention.shorten", lambda: vault.resume("docs", policy="short"))
        assert "resuming item 'docs' with policy 'short'" in str(error)

    def test_floors_off_or_lower_are_refused(self, locked):
        vault = locked.vault
        vault.set_retention_floors(RetentionFloors(daily=2, weekly=0, monthly=0, yearly=0))
        refused(vault, ImmutabilityViolation, "retention.shorten", lambda: vault.set_retention_floors(None))
        refused(vault, ImmutabilityViolation, "retention.shorten",
                lambda: vault.set_retention_floors(RetentionFloors(daily=1, weekly=0, monthly=0, yearly=0)))
        vault.set_retention_floors(RetentionFloors(daily=2, weekly=1, monthly=0, yearly=0))  # higher: taken

    def test_stop_retain_forever_and_longer_retention_are_taken(self, locked):
        """Changes that only lengthen retention go through."""
        vault = locked.vault
        assert vault.stop("docs", retain="forever").state == "stopped-retain-forever"


class TestGuard:
    """With a guard linked (and no immutability), the same changes need the guard's ticket."""

    def test_points_delete_needs_a_ticket_for_that_point(self, world, guard):
        vault, first, second = world.vault, world.ids[0], world.ids[1]
        error = refused(vault, TicketRequired, "points.delete", lambda: vault.delete_point("docs", first))
        assert error.exit_code == 66 and f"--param point={first}" in str(error)
        other = guard.ticket("points.delete", item="docs", point=second)
        refused(vault, TicketInvalid, "points.delete", lambda: vault.delete_point("docs", first, ticket=other))
        ticket = guard.ticket("points.delete", item="docs", point=first)
        assert vault.delete_point("docs", first, ticket=ticket).soft
        vault.undelete_point("docs", first)  # undeleting needs no ticket
        refused(vault, TicketInvalid, "points.delete", lambda: vault.delete_point("docs", first, ticket=ticket))

    def test_delete_data_needs_a_ticket(self, world, guard):
        vault = world.vault
        refused(vault, TicketRequired, "items.delete-data", lambda: vault.stop("docs", delete_data=True))
        ticket = guard.ticket("items.delete-data", item="docs")
        assert vault.stop("docs", delete_data=True, ticket=ticket).state == "deleted"

    def test_shortening_a_policy_needs_a_retention_ticket(self, world, guard):
        """Without immutability, a guard lets a shortening through with a retention.shorten
        ticket for that policy (one for an item does not do)."""
        vault = world.vault
        shorter = policy_from_options("short", {"keep_daily": 1}, base=vault.policies.get("short"))
        refused(vault, TicketRequired, "retention.shorten", lambda: vault.policies.update(shorter))
        wrong = guard.ticket("retention.shorten", item="docs")
        refused(vault, TicketInvalid, "retention.shorten", lambda: vault.policies.update(shorter, ticket=wrong))
        vault.policies.update(shorter, ticket=guard.ticket("retention.shorten", policy="short"))
        assert vault.policies.get("short").retention.daily == 1

    def test_resume_that_shortens_needs_an_item_ticket(self, world, guard):
        vault = world.vault
        vault.stop("docs", retain="forever")
        refused(vault, TicketRequired, "retention.shorten", lambda: vault.resume("docs"))
        assert vault.resume("docs", ticket=guard.ticket("retention.shorten", item="docs")).state == "protected"

    def test_floors_off_needs_a_ticket(self, world, guard):
        vault = world.vault
        vault.set_retention_floors(RetentionFloors(daily=2, weekly=0, monthly=0, yearly=0))
        refused(vault, TicketRequired, "retention.shorten", lambda: vault.set_retention_floors(None))
        vault.set_retention_floors(None, ticket=guard.ticket("retention.shorten", floors="off"))
        assert vault.policies.floors() is None

    def test_a_lengthening_needs_no_ticket(self, world, guard):
        vault = world.vault
        longer = policy_from_options("short", {"keep_daily": 9}, base=vault.policies.get("short"))
        vault.policies.update(longer)
        assert refusals(vault, "retention.shorten") == []

    def test_soft_delete_disable_and_shorten_need_tickets(self, world, guard):
        """Turning soft delete off or shortening its days: a ticket for exactly that."""
        vault = world.vault
        soft_delete(vault, days=30)  # longer: no ticket
        with pytest.raises(TicketRequired):
            soft_delete(vault, days=20)
        with pytest.raises(TicketRequired):
            soft_delete(vault, state="disabled")
        assert vault.security.settings.soft_delete.days == 30
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(days=20)),
                              ticket=guard.ticket("soft-delete.shorten", days="20"))
        assert vault.security.settings.soft_delete.days == 20
