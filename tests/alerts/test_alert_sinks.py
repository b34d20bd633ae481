"""The built-in alert sinks against real receivers on loopback, their option checks, and
the ``strongroom_register_alert_sinks`` hook."""

from __future__ import annotations

import datetime as dt
import json
import ssl

import pytest

from strongroom.errors import DuplicateRegistration
from strongroom.markers import hookimpl
from strongroom.plugins import PluginHost
from strongroom.services.alerts import Alert, AlertBook
from strongroom.services.alertsinks import InvalidSink, SinkFailed, SinkType, alert_document, safe_url
from strongroom.services.alertsinks.command import COMMAND
from strongroom.services.alertsinks.smtp import EMAIL
from strongroom.services.alertsinks.webhook import WEBHOOK
from strongroom.vault import Vault

from alertkit import SmtpReceiver

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
VAULT = {"id": "ab" * 16, "name": "main", "url": "s3://user:secret@host/bucket/vault?token=xyz"}


def document(**changes) -> dict:
    alert = Alert(alert_id="0123456789abcdef", time="2026-03-01T12:00:00+00:00", category="security",
                  kind="soft-delete.disabled", severity="critical", summary="soft delete was disabled",
                  details={"by": "root"}, item=None, host="backup01")
    doc = alert_document(alert, VAULT, NOW)
    doc["alert"].update(changes)
    return doc


class TestDocument:
    def test_shape(self):
        """The document has a version, the stored alert, the vault and the time it is sent."""
        doc = document()
        assert doc["version"] == 1
        assert set(doc) == {"version", "alert", "vault", "sent"}
        assert doc["alert"]["kind"] == "soft-delete.disabled" and doc["alert"]["alert_id"] == "0123456789abcdef"
        assert doc["sent"] == "2026-03-01T12:00:00.000000+00:00"

    def test_vault_url_carries_no_secret(self):
        """The vault's URL loses its password and its query (a token may be there)."""
        url = document()["vault"]["url"]
        assert "secret" not in url and "token" not in url
        assert url == "s3://user@host/bucket/vault"
        assert safe_url("/srv/vaults/main") == "/srv/vaults/main"


class TestWebhook:
    def test_posts_the_document(self, webhook):
        """The webhook POSTs the alert document as JSON, with the token as a bearer token."""
        detail = WEBHOOK.send({"url": webhook.url(), "token": "t0ken", "header": "X-Team: ops"}, document())
        assert detail.startswith("HTTP 200 from 127.0.0.1:")
        [got] = webhook.received
        assert got.body == json.loads(json.dumps(document(), default=str)) | {"sent": got.body["sent"]}
        assert got.headers["Authorization"] == "Bearer t0ken"
        assert got.headers["X-Team"] == "ops"
        assert got.headers["Content-Type"] == "application/json"

    def test_server_error_is_retried_then_reported(self, webhook):
        """A 5xx answer is tried three times, then fails naming only host and port."""
        with pytest.raises(SinkFailed) as failed:
            WEBHOOK.send({"url": webhook.url("/status/503?key=s3cret"), "token": "t0ken"}, document())
        assert len(webhook.received) == 3
        message = str(failed.value)
        assert "HTTP 503 from 127.0.0.1:" in message and "3 tries" in message
        assert "s3cret" not in message and "t0ken" not in message

    def test_client_error_is_final(self, webhook):
        """A 4xx answer fails at once."""
        with pytest.raises(SinkFailed, match="HTTP 404"):
            WEBHOOK.send({"url": webhook.url("/status/404")}, document())
        assert len(webhook.received) == 1

    def test_unreachable(self):
        """Nothing listening: a one-line failure after three tries."""
        from strongroom.testing import free_port

        with pytest.raises(SinkFailed, match="cannot reach 127.0.0.1"):
            WEBHOOK.send({"url": f"http://127.0.0.1:{free_port()}/x", "timeout": "2"}, document())

    @pytest.mark.parametrize("options, reason", [
        ({"url": "ftp://host/x"}, "http:// or https://"),
        ({"url": "http://u:p@host/x"}, "not in the url"),
        ({"url": "http://host/x", "header": "no colon"}, "Name: value"),
        ({"url": "http://host/x", "timeout": "soon"}, "number of seconds"),
        ({"url": "http://host/x", "timeout": "0"}, "more than 0"),
        ({}, "needs --option url"),
        ({"url": "http://host/x", "colour": "red"}, "takes no option 'colour'"),
    ])
    def test_bad_options_are_refused(self, options, reason):
        """Options are checked when a sink is added, each refusal naming the problem."""
        with pytest.raises(InvalidSink, match=reason):
            WEBHOOK.validate("web", options)


