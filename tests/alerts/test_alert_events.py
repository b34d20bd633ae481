"""What raises alerts, and where they go: failed jobs, verify problems, missed schedules,
rollbacks and security events, delivered to real receivers; security alerts reach every
sink; a failing sink never fails the operation."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil

import pytest

from strongroom.errors import SourceError
from strongroom.policy.options import policy_from_options
from strongroom.services.alerts import AlertBook
from strongroom.services.head import Rollback
from vaultkit import SCHEDULE_START, Clock, scheduled_vault

UTC = dt.timezone.utc


class TestFailedJobs:
    def test_a_failed_backup_raises_a_job_alert_that_reaches_the_webhook(self, item_vault, source, webhook):
        """A backup whose source is gone fails as before, and its alert is POSTed."""
        item_vault.alert_sinks.add("web", "webhook", {"url": webhook.url()})
        shutil.rmtree(source)
        with pytest.raises(SourceError):
            item_vault.backup("docs")
        [alert] = item_vault.alerts.list()
        assert (alert.category, alert.kind, alert.item, alert.severity) == ("job", "backup.failed", "docs", "error")
        assert "does not exist" in alert.summary
        [sent] = webhook.alerts()
        assert sent["alert_id"] == alert.alert_id and sent["kind"] == "backup.failed"
        assert webhook.received[0].body["vault"]["name"] == "alerts-test"
        assert [(d.sink, d.ok) for d in alert.deliveries] == [("web", True)]

    def test_repeated_failures_are_one_alert_until_a_backup_completes(self, item_vault, source):
        """Three failed backups of one item are one open alert; a completed backup resolves
        it, and the next failure is a new alert."""
        moved = source.with_name("moved")
        os.rename(source, moved)
        for _ in range(3):
            with pytest.raises(SourceError):
                item_vault.backup("docs")
        [first] = item_vault.alerts.list()
        os.rename(moved, source)
        item_vault.backup("docs")
        [resolved] = item_vault.alerts.list()
        assert resolved.alert_id == first.alert_id and resolved.resolved and resolved.acknowledged is None
        os.rename(source, moved)
        with pytest.raises(SourceError):
            item_vault.backup("docs")
        assert [a.alert_id == first.alert_id for a in item_vault.alerts.list()] == [True, False]

    def test_a_failed_restore_raises_an_alert(self, item_vault, tmp_path):
        """A restore that fails (into a file where a folder must be) raises restore.failed."""
        item_vault.backup("docs")
        target = tmp_path / "in-the-way"
        target.write_text("a file")
        with pytest.raises(Exception):
            item_vault.restore("docs", None, str(target))
        kinds = [a.kind for a in item_vault.alerts.list()]
        assert kinds == ["restore.failed"]

    def test_verify_problems_raise_an_alert(self, item_vault):
        """verify finding a damaged pack fails its job and raises verify.problems."""
        item_vault.backup("docs")
        pack = next(name for name in item_vault.store.list("data/"))
        item_vault.store.put(pack, b"not a pack any more")
        assert not item_vault.verify().ok
        [alert] = item_vault.alerts.list()
        assert alert.kind == "verify.problems" and alert.details["problems"]

    def test_a_cancelled_job_raises_nothing(self, item_vault):
        """A job a person interrupted is not an alert."""
        with pytest.raises(KeyboardInterrupt):
            with item_vault.jobs.running("backup", "docs"):
                raise KeyboardInterrupt
        assert item_vault.alerts.list() == []


class TestSecurityCannotBeSwitchedOff:
    def test_security_alerts_reach_a_job_only_sink(self, vault, webhook):
        """A sink added for job alerts still receives every security alert."""
        vault.alert_sinks.add("jobs", "webhook", {"url": webhook.url("/jobs")}, "job")
        vault.alert_sinks.add("sec", "webhook", {"url": webhook.url("/sec")}, "security")
        vault.alerts.raise_alert("security", "soft-delete.disabled", "soft delete was disabled")
        vault.alerts.raise_alert("job", "backup.failed", "backup of 'x' failed", item="x")
        got = sorted((r.path, r.body["alert"]["kind"]) for r in webhook.received)
        assert got == [("/jobs", "backup.failed"), ("/jobs", "soft-delete.disabled"), ("/sec", "soft-delete.disabled")]

    def test_removing_a_sink_is_a_security_alert_sent_to_it(self, vault, webhook):
        """sink remove raises alerts.sink-removed, delivered to the sink being removed too."""
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url()}, "job")
        vault.alert_sinks.remove("web")
        assert [a["kind"] for a in webhook.alerts()] == ["alerts.sink-removed"]
        assert vault.alert_sinks.list() == []
        assert [a.kind for a in vault.alerts.list()] == ["alerts.sink-removed"]

    def test_a_damaged_sink_configuration_falls_back_and_is_reported(self, vault, webhook):
        """Damaging the newest sink configuration does not silence the sinks: the one
        before is used, and the delivery names the damage."""
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url()})
        vault.alert_sinks.add("web2", "webhook", {"url": webhook.url("/2")})
        newest = sorted(vault.repo.list_names("alert-sinks/"))[-1]
        vault.store.put(newest, b"garbage")
        alert = vault.alerts.raise_alert("security", "guard.unlinked", "the guard was unlinked")
        assert [r.path for r in webhook.received] == ["/hook"]
        assert [(d.sink, d.ok) for d in alert.deliveries] == [("(configuration)", False), ("web", True)]

    def test_the_rollback_hook_raises_a_security_alert_once(self, vault, webhook):
        """A rollback finding is a security alert; the same finding again is not a second one."""
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url()}, "job")
        found = Rollback(missing=("points/x/y",), lines=("point header points/x/y is gone",))
        from strongroom.vault import PluginHooks

        hooks = PluginHooks(vault.plugins.hook, vault)
        hooks.rollback_detected(found)
        hooks.rollback_detected(found)
        [alert] = vault.alerts.list()
        assert (alert.category, alert.kind) == ("security", "rollback.detected")
        assert len(webhook.received) == 1


class TestFailingSinks:
    def test_a_failing_sink_does_not_fail_the_operation_and_is_reported(self, vault, webhook, caplog):
        """A sink that answers 500 leaves the operation alone; the failure is recorded on the
        alert and warned, and the other sinks still receive it."""
        vault.alert_sinks.add("broken", "webhook", {"url": webhook.url("/status/500"), "timeout": "2"})
        vault.alert_sinks.add("good", "webhook", {"url": webhook.url("/ok")})
        with caplog.at_level(logging.WARNING, logger="strongroom.alerts"):
            alert = vault.alerts.raise_alert("job", "backup.failed", "backup of 'x' failed")
        assert alert is not None
        assert {d.sink: d.ok for d in alert.deliveries} == {"broken": False, "good": True}
        assert "HTTP 500" in next(d.detail for d in alert.deliveries if d.sink == "broken")
        assert "alert sink 'broken' failed: HTTP 500" in caplog.text
        [listed] = vault.alerts.list()
        assert {d.sink: d.ok for d in listed.deliveries} == {"broken": False, "good": True}

    def test_a_sink_that_raises_anything_is_a_failed_delivery(self, vault):
        """Even a plugin's bug in send() is a recorded failure, not an exception."""
        from strongroom.services.alertsinks import SinkType

        def broken(options, document):
            raise RuntimeError("bug in plugin")

        vault.alert_sinks.types.add("buggy", SinkType("buggy", "raises", broken))
        vault.alert_sinks.add("b", "buggy", {})
        alert = vault.alerts.raise_alert("security", "key.removed", "a key slot was removed")
        assert [(d.sink, d.ok, d.detail) for d in alert.deliveries] == [("b", False, "RuntimeError: bug in plugin")]

    def test_an_unwritable_vault_still_delivers(self, vault, webhook, monkeypatch):
        """An alert that cannot be written is still sent, and raise_alert does not raise."""
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url()})
        from strongroom.errors import StorageError

        def refuse(name, doc):
            raise StorageError(message="read-only file system")

        monkeypatch.setattr(vault.repo, "put_document", refuse)
        notes: list[str] = []
        vault.alerts.notify = notes.append
        alert = vault.alerts.raise_alert("security", "immutability.disabled", "immutability was disabled")
        assert alert is not None and [a["kind"] for a in webhook.alerts()] == ["immutability.disabled"]
        assert any("could not be written" in n for n in notes)


