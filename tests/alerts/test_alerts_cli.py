"""``strongroom alerts``: listing, ack, sinks and the test alert, through the command line."""

from __future__ import annotations

import json
import shutil

from vaultkit import assert_one_line_error


def add_webhook(cli, webhook, name="web", *extra):
    return cli("alerts", "sink", "add", name, "--type", "webhook", "--option", f"url={webhook.url('/' + name)}",
               *extra)


class TestSinkCommands:
    def test_add_list_remove(self, cli, vault, webhook):
        """sink add stores a sink, sink list shows it with secrets hidden, sink remove
        removes it after telling it (a security alert)."""
        out = add_webhook(cli, webhook, "web", "--option", "token=t0p-s3cret", "--category", "job")
        assert "receives every job alert and every security alert" in out.stdout
        listed = cli("alerts", "sink", "list")
        assert "web" in listed.stdout and "job + security" in listed.stdout
        assert "t0p-s3cret" not in listed.output and "token=***" in listed.stdout
        [doc] = json.loads(cli("alerts", "sink", "list", "--json").stdout)
        assert doc["options"]["token"] == "***" and doc["category"] == "job"
        cli("alerts", "sink", "remove", "web")
        assert [a["kind"] for a in webhook.alerts()] == ["alerts.sink-removed"]
        assert json.loads(cli("alerts", "sink", "list", "--json").stdout) == []

    def test_bad_sinks_are_one_line_errors(self, cli, vault, webhook):
        """An unknown type, a missing or unknown option, a duplicate and an unknown sink
        are refused with one line and exit 57; nothing is stored."""
        assert_one_line_error(cli("alerts", "sink", "add", "x", "--type", "pigeon", expect=None), 57, "pigeon",
                              "command, email, webhook")
        assert_one_line_error(cli("alerts", "sink", "add", "x", "--type", "webhook", expect=None), 57,
                              "needs --option url")
        assert_one_line_error(cli("alerts", "sink", "add", "x", "--type", "email", "--option", "host=h",
                                  "--option", "from=a@b.c", "--option", "to=d@e.f", "--option", "port=x",
                                  expect=None), 57, "port")
        assert_one_line_error(cli("alerts", "sink", "add", "x", "--type", "webhook", "--option", "nourl",
                                  expect=None), 3, "KEY=VALUE")
        add_webhook(cli, webhook)
        assert_one_line_error(cli("alerts", "sink", "add", "web", "--type", "webhook", "--option",
                                  f"url={webhook.url()}", expect=None), 57, "already exists")
        assert_one_line_error(cli("alerts", "sink", "remove", "nope", expect=None), 57, "nope")
        assert [s["name"] for s in json.loads(cli("alerts", "sink", "list", "--json").stdout)] == ["web"]

    def test_category_help_says_security_cannot_be_switched_off(self, cli):
        """The help of --category says that every sink receives security alerts."""
        text = " ".join(cli("alerts", "sink", "add", "--help").stdout.split())
        assert "security alerts cannot be switched off" in text and "widened" in text

    def test_types_lists_the_options(self, cli):
        out = cli("alerts", "sink", "types").stdout
        assert "webhook: POST the alert as JSON" in out and "url (required)" in out and "password" in out


class TestAlertsTest:
    def test_every_sink_gets_the_test_alert(self, cli, vault, webhook, smtp, command_script):
        """alerts test sends one alert to every sink, security-only ones included, and stores nothing."""
        script, folder = command_script
        add_webhook(cli, webhook, "web", "--category", "security")
        cli("alerts", "sink", "add", "mail", "--type", "email", "--option", "host=127.0.0.1",
            "--option", f"port={smtp.port}", "--option", "from=vault@example.org", "--option", "to=ops@example.org")
        cli("alerts", "sink", "add", "run", "--type", "command", "--option", f"command={script}")
        out = cli("alerts", "test", "--json")
        assert sorted((d["sink"], d["ok"]) for d in json.loads(out.stdout)) == [("mail", True), ("run", True),
                                                                                 ("web", True)]
        assert [a["kind"] for a in webhook.alerts()] == ["alerts.test"]
        assert "a test alert" in smtp.messages[0]["Subject"]
        assert len(list(folder.glob("*.json"))) == 1
        assert json.loads(cli("alerts", "--all", "--json").stdout) == []

    def test_a_failing_sink_is_named_and_exits_59(self, cli, vault, webhook):
        add_webhook(cli, webhook, "good")
        cli("alerts", "sink", "add", "bad", "--type", "webhook", "--option",
            f"url={webhook.url('/status/404')}")
        result = cli("alerts", "test", expect=59)
        assert "good" in result.stdout and "FAILED" in result.stdout
        assert result.stderr.strip().splitlines()[-1] == (
            "strongroom: error: 1 alert sink(s) failed: bad (HTTP 404 from "
            f"127.0.0.1:{webhook.server.server_address[1]})")

    def test_no_sinks(self, cli, vault):
        assert_one_line_error(cli("alerts", "test", expect=None), 56, "no alert sinks")


class TestListAndAck:
    def test_a_failed_backup_is_listed_and_acknowledged(self, cli, vault, webhook, source):
        """backup fails, alerts lists it (and the webhook got it), ack by prefix hides it."""
        add_webhook(cli, webhook)
        cli("protect", "files", "docs", "--path", str(source))
        shutil.rmtree(source)
        cli("backup", "docs", expect=46)
        [alert] = json.loads(cli("alerts", "--json").stdout)
        assert (alert["kind"], alert["state"], alert["item"]) == ("backup.failed", "open", "docs")
        assert alert["deliveries"] == [{"sink": "web", "ok": True, "detail": alert["deliveries"][0]["detail"]}]
        assert [a["alert_id"] for a in webhook.alerts()] == [alert["alert_id"]]
        table = cli("alerts").stdout
        assert alert["alert_id"] in table and "backup.failed" in table and "open" in table
        out = cli("alerts", "ack", alert["alert_id"][:8], "--by", "alice")
        assert out.stdout.startswith(f"acknowledged {alert['alert_id']}")
        assert json.loads(cli("alerts", "--json").stdout) == []
        [acked] = json.loads(cli("alerts", "--all", "--json").stdout)
        assert acked["state"] == "acknowledged" and acked["acknowledged"]["by"] == "alice"

    def test_ack_errors(self, cli, vault):
        assert_one_line_error(cli("alerts", "ack", "abcdef", expect=None), 56, "abcdef")
        assert_one_line_error(cli("alerts", "ack", "xyz", expect=None), 3, "xyz")

    def test_a_failing_sink_does_not_fail_the_backup_and_is_warned(self, cli, vault, webhook, source):
        """With a sink that answers 500, a successful command still exits 0; a failed
        backup keeps its own exit code, and the sink's failure is a warning."""
        cli("alerts", "sink", "add", "down", "--type", "webhook", "--option", f"url={webhook.url('/status/500')}",
            "--option", "timeout=2")
        cli("protect", "files", "docs", "--path", str(source))
        cli("backup", "docs")
        shutil.rmtree(source)
        result = cli("backup", "docs", expect=46)
        assert "alert sink 'down' failed: HTTP 500" in result.stderr
        [alert] = json.loads(cli("alerts", "--json").stdout)
        assert alert["deliveries"][0]["ok"] is False
        assert "failed: down" in cli("alerts").stdout