class TestCommand:
    def test_runs_the_program_with_the_document(self, command_script):
        """The program gets the document on stdin and the alert in its environment."""
        script, folder = command_script
        detail = COMMAND.send({"command": str(script)}, document())
        assert detail == f"{script} exited with code 0"
        got = json.loads((folder / "0123456789abcdef.json").read_text())
        assert got["alert"]["summary"] == "soft delete was disabled"
        env = (folder / "0123456789abcdef.env").read_text()
        assert "STRONGROOM_ALERT_KIND=soft-delete.disabled" in env
        assert "STRONGROOM_ALERT_CATEGORY=security" in env

    def test_does_not_inherit_secrets(self, command_script, monkeypatch):
        """The program never sees the vault's passphrase."""
        script, folder = command_script
        monkeypatch.setenv("STRONGROOM_PASSPHRASE", "hunter2")
        COMMAND.send({"command": str(script)}, document())
        assert "hunter2" not in (folder / "0123456789abcdef.env").read_text()

    def test_failure_quotes_the_last_line_of_stderr(self, tmp_path):
        """A non-zero exit fails with the program's name and its last line of stderr."""
        script = tmp_path / "fail.sh"
        script.write_text("#!/bin/sh\ncat >/dev/null\necho first >&2\necho 'pager down' >&2\nexit 3\n")
        script.chmod(0o755)
        with pytest.raises(SinkFailed, match=r"fail.sh exited with code 3: pager down$"):
            COMMAND.send({"command": str(script)}, document())

    def test_timeout_kills_it(self, tmp_path):
        """A program still running at the timeout is killed and the sink fails."""
        script = tmp_path / "slow.sh"
        script.write_text("#!/bin/sh\nsleep 30\n")
        script.chmod(0o755)
        with pytest.raises(SinkFailed, match="did not finish within 0.5 s"):
            COMMAND.send({"command": str(script), "timeout": "0.5"}, document())

    def test_missing_program(self, tmp_path):
        with pytest.raises(SinkFailed, match="not found"):
            COMMAND.send({"command": str(tmp_path / "nothing-here")}, document())


class TestEmail:
    def test_sends_a_message(self, smtp):
        """The e-mail reaches the SMTP server with the summary in the subject and the
        document attached."""
        options = {"host": "127.0.0.1", "port": str(smtp.port), "from": "vault@example.org",
                   "to": "ops@example.org, cso@example.org"}
        EMAIL.validate("mail", options)
        detail = EMAIL.send(options, document())
        assert "accepted it for 2 recipient(s)" in detail
        [message] = smtp.messages
        assert smtp.envelopes == [("vault@example.org", ["ops@example.org", "cso@example.org"])]
        assert message["Subject"] == "[strongroom] CRITICAL security: soft delete was disabled"
        body = message.get_body(("plain",)).get_content()
        assert "strongroom alerts ack 0123456789abcdef" in body
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == "alert.json"
        assert json.loads(attachment.get_content())["alert"]["kind"] == "soft-delete.disabled"

    def test_starttls_and_login(self, tls_files):
        """With starttls, a private CA file and a login, the message goes over TLS."""
        cert, key = tls_files
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = SmtpReceiver(tls_context=context, login=("alice", "pa55"))
        try:
            options = {"host": "127.0.0.1", "port": str(server.port), "from": "v@example.org", "to": "o@example.org",
                       "starttls": "yes", "cafile": str(cert), "username": "alice", "password": "pa55"}
            EMAIL.validate("mail", options)
            EMAIL.send(options, document())
            assert server.logins == ["alice"] and len(server.messages) == 1
            with pytest.raises(SinkFailed, match="refused the login") as failed:
                EMAIL.send({**options, "password": "wrong"}, document())
            assert "wrong" not in str(failed.value)
            with pytest.raises(SinkFailed, match="SSLCertVerificationError|certificate"):
                EMAIL.send({k: v for k, v in options.items() if k != "cafile"}, document())
        finally:
            server.close()

    def test_unreachable(self):
        from strongroom.testing import free_port

        with pytest.raises(SinkFailed, match="cannot reach 127.0.0.1"):
            EMAIL.send({"host": "127.0.0.1", "port": str(free_port()), "from": "a@b.c", "to": "d@e.f"}, document())

    @pytest.mark.parametrize("options, reason", [
        ({"host": "h", "from": "nobody", "to": "a@b.c"}, "not an e-mail address"),
        ({"host": "h", "from": "a@b.c", "to": " , "}, "at least one address"),
        ({"host": "h", "from": "a@b.c", "to": "a@b.c", "port": "99999"}, "between 1 and 65535"),
        ({"host": "h", "from": "a@b.c", "to": "a@b.c", "starttls": "maybe"}, "yes or no"),
        ({"host": "h", "from": "a@b.c", "to": "a@b.c", "username": "u"}, "both username and password"),
        ({"host": "h", "from": "a@b.c", "to": "a@b.c", "starttls": "yes", "ssl": "yes"}, "not both"),
        ({"host": "h", "from": "a@b.c\r\nBcc: x@y.z", "to": "a@b.c"}, "one line"),
    ])
    def test_bad_options_are_refused(self, options, reason):
        with pytest.raises(InvalidSink, match=reason):
            EMAIL.validate("mail", options)


