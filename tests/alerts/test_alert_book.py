"""The alert book: alerts are documents never rewritten, events are appended, and what is
not the vault's or does not read is skipped and named."""

from __future__ import annotations

import pytest

from strongroom.errors import UsageError
from strongroom.repository.names import kind_of
from strongroom.services.alerts import AlertNotFound, AmbiguousAlert


class TestStorage:
    def test_an_alert_is_one_document_and_acks_are_appended(self, vault):
        """raise_alert writes alerts/<time-id>-<id>; ack adds an event and leaves it as it was."""
        alert = vault.alerts.raise_alert("job", "backup.failed", "backup of 'x' failed", item="x")
        [name] = vault.repo.list_names("alerts/")
        assert name.endswith("-" + alert.alert_id) and kind_of(name).label == "alert"
        before = vault.store.get(name)
        vault.alerts.ack(alert.alert_id, "ops@host")
        assert vault.store.get(name) == before
        [event] = vault.repo.list_names(f"alert-events/{alert.alert_id}/")
        assert vault.repo.get_document(event)["event"] == "acknowledged"

    def test_ack_hides_it_unless_all(self, vault):
        alert = vault.alerts.raise_alert("job", "backup.failed", "x")
        acked = vault.alerts.ack(alert.alert_id[:6], "ops")
        assert acked.acknowledged.by == "ops"
        assert vault.alerts.list() == []
        [listed] = vault.alerts.list(include_acknowledged=True)
        assert listed.acknowledged.by == "ops"

    def test_ack_by_prefix(self, vault):
        """An id prefix that matches none, several, or that is not hex is refused clearly."""
        ids = [vault.alerts.raise_alert("job", "backup.failed", str(i)).alert_id for i in range(20)]
        unused = next(p for p in (f"{n:04x}" for n in range(65536)) if not any(i.startswith(p) for i in ids))
        with pytest.raises(AlertNotFound):
            vault.alerts.ack(unused, "x")
        shared = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) > 1)
        with pytest.raises(AmbiguousAlert):
            vault.alerts.ack(shared, "x")
        with pytest.raises(UsageError):
            vault.alerts.ack("not-hex", "x")
        assert vault.alerts.ack(ids[3], "x").alert_id == ids[3]

    def test_dedupe_only_while_open(self, vault):
        """A dedupe key blocks a second alert while the first is open, not after it is resolved."""
        first = vault.alerts.raise_alert("job", "schedule.missed", "late", dedupe="k")
        assert vault.alerts.raise_alert("job", "schedule.missed", "late", dedupe="k") is None
        assert [a.alert_id for a in vault.alerts.resolve("k")] == [first.alert_id]
        assert vault.alerts.raise_alert("job", "schedule.missed", "late", dedupe="k") is not None


class TestDamageAndForeignObjects:
    def test_foreign_objects_are_never_read(self, vault):
        """A sync tool's file under alerts/ or alert-events/ is left out without a problem."""
        alert = vault.alerts.raise_alert("job", "backup.failed", "x")
        vault.store.put("alerts/desktop.ini", b"[x]")
        vault.store.put(f"alert-events/{alert.alert_id}/conflicted-copy.txt", b"zz")
        problems: list[str] = []
        assert [a.alert_id for a in vault.alerts.list(problems=problems)] == [alert.alert_id]
        assert problems == []
        assert "alerts/desktop.ini" in vault.repo.foreign

    def test_a_damaged_alert_is_skipped_and_named(self, vault):
        """An alert that does not decrypt is a problem naming it; the others are listed."""
        good = vault.alerts.raise_alert("job", "backup.failed", "good")
        bad = vault.alerts.raise_alert("job", "backup.failed", "bad")
        bad_name = next(n for n in vault.repo.list_names("alerts/") if n.endswith(bad.alert_id))
        vault.store.put(bad_name, b"\x00" * 80)
        problems: list[str] = []
        assert [a.alert_id for a in vault.alerts.list(problems=problems)] == [good.alert_id]
        assert len(problems) == 1 and bad_name in problems[0]

    def test_an_alert_moved_to_another_name_is_refused(self, vault):
        """A sealed alert copied under another alert's name does not open there (the name is
        authenticated), so one alert cannot stand in for another."""
        a = vault.alerts.raise_alert("job", "backup.failed", "a")
        b = vault.alerts.raise_alert("security", "guard.unlinked", "b")
        names = {n.rsplit("-", 1)[1]: n for n in vault.repo.list_names("alerts/")}
        vault.store.put(names[b.alert_id], vault.store.get(names[a.alert_id]))
        problems: list[str] = []
        assert [x.alert_id for x in vault.alerts.list(problems=problems)] == [a.alert_id]
        assert len(problems) == 1

    def test_a_document_with_another_id_is_refused(self, vault):
        """An alert whose id is not the one its name gives is damaged."""
        alert = vault.alerts.raise_alert("job", "backup.failed", "a")
        name = next(iter(vault.repo.list_names("alerts/")))
        vault.repo.put_document(name, {**alert.stored(), "alert_id": "0" * 16})
        problems: list[str] = []
        assert vault.alerts.list(problems=problems) == [] and "not the one its name gives" in problems[0]

    def test_a_damaged_ack_does_not_acknowledge(self, vault):
        """A malformed acknowledgement event is skipped: the alert stays open."""
        alert = vault.alerts.raise_alert("security", "key.removed", "a key slot was removed")
        vault.repo.put_document(f"alert-events/{alert.alert_id}/20260101T000000000000Z-00000000",
                                {"alert_id": alert.alert_id, "event": "acknowledged"})  # no 'by', no 'at'
        problems: list[str] = []
        [listed] = vault.alerts.list(problems=problems)
        assert listed.open and "malformed" in problems[0]

    def test_malformed_fields_are_damage(self, vault):
        """A document with an unknown category or a wrong type is skipped."""
        alert = vault.alerts.raise_alert("job", "backup.failed", "a")
        name = next(iter(vault.repo.list_names("alerts/")))
        vault.repo.put_document(name, {**alert.stored(), "category": "marketing"})
        problems: list[str] = []
        assert vault.alerts.list(problems=problems) == [] and len(problems) == 1
        vault.repo.put_document(name, {**alert.stored(), "details": "text"})
        assert vault.alerts.list() == []


class TestJournal:
    def test_sink_changes_and_acks_are_journaled_without_secrets(self, vault, webhook):
        """sink add, sink remove and ack each leave started and succeeded journal entries;
        a sink's options (its token) are not in them."""
        vault.alert_sinks.add("web", "webhook", {"url": webhook.url(), "token": "t0ken-s3cret"})
        alert = vault.alerts.raise_alert("job", "backup.failed", "x")
        vault.alerts.ack(alert.alert_id, "ops")
        vault.alert_sinks.remove("web")
        entries = [(e.operation, e.outcome) for e in vault.journal.entries() if e.operation.startswith("alerts.")]
        assert entries == [("alerts.sink-add", "started"), ("alerts.sink-add", "succeeded"),
                           ("alerts.ack", "started"), ("alerts.ack", "succeeded"),
                           ("alerts.sink-remove", "started"), ("alerts.sink-remove", "succeeded")]
        assert not any("t0ken" in str(e.params) for e in vault.journal.entries())
        assert vault.journal.verify().intact
