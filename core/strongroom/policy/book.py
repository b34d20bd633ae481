"""Policy documents in the vault: ``policies/<name>/<time-id>``, versioned.

Creating or updating a policy appends a version; the newest version wins.  Deleting one
appends a tombstone version (``{"name": ..., "deleted": true}``), so the history stays and
the name can be used again.  A policy used by an item that still has data (protected or
stopped) cannot be deleted.

Every new version is validated before it is written: the records' own validators
(times, weekdays, timezone, keep counts), the vault's retention floors when they are on,
then the ``strongroom_policy_validate`` hook, whose implementations raise to reject.
Updating a policy re-evaluates the retention of the existing points of every item that
uses it (:func:`strongroom.lifecycle.reevaluate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidPolicy, PolicyExists, PolicyInUse, PolicyNotFound, StrongroomError
from ..models import DELETED, Policy, ProtectedItem, iso
from .retention import RetentionFloors, RetentionRules
from .schedule import Schedule, parse_weekday

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["POLICY_PREFIX", "PolicyBook", "policy_from_options"]

POLICY_PREFIX = "policies/"


def policy_from_options(name: str, options: dict[str, Any], base: Policy | None = None) -> Policy:
    """A policy from CLI-style options (None: not given; keep ``base``'s value).

    Options: ``every`` ("4h"), ``daily`` ("02:00,14:00"), ``weekly`` ("sun@03:00"),
    ``timezone``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``, ``keep_yearly``,
    ``weekly_on`` ("sun"), ``monthly_on`` ("first"/"last"), ``description``.
    """
    given = {key: value for key, value in options.items() if value is not None}
    kinds = [kind for kind in ("every", "daily", "weekly") if kind in given]
    if len(kinds) > 1:
        raise InvalidPolicy(reason=f"give one of --every, --daily or --weekly, not {' and '.join('--' + k for k in kinds)}")
    timezone = given.get("timezone", base.timezone if base else "UTC")
    if kinds:
        schedule = getattr(Schedule, kinds[0])(given[kinds[0]], timezone)
    elif base is not None:
        schedule = attrs.evolve(base.schedule, timezone=timezone)
    else:
        raise InvalidPolicy(reason="a policy needs a schedule: --every, --daily or --weekly")
    rules = base.retention if base else RetentionRules()
    changes: dict[str, Any] = {tag: given[f"keep_{tag}"] for tag in ("daily", "weekly", "monthly", "yearly")
                               if f"keep_{tag}" in given}
    if "weekly_on" in given:
        changes["weekly_on"] = parse_weekday(given["weekly_on"])
    if "monthly_on" in given:
        changes["monthly_on"] = str(given["monthly_on"]).lower()
    rules = attrs.evolve(rules, **changes)
    try:
        policy = Policy(name=name, schedule=schedule, retention=rules,
                        description=given.get("description", base.description if base else ""),
                        created=base.created if base else "")
    except ValueError as exc:  # the name
        raise InvalidPolicy(reason=str(exc)) from None
    return policy


class PolicyBook:
    """The policies of one vault (``vault.policies``)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.repo = vault.repo

    def policy_of(self, item: ProtectedItem) -> Policy | None:
        """The policy ``item`` follows, or None (no policy, or a policy since deleted)."""
        return self.find(item.policy) if item.policy else None

    # --- reading -----------------------------------------------------------------------

    def _newest(self) -> dict[str, str]:
        newest: dict[str, str] = {}
        for name in self.repo.store.list(POLICY_PREFIX):
            parts = name.split("/")
            if len(parts) == 3 and name > newest.get(parts[1], ""):
                newest[parts[1]] = name
        return newest

    def list(self) -> list[Policy]:
        """Every policy (not deleted), by name."""
        docs = self.repo.get_documents(sorted(self._newest().values()))
        return sorted((Policy.from_dict(doc, name) for name, doc in docs if not doc.get("deleted")),
                      key=lambda p: p.name)

    def find(self, name: str) -> Policy | None:
        version = self._newest().get(name)
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
        return [item for item in self.vault.items() if item.policy == name and item.state != DELETED]

    def floors(self) -> RetentionFloors | None:
        doc = self.vault.settings.retention_floors
        return RetentionFloors.from_dict(doc) if doc is not None else None

    # --- writing -----------------------------------------------------------------------

    def validate(self, policy: Policy) -> None:
        floors = self.floors()
        if floors is not None:
            floors.check(policy.retention, policy.name)
        try:
            self.vault.plugins.pm.hook.strongroom_policy_validate(vault=self.vault, policy=policy)
        except StrongroomError:
            raise
        except Exception as exc:
            raise InvalidPolicy(reason=f"policy {policy.name!r} rejected by a plugin: {exc}") from None

    def _write(self, policy: Policy) -> Policy:
        version = self.vault.version_name(f"{POLICY_PREFIX}{policy.name}/")
        policy = attrs.evolve(policy, created=policy.created or iso(self.vault.clock()), version=version)
        self.repo.put_document(version, policy.to_dict())
        return policy

    def create(self, policy: Policy) -> Policy:
        if self.find(policy.name) is not None:
            raise PolicyExists(policy=policy.name)
        self.validate(policy)
        return self._write(policy)

    def update(self, policy: Policy) -> tuple[Policy, int]:
        """Write a new version of an existing policy; returns it and the number of points
        whose retention changed."""
        from ..lifecycle import reevaluate

        self.get(policy.name)
        self.validate(policy)
        policy = self._write(policy)
        return policy, reevaluate(self.vault, self.users(policy.name))

    def delete(self, name: str) -> None:
        self.get(name)
        users = self.users(name)
        if users:
            names = ", ".join(f"'{item.name}'" for item in users)
            raise PolicyInUse(policy=name, items=f"item{'s' if len(users) > 1 else ''} {names}")
        self.repo.put_document(self.vault.version_name(f"{POLICY_PREFIX}{name}/"), {"name": name, "deleted": True})

    def set_floors(self, floors: RetentionFloors | None) -> None:
        """Turn the vault's retention floors on (with these values) or off (None).

        Refused while a policy keeps less than the new floors.
        """
        if floors is not None:
            for policy in self.list():
                floors.check(policy.retention, policy.name)
        self.vault.update_settings(retention_floors=floors.to_dict() if floors else None)