class PagerPlugin:
    """A third-party sink type, registered through the hook."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    @hookimpl
    def strongroom_register_alert_sinks(self, registry):
        def send(options, doc):
            self.sent.append({"service": options["service"], "kind": doc["alert"]["kind"]})
            return "paged"

        registry.add("pager", SinkType("pager", "page someone", send, options={"service": "the service"},
                                       required=frozenset({"service"})))


class TestRegistration:
    def test_builtin_sinks_come_from_the_essential_alerts_plugin(self):
        """The alerts plugin registers command, webhook and email, and cannot be disabled."""
        host = PluginHost.create()
        assert host.alert_sinks.names() == ["command", "email", "webhook"]
        assert host.alert_sinks.owner("webhook") == "alerts"
        from strongroom.plugins import ESSENTIAL_PLUGINS

        assert "alerts" in ESSENTIAL_PLUGINS

    def test_a_plugin_sink_receives_alerts(self, vault_url):
        """strongroom_register_alert_sinks: a plugin's sink type is configured and used like a built-in one."""
        plugin = PagerPlugin()
        plugins = PluginHost.create(extra_plugins=[("pager", plugin)])
        vault = Vault.create(vault_url, plugins=plugins)
        vault.alert_sinks.add("oncall", "pager", {"service": "storage"})
        vault.alerts.raise_alert("security", "guard.unlinked", "the guard was unlinked")
        assert plugin.sent == [{"service": "storage", "kind": "guard.unlinked"}]
        assert any("alert-sink:pager" in info.registered for info in plugins.plugin_infos() if info.name == "pager")

    def test_a_name_registered_twice_is_refused(self):
        """Two plugins registering the same sink name stop start-up, naming both."""
        class Copy:
            @hookimpl
            def strongroom_register_alert_sinks(self, registry):
                registry.add("webhook", WEBHOOK)

        with pytest.raises(DuplicateRegistration, match="webhook"):
            PluginHost.create(extra_plugins=[("copy", Copy())])

    def test_a_sink_whose_plugin_is_gone_is_a_failed_delivery(self, vault_url):
        """A configured sink of a type nobody registers any more fails, and says why."""
        plugins = PluginHost.create(extra_plugins=[("pager", PagerPlugin())])
        Vault.create(vault_url, plugins=plugins).alert_sinks.add("oncall", "pager", {"service": "s"})
        vault = Vault.open(vault_url)
        alert = vault.alerts.raise_alert("job", "backup.failed", "backup failed")
        assert [(d.sink, d.ok) for d in alert.deliveries] == [("oncall", False)]
        assert "not installed" in alert.deliveries[0].detail


def test_alert_book_without_sinks_records_only(vault):
    """An AlertBook with no deliverer still records alerts (nothing delivered)."""
    book = AlertBook(vault.repo, vault.clock)
    alert = book.raise_alert("job", "backup.failed", "x")
    assert alert.deliveries == () and [a.alert_id for a in book.list()] == [alert.alert_id]
