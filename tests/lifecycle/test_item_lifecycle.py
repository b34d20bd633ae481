"""Item lifecycle: protect with a policy, stop (retain forever / per policy / delete data), resume."""

from __future__ import annotations

import datetime as dt
import os

import attrs
import pytest

from strongroom.errors import ItemExists, ItemStateError, PolicyNotFound
from strongroom.policy.options import policy_from_options
from strongroom.policy.security import SoftDelete
from strongroom.vault import Vault
from vaultkit import Clock

UTC = dt.timezone.utc


@pytest.fixture
def world(tmp_path):
    """A vault on a simulated clock, policy 'short' (2 daily points), item 'docs' with 4 daily points."""
    clock = Clock(dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=1))
    vault = Vault.create(str(tmp_path / "vault"))
    vault.clock = clock
    vault.policies.create(policy_from_options("short", {"daily": "02:00", "keep_daily": 2}))
    vault.policies.create(policy_from_options("long", {"daily": "02:00", "keep_daily": 60}))
    src = tmp_path / "src"
    src.mkdir()
    vault.protect("files", "docs", {"paths": [str(src)]}, policy="short")
    for day in range(4):
        (src / f"day{day}.bin").write_bytes(os.urandom(50_000))
        vault.backup("docs")
        clock.advance(days=1)
    return vault, clock, src


def kept_days(vault: Vault, item: str = "docs") -> int:
    return len(vault.points(item))


class TestStop:
    def test_retain_forever_keeps_every_point(self, world):
        """Stopped with --retain forever, nothing expires however long prune waits."""
        vault, clock, _ = world
        vault.stop("docs", retain="forever")
        clock.advance(days=3650)
        assert vault.prune(grace=0).points_expired == []
        assert kept_days(vault) == 4
        assert all(p.expires_at is None for p in vault.points("docs"))

    def test_retain_policy_expires_by_policy_and_keeps_the_latest_forever(self, world):
        """Stopped with --retain policy, points expire as the policy says; the latest stays for good."""
        vault, clock, _ = world
        latest = vault.points("docs")[-1].point_id
        vault.stop("docs", retain="policy")
        clock.advance(days=3650)
        vault.prune(grace=0)
        assert [p.point_id for p in vault.points("docs")] == [latest]

    def test_delete_data_expires_every_point_and_frees_its_data(self, world, tmp_path):
        """--delete-data with soft delete off: the next prune removes every point (the newest
        too) and their packs (with soft delete on: tests/softdelete)."""
        vault, _, _ = world
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
        vault.stop("docs", delete_data=True)
        report = vault.prune(grace=0)
        assert len(report.points_expired) == 4
        assert vault.points("docs") == []
        assert vault.repo.pack_ids_on_storage() == set()
        assert vault.verify(read_data=True).ok

    def test_deleted_item_cannot_resume_but_its_name_can_be_reused(self, world, tmp_path):
        """A deleted item refuses resume; protecting the same name again makes a new item."""
        vault, _, src = world
        vault.stop("docs", delete_data=True)
        with pytest.raises(ItemStateError, match="deleted"):
            vault.resume("docs")
        again = vault.protect("files", "docs", {"paths": [str(src)]})
        assert vault.item("docs").item_id == again.item_id
        with pytest.raises(ItemExists):
            vault.protect("files", "docs", {"paths": [str(src)]})

    def test_stopped_items_take_no_backups(self, world):
        """An on-demand backup of a stopped item is refused with its state named."""
        vault, _, _ = world
        vault.stop("docs", retain="forever")
        with pytest.raises(ItemStateError, match="stopped-retain-forever"):
            vault.backup("docs")

    def test_retain_policy_needs_a_policy(self, world, tmp_path):
        """--retain policy on an item without a policy is refused."""
        vault, _, src = world
        vault.protect("files", "plain", {"paths": [str(src)]})
        with pytest.raises(ItemStateError, match="no policy"):
            vault.stop("plain", retain="policy")

    def test_each_change_is_a_job_and_a_new_item_version(self, world):
        """stop and resume append item versions and record 'stop'/'resume' jobs."""
        vault, _, _ = world
        item_id = vault.item("docs").item_id
        before = len(list(vault.store.list(f"items/{item_id}/")))
        vault.stop("docs", retain="forever")
        vault.resume("docs")
        assert len(list(vault.store.list(f"items/{item_id}/"))) == before + 2
        assert [j.type for j in vault.jobs.list(item="docs")][-2:] == ["stop", "resume"]


