"""``strongroom items update``: a new version of an item, followed by the next backup."""

from __future__ import annotations

import json

import pytest

from strongroom.errors import ItemStateError, PolicyNotFound
from strongroom.policy.options import policy_from_options
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


@pytest.fixture
def site(tmp_path, vault_url, cli):
    """Item 'web' protecting src/ (keep.txt, skip.log, cache/x), one point made."""
    src = tmp_path / "src"
    (src / "cache").mkdir(parents=True)
    (src / "keep.txt").write_text("keep")
    (src / "skip.log").write_text("skip")
    (src / "cache" / "x").write_text("x")
    cli("vault", "create", vault_url)
    cli("protect", "files", "web", "--path", str(src))
    cli("backup", "web")
    return src


def names_in_latest(cli, src) -> set[str]:
    top = str(src).lstrip("/")
    rows = json.loads(cli("browse", "web", top, "--json").stdout)
    return {row["name"] for row in rows}


class TestUpdateSource:
    def test_new_excludes_take_effect_at_the_next_backup(self, site, cli, vault_url):
        """--exclude replaces the excludes; the next point leaves them out, the earlier keeps them."""
        out = cli("items", "update", "web", "--exclude", "*.log", "--exclude", "cache").stdout
        assert "next backup" in out
        assert json.loads(cli("items", "--json").stdout)[0]["source"]["excludes"] == ["*.log", "cache"]
        cli("backup", "web")
        assert names_in_latest(cli, site) == {"keep.txt"}
        first = json.loads(cli("points", "web", "--json").stdout)[0]["id"]
        top = str(site).lstrip("/")
        assert {r["name"] for r in json.loads(cli("browse", f"web@{first}", top, "--json").stdout)} == {
            "keep.txt", "skip.log", "cache"}

    def test_new_path_is_validated_by_the_workload(self, site, cli, tmp_path):
        """A --path that does not exist is the workload's InvalidSource (47); nothing changes."""
        before = json.loads(cli("items", "--json").stdout)[0]["source"]
        assert_one_line_error(cli("items", "update", "web", "--path", str(tmp_path / "gone"), expect=None), 47, "gone")
        assert json.loads(cli("items", "--json").stdout)[0]["source"] == before

    def test_new_path_replaces_the_paths(self, site, cli, tmp_path):
        """--path gives the whole new list of paths; the next point reads only them."""
        other = tmp_path / "other"
        other.mkdir()
        (other / "o.txt").write_text("o")
        cli("items", "update", "web", "--path", str(other))
        cli("backup", "web")
        rows = json.loads(cli("browse", "web", str(tmp_path).lstrip("/"), "--json").stdout)
        assert {r["name"] for r in rows} == {"other"}

    def test_option_of_another_workload_is_refused(self, site, cli):
        """--disk is a vm option: refused for a files item with exit 3 naming it."""
        assert_one_line_error(cli("items", "update", "web", "--disk", "/dev/null", expect=None), 3, "--disk")

    def test_nothing_given_is_a_usage_error(self, site, cli):
        """No option at all: exit 3, saying what to give."""
        assert_one_line_error(cli("items", "update", "web", expect=None), 3, "nothing to change")

    def test_same_values_write_no_version(self, site, cli, vault_url):
        """An update that changes nothing says so and writes no item version, no job."""
        result = json.loads(cli("items", "update", "web", "--path", str(site), "--json").stdout)
        assert result["changed"] is False
        assert not [j for j in json.loads(cli("jobs", "--json").stdout) if j["type"] == "update"]


class TestUpdateRules:
    def test_stopped_and_deleted_items_are_refused(self, site, cli):
        """A stopped item (resume first) and a deleted one are refused with exit 75."""
        cli("items", "stop", "web", "--retain", "forever")
        assert_one_line_error(cli("items", "update", "web", "--exclude", "*.log", expect=None), 75, "resume")
        cli("items", "stop", "web", "--delete-data", "--yes")
        assert_one_line_error(cli("items", "update", "web", "--exclude", "*.log", expect=None), 75, "deleted")

    def test_policy_change_is_journaled_and_recorded_as_a_job(self, site, cli, vault_url):
        """--policy follows another policy; a job 'update' and a journal entry items.update record it."""
        cli("policy", "create", "daily", "--daily", "02:00", "--keep-daily", "7")
        cli("items", "update", "web", "--policy", "daily")
        assert json.loads(cli("items", "--json").stdout)[0]["policy"] == "daily"
        jobs = [j for j in json.loads(cli("jobs", "--json").stdout) if j["type"] == "update"]
        assert len(jobs) == 1 and jobs[0]["state"] == "completed"
        assert "source" not in jobs[0]["details"]
        vault = Vault.open(vault_url)
        entries = [e for e in vault.journal.entries() if e.operation == "items.update"]
        assert [e.outcome for e in entries] == ["started", "succeeded"]

    def test_unknown_policy_is_refused(self, site, vault_url):
        """A policy that does not exist: PolicyNotFound, the item unchanged."""
        vault = Vault.open(vault_url)
        with pytest.raises(PolicyNotFound):
            vault.update_item("web", policy="nope")
        assert vault.item("web").policy is None

    def test_shortening_policy_is_refused_while_immutable(self, site, cli, vault_url):
        """Moving to a policy that keeps less, with immutability on, is refused (68) as resume's is."""
        vault = Vault.open(vault_url)
        vault.policies.create(policy_from_options("long", {"daily": "02:00", "keep_daily": 60}))
        vault.policies.create(policy_from_options("short", {"daily": "02:00", "keep_daily": 1}))
        vault.update_item("web", policy="long")
        vault.backup("web")
        cli("vault", "immutability", "enable")
        result = cli("items", "update", "web", "--policy", "short", expect=None)
        assert_one_line_error(result, 68, "shorten")
        assert Vault.open(vault_url).item("web").policy == "long"

    def test_library_refuses_a_stopped_item(self, site, vault_url):
        """Vault.update_item on a stopped item raises ItemStateError."""
        vault = Vault.open(vault_url)
        vault.stop("web", retain="forever")
        with pytest.raises(ItemStateError):
            vault.update_item("web", source={"paths": [str(site)]})