@pytest.fixture
def scheduled(tmp_path, source):
    """A vault on a clock the test moves, with item 'docs' backed up every 4 hours."""
    clock = Clock(SCHEDULE_START)
    vault = scheduled_vault(str(tmp_path / "vault"), policy_from_options("four", {"every": "4h", "keep_daily": 7}),
                            clock=clock)
    vault.protect("files", "docs", {"paths": [str(source)]}, policy="four")
    return vault, clock


class TestMissedSchedules:
    def test_an_overdue_item_raises_one_alert_until_acknowledged(self, scheduled, webhook):
        """Two intervals late is not yet overdue; three missed run times is one alert, however
        often it is checked, until acknowledged; then a new one."""
        vault, clock = scheduled
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url()})
        vault.run_due()  # the first backup, slot 00:00
        clock.now = dt.datetime(2031, 3, 1, 8, 30, tzinfo=UTC)  # 04:00 and 08:00 missed
        assert vault.check_schedules() == []
        clock.now = dt.datetime(2031, 3, 1, 12, 30, tzinfo=UTC)  # and 12:00
        [alert] = vault.check_schedules()
        assert (alert.kind, alert.item, alert.severity, alert.details["missed"]) == ("schedule.missed", "docs",
                                                                                     "warning", 3)
        for hours in (1, 5, 9):
            clock.now = dt.datetime(2031, 3, 1, 12, 30, tzinfo=UTC) + dt.timedelta(hours=hours)
            assert vault.check_schedules() == []
        assert [a["kind"] for a in webhook.alerts()] == ["schedule.missed"]
        vault.alerts.ack(alert.alert_id, "ops")
        [again] = vault.check_schedules()
        assert again.alert_id != alert.alert_id and len(webhook.received) == 2

    def test_run_due_raises_it_and_the_next_run_resolves_it(self, scheduled):
        """After the agent was down for a day, run-due raises schedule.missed and backs up;
        the next run-due resolves the alert (it stays listed until acknowledged)."""
        vault, clock = scheduled
        vault.run_due()
        clock.now += dt.timedelta(days=1)
        report = vault.run_due()
        assert [r[2] for r in report.results] == ["completed"]
        [alert] = vault.alerts.list()
        assert alert.kind == "schedule.missed" and alert.resolved is None
        clock.now += dt.timedelta(minutes=5)
        vault.run_due()
        [alert] = vault.alerts.list()
        assert alert.resolved is not None and not alert.open
        clock.now += dt.timedelta(days=1)
        vault.check_schedules()
        assert [a.open for a in vault.alerts.list()] == [False, True]

    def test_an_item_without_a_policy_is_never_overdue(self, vault, source):
        """Items that follow no schedule miss nothing."""
        vault.protect("files", "loose", {"paths": [str(source)]})
        vault.clock = lambda: dt.datetime.now(UTC) + dt.timedelta(days=30)
        assert vault.check_schedules() == [] and vault.alerts.list() == []


def test_the_security_core_signature(vault):
    """raise_alert(category, kind, summary, *, details, dedupe) is what the security
    service calls: a security alert with its details, deduplicated while open."""
    book: AlertBook = vault.alerts
    first = book.raise_alert("security", "ticket.refused", "points.delete refused", details={"op": "points.delete"},
                             dedupe="ticket:abc")
    assert first.details == {"op": "points.delete"} and first.severity == "critical"
    assert book.raise_alert("security", "ticket.refused", "again", dedupe="ticket:abc") is None
    with pytest.raises(ValueError):
        book.raise_alert("nonsense", "x", "y")
