"""Policy documents: versions, tombstones, policies in use, floors, and the two policy hooks."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from strongroom.errors import InvalidPolicy, PolicyExists, PolicyInUse, PolicyNotFound
from strongroom.markers import hookimpl
from strongroom.plugins import PluginHost
from strongroom.policy.options import policy_from_options
from strongroom.policy.retention import RetentionFloors
from strongroom.vault import Vault


def make(name: str, **options):
    return policy_from_options(name, {"daily": "02:00", **options})


@pytest.fixture
def vault(tmp_path) -> Vault:
    return Vault.create(str(tmp_path / "vault"))


class TestPolicyDocuments:
    def test_versions_are_appended_and_the_newest_wins(self, vault):
        """create then update leaves two versions under policies/<name>/; reads see the newest."""
        vault.policies.create(make("gold", keep_daily=7))
        vault.policies.update(make("gold", keep_daily=9))
        assert len(list(vault.store.list("policies/gold/"))) == 2
        assert vault.policies.get("gold").retention.daily == 9
        assert Vault.open(vault.url).policies.get("gold").retention.daily == 9

    def test_update_keeps_what_is_not_given(self, vault):
        """Options not given to an update keep their values (schedule, timezone, other rules)."""
        vault.policies.create(policy_from_options("gold", {"weekly": "sun@03:00", "timezone": "Europe/Berlin",
                                                           "keep_weekly": 12, "keep_yearly": 2}))
        base = vault.policies.get("gold")
        changed, _ = vault.policies.update(policy_from_options("gold", {"keep_yearly": 5}, base=base))
        assert changed.schedule == base.schedule and changed.retention.weekly == 12 and changed.retention.yearly == 5

    def test_delete_writes_a_tombstone_and_the_name_is_free_again(self, vault):
        """A deleted policy is gone from list/get; its history stays; the name can be reused."""
        vault.policies.create(make("gold"))
        vault.policies.delete("gold")
        assert vault.policies.list() == []
        with pytest.raises(PolicyNotFound):
            vault.policies.get("gold")
        assert len(list(vault.store.list("policies/gold/"))) == 2
        vault.policies.create(make("gold"))

    def test_duplicate_and_unknown(self, vault):
        """Creating an existing policy and updating a missing one are refused."""
        vault.policies.create(make("gold"))
        with pytest.raises(PolicyExists):
            vault.policies.create(make("gold"))
        with pytest.raises(PolicyNotFound):
            vault.policies.update(make("silver"))

    def test_a_policy_in_use_cannot_be_deleted(self, vault, tmp_path):
        """While an item that still has data follows it, delete names the item; after --delete-data it may go."""
        vault.policies.create(make("gold"))
        (tmp_path / "src").mkdir()
        vault.protect("files", "docs", {"paths": [str(tmp_path / "src")]}, policy="gold")
        with pytest.raises(PolicyInUse, match="'docs'"):
            vault.policies.delete("gold")
        vault.stop("docs", retain="forever")
        with pytest.raises(PolicyInUse):
            vault.policies.delete("gold")
        vault.stop("docs", delete_data=True)
        vault.policies.delete("gold")

    def test_protect_with_unknown_policy(self, vault, tmp_path):
        """protect --policy NAME needs the policy to exist."""
        with pytest.raises(PolicyNotFound):
            vault.protect("files", "docs", {"paths": [str(tmp_path)]}, policy="nosuch")

    def test_schedule_kinds_are_exclusive(self):
        """Giving --every and --daily together is refused."""
        with pytest.raises(InvalidPolicy, match="one of"):
            policy_from_options("x", {"every": "4h", "daily": "02:00"})
        with pytest.raises(InvalidPolicy, match="needs a schedule"):
            policy_from_options("x", {"keep_daily": 3})


class TestFloors:
    def test_floors_are_off_by_default(self, vault):
        """A new vault has no floors: a policy may keep 1 daily point."""
        assert vault.policies.floors() is None
        vault.policies.create(make("tiny", keep_daily=1))

    def test_floors_reject_short_policies(self, vault):
        """With floors on, daily below 7 (or a used rule below its floor) is refused."""
        vault.set_retention_floors(RetentionFloors())
        with pytest.raises(InvalidPolicy, match="below the vault's floor of 7"):
            vault.policies.create(make("tiny", keep_daily=3))
        with pytest.raises(InvalidPolicy, match="weekly points 2"):
            vault.policies.create(make("weeks", keep_daily=7, keep_weekly=2))
        vault.policies.create(make("fine", keep_daily=7, keep_monthly=3))

    def test_floors_cannot_be_turned_on_over_a_short_policy(self, vault):
        """Turning floors on is refused while a policy keeps less; the setting persists once on."""
        vault.policies.create(make("tiny", keep_daily=1))
        with pytest.raises(InvalidPolicy, match="'tiny'"):
            vault.set_retention_floors(RetentionFloors())
        vault.policies.update(make("tiny", keep_daily=10))
        vault.set_retention_floors(RetentionFloors(daily=10))
        assert Vault.open(vault.url).policies.floors() == RetentionFloors(daily=10)

    def test_floors_apply_to_retain_until(self, vault, tmp_path):
        """With floors on, an on-demand --retain-until closer than the daily floor is refused."""
        from strongroom.errors import InvalidRetention

        (tmp_path / "src").mkdir()
        vault.protect("files", "docs", {"paths": [str(tmp_path / "src")]})
        vault.set_retention_floors(RetentionFloors())
        soon = vault.clock() + dt.timedelta(days=2)
        with pytest.raises(InvalidRetention, match="7 days"):
            vault.backup("docs", retain_until=soon)
        with pytest.raises(InvalidRetention, match="not in the future"):
            vault.backup("docs", retain_until=vault.clock() - dt.timedelta(days=1))


class TestPolicyHooks:
    def test_strongroom_policy_validate_can_reject(self, tmp_path):
        """A plugin raising in strongroom_policy_validate stops create and update; nothing is written."""
        class SiteRules:
            @hookimpl
            def strongroom_policy_validate(self, vault, policy):
                if policy.retention.yearly < 1:
                    raise ValueError("site rule: keep at least one yearly point")

        vault = Vault.create(str(tmp_path / "v"), plugins=PluginHost.create(extra_plugins=[("site", SiteRules())]))
        with pytest.raises(InvalidPolicy, match="site rule"):
            vault.policies.create(make("gold", keep_daily=7))
        assert list(vault.store.list("policies/")) == []
        vault.policies.create(make("gold", keep_daily=7, keep_yearly=1))
        with pytest.raises(InvalidPolicy, match="rejected by a plugin"):
            vault.policies.update(make("gold", keep_yearly=0))

    def test_strongroom_retention_tags_holds_a_point(self, tmp_path):
        """A point given an extra tag by strongroom_retention_tags is kept past its retention."""
        held: set[str] = set()

        class LegalHold:
            @hookimpl
            def strongroom_retention_tags(self, vault, point, policy):
                return ["legal-hold"] if point.point_id in held else None

        vault = Vault.create(str(tmp_path / "v"), plugins=PluginHost.create(extra_plugins=[("hold", LegalHold())]))
        start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
        clock = [start]
        vault.clock = lambda: clock[0]
        vault.policies.create(make("short", keep_daily=1))
        (tmp_path / "src").mkdir()
        vault.protect("files", "docs", {"paths": [str(tmp_path / "src")]}, policy="short")
        points = []
        for day in range(3):
            (tmp_path / "src" / f"{day}.bin").write_bytes(os.urandom(1000))
            points.append(vault.backup("docs"))
            clock[0] += dt.timedelta(days=1)
        held.add(points[0].point_id)
        vault.prune(grace=0)
        left = {p.point_id: p for p in vault.points("docs")}
        assert set(left) == {points[0].point_id, points[2].point_id}
        assert "legal-hold" in left[points[0].point_id].tags
