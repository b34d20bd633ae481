"""Scheduled restore drills: a policy's --drill-every, run by run-due once per interval,
after the backups; a failed drill is a failed drill job and a drill.failed alert."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

import pytest

from strongroom.errors import InvalidPolicy
from strongroom.policy.drills import DrillSchedule, drill_due
from strongroom.policy.options import policy_from_options
from strongroom.policy.record import Policy
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.retention import RetentionRules
from strongroom.policy.schedule import Schedule
from strongroom.repository.names import kind_of
from strongroom.repository.pack import pack_name
from strongroom.services.claims import Claims, drill_subject
from strongroom.vault import Vault
from vaultkit import SCHEDULE_START, Clock, assert_one_line_error as one_line_error, scheduled_vault

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)


def damage_chunk(vault: Vault, path: str) -> None:
    """Flip bytes in the middle of the first chunk of ``path`` in its pack file."""
    fresh = vault.reopen()
    fresh.index.load()
    entry = fresh.repo.index.lookup(fresh.point_view("docs").lookup(path.lstrip("/")).chunks[0])
    pack = Path(vault.url) / pack_name(entry.pack_id)
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    middle = entry.offset + entry.length // 2
    data[middle:middle + 4] = bytes(b ^ 0xA5 for b in data[middle:middle + 4])
    pack.write_bytes(bytes(data))


def kinds(report) -> list[tuple[str, str]]:
    return [(kind, outcome) for kind, _, outcome, _ in report.results]


class TestDrillPolicyRecord:
    def test_an_old_policy_document_reads_as_no_drills(self):
        """A policy document written before drills were scheduled has no drill part and drills nothing."""
        old = {"name": "gold", "schedule": Schedule.every("4h").to_dict(), "retention": RetentionRules().to_dict(),
               "description": "", "created": ""}
        policy = Policy.from_dict(old)
        assert policy.drill is None
        assert policy.to_dict() == old  # written back unchanged: no "drill" key

    def test_the_drill_part_round_trips(self):
        """--drill-every 7d and --drill-from-secondary are kept in the document and read back."""
        policy = policy_from_options("gold", {"every": "4h", "drill_every": "7d", "drill_from_secondary": True})
        assert policy.drill == DrillSchedule(every=7 * 86400, from_secondary=True)
        assert Policy.from_dict(policy.to_dict()).drill == policy.drill

    def test_an_update_keeps_changes_or_turns_off_the_drills(self):
        """An update without drill options keeps them; --drill-every off removes them."""
        base = policy_from_options("gold", {"every": "4h", "drill_every": "1d"})
        kept = policy_from_options("gold", {"keep_daily": 3}, base=base)
        assert kept.drill == DrillSchedule(every=86400)
        assert policy_from_options("gold", {"drill_every": "off"}, base=base).drill is None

    @pytest.mark.parametrize("options, words", [
        ({"drill_every": "30m"}, "every 1h at most"),
        ({"drill_every": "soon"}, "invalid drill interval"),
        ({"drill_from_secondary": True}, "needs --drill-every"),
    ])
    def test_bad_drill_options_are_refused(self, options, words):
        """Too short an interval, an unreadable one, or a source without an interval is an InvalidPolicy."""
        with pytest.raises(InvalidPolicy, match=words):
            policy_from_options("gold", {"every": "4h", **options})

    def test_missed_drills_coalesce_and_keep_the_cadence(self):
        """Three intervals missed: one drill is due, for the latest interval since the last drill."""
        last = dt.datetime(2031, 3, 1, 0, 30, tzinfo=UTC)
        assert not drill_due(3600, last + 59 * dt.timedelta(minutes=1), last).due
        due = drill_due(3600, last + 3 * HOUR + dt.timedelta(minutes=20), last)
        assert due.due and due.slot == last + 3 * HOUR and due.next_run == last + 4 * HOUR


@pytest.fixture
def drilled(tmp_path):
    """A vault on a simulated clock: item 'docs' backed up every 4 hours and drilled every hour."""
    clock = Clock(SCHEDULE_START)
    vault = scheduled_vault(str(tmp_path / "vault"),
                            policy_from_options("hourly-drill", {"every": "4h", "drill_every": "1h"}), clock=clock)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(15).randbytes(3 << 20))
    (src / "note.txt").write_text("drill me")
    vault.protect("files", "docs", {"paths": [str(src)]}, policy="hourly-drill")
    return vault, clock


class TestScheduledDrills:
    def test_run_due_drills_once_then_not_before_the_interval_then_again(self, drilled):
        """The first run-due backs up then drills; nothing is due 59 minutes later; an hour after, a drill only."""
        vault, clock = drilled
        first = vault.run_due()
        assert kinds(first) == [("backup", "completed"), ("drill", "completed")]
        point = vault.points("docs")[-1].point_id
        assert first.results[1][3].startswith(f"point {point[:8]}")
        clock.now += dt.timedelta(minutes=59)
        assert vault.run_due().results == ()
        clock.now += dt.timedelta(minutes=1)
        assert kinds(vault.run_due()) == [("drill", "completed")]
        assert vault.run_due().results == ()
        jobs = vault.jobs.list(type_="drill")
        assert [(j.state, j.details["trigger"]) for j in jobs] == [("completed", "scheduled")] * 2
        assert all(j.details["report"]["point"] == point and j.details["report"]["ok"] for j in jobs)

    def test_the_claims_of_drills_are_vault_objects_apart_from_the_backups(self, drilled):
        """A drill's claim is a run claim under runs/<item-id>/drill/ and does not count as a backup's."""
        vault, clock = drilled
        vault.run_due()
        claims = sorted(vault.repo.store.list("runs/"))
        item_id = vault.items()[0].item_id
        assert [kind_of(name).label for name in claims] == ["run claim", "run claim"]
        assert sum(name.startswith(f"runs/{item_id}/drill/") for name in claims) == 1
        rows = {(row.kind, row.name): row for row in vault.schedule()}
        assert not rows[("backup", "docs")].due and rows[("backup", "docs")].next_run == clock.now + 3.5 * HOUR
        assert not rows[("drill", "docs")].due and rows[("drill", "docs")].next_run == clock.now + HOUR

    def test_forgetting_an_items_claims_forgets_its_drill_claims(self, drilled):
        """The claims of a deleted item (Claims.forget, as prune does) go with its drill claims."""
        vault, clock = drilled
        vault.run_due()
        item_id = vault.items()[0].item_id
        Claims(vault.repo, item_id).forget()
        assert list(vault.repo.store.list("runs/")) == []
        assert Claims(vault.repo, drill_subject(item_id)).last_slot() is None

    def test_a_damaged_pack_is_a_failed_drill_job_and_a_drill_failed_alert(self, drilled, tmp_path):
        """Every pack damaged after a good drill: the next scheduled drill fails, as a failed job and an alert."""
        vault, clock = drilled
        vault.run_due()
        damage_chunk(vault, str(tmp_path / "src" / "big.bin"))
        clock.now += HOUR
        vault = vault.reopen()  # nothing read before is cached
        report = vault.run_due()
        assert kinds(report) == [("drill", "failed")]
        job = vault.jobs.list(type_="drill")[-1]
        assert job.state == "failed" and job.details["trigger"] == "scheduled" and job.error
        alerts = [a for a in vault.alerts.list() if a.kind == "drill.failed"]
        assert len(alerts) == 1 and alerts[0].item == "docs" and alerts[0].details["trigger"] == "scheduled"
        clock.now += dt.timedelta(minutes=30)
        assert vault.run_due().results == ()  # a failed drill is a drill: the next one an interval later

    def test_a_drill_by_hand_postpones_the_scheduled_one(self, tmp_path):
        """After 'drill' by hand, run-due backs up but does not drill again within the interval."""
        vault = scheduled_vault(str(tmp_path / "vault"), policy_from_options("p", {"every": "1h", "drill_every": "1d"}))
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "f").write_text("x")
        vault.protect("files", "docs", {"paths": [str(tmp_path / "src")]}, policy="p")
        vault.backup("docs")
        vault.drill("docs")
        rows = {(row.kind, row.name): row for row in vault.schedule()}
        assert not rows[("drill", "docs")].due
        assert all(kind != "drill" for kind, _ in kinds(vault.run_due()))


class TestDrillPolicyCli:
    def test_policy_show_and_run_due_as_a_user_runs_them(self, cli, tmp_path):
        """policy create --drill-every: policy show says so, run-due drills once, schedule lists the drill."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.txt").write_text("alpha")
        cli("vault", "create", cli.vault_url)
        out = cli("policy", "create", "gold", "--every", "1h", "--drill-every", "7d").output
        assert "drill every 1w" in out
        assert "drills:       every 1w" in cli("policy", "show", "gold").output
        assert json.loads(cli("policy", "show", "gold", "--json").stdout)["drill"] == {
            "every": 7 * 86400, "from_secondary": False}
        cli("protect", "files", "docs", "--path", str(src), "--policy", "gold")
        done = json.loads(cli("run-due", "--json").stdout)["results"]
        assert [(r["kind"], r["outcome"]) for r in done if r["kind"] != "prune"] == [
            ("backup", "completed"), ("drill", "completed")]
        again = json.loads(cli("run-due", "--json").stdout)["results"]
        assert [r for r in again if r["kind"] == "drill"] == []
        rows = json.loads(cli("schedule", "--json").stdout)
        drill = next(r for r in rows if r["kind"] == "drill")
        assert drill["name"] == "docs" and not drill["due"] and drill["from_secondary"] is False
        assert "docs (drill)" in cli("schedule").output
        cli("policy", "update", "gold", "--drill-every", "off")
        assert "drills:       none" in cli("policy", "show", "gold").output

    def test_bad_drill_options_are_one_line(self, cli):
        """A too short interval, or drills from a secondary on a vault without one: exit 74, one line."""
        cli("vault", "create", cli.vault_url)
        one_line_error(cli("policy", "create", "p", "--every", "1h", "--drill-every", "10m", expect=None),
                       74, "every 1h at most")
        one_line_error(cli("policy", "create", "p", "--every", "1h", "--drill-every", "1d", "--drill-from-secondary",
                           expect=None), 74, "needs a geo vault")


