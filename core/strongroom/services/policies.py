"""Policy documents in the vault: ``policies/<name>/<time-id>``, versioned.

Creating or updating a policy appends a version; the newest version wins.  Deleting one
appends a tombstone version (``{"name": ..., "deleted": true}``), so the history stays and
the name can be used again.  Foreign objects under ``policies/`` are never taken for
versions (:mod:`.versions`).  A policy used by an item that still has data (protected or
stopped) cannot be deleted.

Every new version is validated before it is written: the records' own validators
(times, weekdays, timezone, keep counts), the vault's retention floors when they are on,
then the ``strongroom_policy_validate`` hook (``hooks.validate_policy``), whose
implementations raise to reject.  Updating a policy re-evaluates the retention of the
existing points of every item that uses it (:meth:`.retention.Retention.reevaluate`).

An update that would shorten the retention of existing points, and lowering or turning
off the floors, is checked before anything is written
(:meth:`.retention.Retention.allow_shortening`): refused while immutability is on, and
with a guard linked it needs a ``retention.shorten`` ticket (``policy=NAME``;
``floors=off`` or ``floors=lower``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import InvalidPolicy, PolicyExists, PolicyInUse, PolicyNotFound, StrongroomError
from ..models import DELETED, ProtectedItem, iso
from ..policy.record import Policy
from .versions import newest_versions, version_name

if TYPE_CHECKING:
    from ..policy.retention import RetentionFloors
    from ..repository.repository import Repository
    from .hooks import VaultHooks
    from .items import ItemBook
    from .retention import Retention
    from .settings import SettingsBook

__all__ = ["POLICY_PREFIX", "PolicyBook"]

POLICY_PREFIX = "policies/"


class PolicyBook:
    """The policies of one vault (``vault.policies``)."""

    def __init__(self, repo: Repository, items: ItemBook, settings: SettingsBook, retention: Retention,
                 hooks: VaultHooks, clock: Callable[[], dt.datetime],
                 after_change: Callable[[], None] = lambda: None) -> None:
        self.repo = repo
        self.items = items
        self.settings = settings
        self.retention = retention
        self.hooks = hooks
        self.clock = clock
        self.after_change = after_change  # told after every new version (the vault head)

    def policy_of(self, item: ProtectedItem) -> Policy | None:
        """The policy ``item`` follows, or None (no policy, or a policy since deleted)."""
        return self.find(item.policy) if item.policy else None

    # --- reading -----------------------------------------------------------------------

    def list(self) -> list[Policy]:
        """Every policy (not deleted), by name."""
        docs = self.repo.get_documents(sorted(newest_versions(self.repo.store, POLICY_PREFIX, self.repo.foreign).values()))
        return sorted((Policy.from_dict(doc, name) for name, doc in docs if not doc.get("deleted")),
                      key=lambda p: p.name)

    def find(self, name: str) -> Policy | None:
        version = newest_versions(self.repo.store, POLICY_PREFIX, self.repo.foreign).get(name)
        if version is None:
            return None
        doc = self.repo.get_document(version)
        return None if doc.get("deleted") else Policy.from_dict(doc, version)

    def get(self, name: str) -> Policy:
        policy = self.find(name)
        if policy is None:
            raise PolicyNotFound(policy=name)
        return policy

    def users(self, name: str) -> list[ProtectedItem]:
        """Items that follow policy ``name`` and still have data (not deleted)."""
        return [item for item in self.items.list() if item.policy == name and item.state != DELETED]

    def floors(self) -> RetentionFloors | None:
        return self.settings.floors

    # --- writing -----------------------------------------------------------------------

    def validate(self, policy: Policy) -> None:
        floors = self.floors()
        if floors is not None:
            floors.check(policy.retention, policy.name)
        try:
            self.hooks.validate_policy(policy)
        except StrongroomError:
            raise
        except Exception as exc:
            raise InvalidPolicy(reason=f"policy {policy.name!r} rejected by a plugin: {exc}") from None

    def _write(self, policy: Policy) -> Policy:
        version = version_name(self.repo.store, f"{POLICY_PREFIX}{policy.name}/", self.clock(), self.repo.foreign)
        policy = attrs.evolve(policy, created=policy.created or iso(self.clock()), version=version)
        self.repo.put_document(version, policy.to_dict())
        return policy

    def create(self, policy: Policy) -> Policy:
        if self.find(policy.name) is not None:
            raise PolicyExists(policy=policy.name)
        self.validate(policy)
        policy = self._write(policy)
        self.after_change()
        return policy

    def update(self, policy: Policy, *, ticket: str | None = None) -> tuple[Policy, int]:
        """Write a new version of an existing policy; returns it and the number of points
        whose retention changed.  ``ticket``: the guard's, when it shortens retention."""
        self.get(policy.name)
        self.validate(policy)
        now = self.clock()
        shortened = [point for item in self.users(policy.name)
                     for point in self.retention.shortened(item, item, now, policy=policy)]
        if shortened:
            self.retention.allow_shortening({"policy": policy.name}, ticket, f"updating policy '{policy.name}'",
                                            shortened)
        policy = self._write(policy)
        changed = self.retention.reevaluate(self.users(policy.name))
        self.after_change()
        return policy, changed

    def delete(self, name: str, *, dry_run: bool = False) -> None:
        """Delete policy ``name`` (PolicyNotFound; PolicyInUse while an item uses it);
        ``dry_run``: the same checks, nothing written."""
        self.get(name)
        users = self.users(name)
        if users:
            names = ", ".join(f"'{item.name}'" for item in users)
            raise PolicyInUse(policy=name, items=f"item{'s' if len(users) > 1 else ''} {names}")
        if dry_run:
            return
        version = version_name(self.repo.store, f"{POLICY_PREFIX}{name}/", self.clock(), self.repo.foreign)
        self.repo.put_document(version, {"name": name, "deleted": True})
        self.after_change()

    def set_floors(self, floors: RetentionFloors | None, *, ticket: str | None = None) -> None:
        """Turn the vault's retention floors on (with these values) or off (None).

        Refused while a policy keeps less than the new floors; lowering them or turning
        them off is a shortening (see the module docstring).
        """
        current = self.floors()
        if current is not None and (floors is None or any(
                getattr(floors, tag) < getattr(current, tag) for tag in ("daily", "weekly", "monthly", "yearly"))):
            off = floors is None
            self.retention.allow_shortening({"floors": "off" if off else "lower"}, ticket,
                                            "turning the retention floors off" if off else "lowering the retention floors")
        if floors is not None:
            for policy in self.list():
                floors.check(policy.retention, policy.name)
        self.settings.update(retention_floors=floors.to_dict() if floors else None)