class TestResume:
    def test_resume_applies_retention_again(self, world):
        """Points kept while stopped-retain-forever go at the next prune after resume."""
        vault, clock, _ = world
        vault.stop("docs", retain="forever")
        clock.advance(days=30)
        vault.prune(grace=0)
        assert kept_days(vault) == 4
        vault.resume("docs")
        vault.prune(grace=0)
        assert kept_days(vault) == 1  # only the newest: every daily tag ran out

    def test_resume_with_another_policy(self, world):
        """resume --policy switches the item to that policy."""
        vault, _, _ = world
        vault.stop("docs", retain="policy")
        resumed = vault.resume("docs", policy="long")
        assert resumed.policy == "long" and resumed.state == "protected"
        assert vault.item("docs").policy == "long"

    def test_resume_refuses_unknown_policy_and_protected_items(self, world):
        """resume needs a stopped item and an existing policy."""
        vault, _, _ = world
        with pytest.raises(ItemStateError, match="not stopped"):
            vault.resume("docs")
        vault.stop("docs", retain="forever")
        with pytest.raises(PolicyNotFound):
            vault.resume("docs", policy="nosuch")

    def test_resumed_item_with_points_waits_for_its_next_slot(self, world):
        """After resume, an item with points is not due at once: its next slot comes first."""
        vault, clock, _ = world
        vault.stop("docs", retain="forever")
        clock.advance(days=5)
        vault.resume("docs")
        row = next(r for r in vault.schedule() if r.name == "docs")
        assert not row.due and row.next_run > clock.now


class TestPolicyChanges:
    def test_longer_retention_keeps_points_longer(self, world):
        """After 'policy update' to 60 daily points, prune keeps all four points."""
        vault, _, _ = world
        changed, statuses = vault.policies.update(
            policy_from_options("short", {"keep_daily": 60}, base=vault.policies.get("short")))
        assert statuses == 4  # every point's daily tag now lasts 60 days
        assert vault.prune(grace=0).points_expired == []
        assert kept_days(vault) == 4

    def test_shorter_retention_prunes_them(self, world):
        """Moving to a shorter rule makes the next prune expire what it no longer keeps."""
        vault, _, _ = world
        vault.policies.update(policy_from_options("short", {"keep_daily": 60}, base=vault.policies.get("short")))
        vault.policies.update(policy_from_options("short", {"keep_daily": 1}, base=vault.policies.get("short")))
        report = vault.prune(grace=0)
        assert len(report.points_expired) == 3 and kept_days(vault) == 1

    def test_status_documents_sit_beside_an_unchanged_header(self, world):
        """Re-evaluation writes point-status/<item>/<point>/<time> and never rewrites the header."""
        vault, _, _ = world
        point = vault.points("docs")[0]
        header = vault.store.get(point.object_name)
        vault.policies.update(policy_from_options("short", {"keep_daily": 60}, base=vault.policies.get("short")))
        assert vault.store.get(point.object_name) == header
        names = list(vault.store.list(f"point-status/{point.item_id}/{point.point_id}/"))
        assert len(names) == 1
        assert vault.points("docs")[0].expires_at != point.expires_at

    def test_newest_valid_status_wins(self, world):
        """A damaged newest status is skipped; the one before it applies."""
        vault, _, _ = world
        point = vault.points("docs")[0]
        base = vault.policies.get("short")
        vault.policies.update(policy_from_options("short", {"keep_daily": 60}, base=base))
        good = vault.points("docs")[0].expires_at
        vault.policies.update(policy_from_options("short", {"keep_daily": 90}, base=vault.policies.get("short")))
        newest = max(vault.store.list(f"point-status/{point.item_id}/{point.point_id}/"))
        vault.store.put(newest, b"garbage")
        assert vault.points("docs")[0].expires_at == good