class TestScheduledDrillsFromTheSecondary:
    @pytest.fixture
    def geo(self, tmp_path, monkeypatch):
        """A geo vault (two folders) on a simulated clock: item 'docs' drilled hourly from the secondary."""
        monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # only run-due's catch-up replicates
        clock = Clock(SCHEDULE_START)
        secondary = tmp_path / "secondary"
        vault = scheduled_vault(str(tmp_path / "vault"), policy_from_options(
            "geo-drill", {"every": "4h", "drill_every": "1h", "drill_from_secondary": True}),
            clock=clock, redundancy=Redundancy("geo", str(secondary)))
        src = tmp_path / "src"
        src.mkdir()
        (src / "big.bin").write_bytes(random.Random(16).randbytes(2 << 20))
        vault.protect("files", "docs", {"paths": [str(src)]}, policy="geo-drill")
        return vault, clock, secondary

    def test_run_due_drills_the_new_point_on_the_secondary(self, geo):
        """The first run-due backs up, replicates, then drills that point on the secondary (recorded on this machine)."""
        vault, clock, _ = geo
        report = vault.run_due()
        assert kinds(report) == [("backup", "completed"), ("drill", "completed")]
        point = vault.points("docs")[-1].point_id
        assert report.results[1][3] == f"point {point[:8]} on the secondary: 1 file(s) checked"
        job = vault.jobs.list(type_="drill")[-1]
        assert job.local and job.details["source"] == "secondary" and job.details["trigger"] == "scheduled"
        assert job.details["report"]["point"] == point

    def test_a_damaged_secondary_fails_the_drill_and_alerts_in_the_vault(self, geo, tmp_path):
        """A pack damaged on the secondary only: the scheduled drill fails and the vault raises drill.failed."""
        vault, clock, secondary = geo
        vault.run_due()
        copy = Vault.open(str(secondary))
        copy.index.load()
        entry = copy.repo.index.lookup(copy.point_view("docs").lookup(str(tmp_path / "src" / "big.bin").lstrip("/")).chunks[0])
        pack = secondary / pack_name(entry.pack_id)
        os.chmod(pack, 0o600)
        data = bytearray(pack.read_bytes())
        data[entry.offset + 10:entry.offset + 14] = b"\0\1\2\3"
        pack.write_bytes(bytes(data))
        clock.now += HOUR
        vault = vault.reopen()
        assert kinds(vault.run_due()) == [("drill", "failed")]
        assert vault.verify().ok  # the vault itself is intact
        alerts = [a for a in vault.alerts.list() if a.kind == "drill.failed"]
        assert len(alerts) == 1 and alerts[0].item == "docs"
