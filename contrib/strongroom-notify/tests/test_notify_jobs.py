"""Jobs run through the real ``strongroom`` command send notifications, or don't."""

from __future__ import annotations

import json
import shutil

import strongroom
import strongroom_notify


def webhook_config(url: str, *, on: str = "", extra: str = "") -> str:
    return f"{on}\n[webhook]\nurl = \"{url}\"\ntimeout = 5\n{extra}\n"


def plugin_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("strongroom-notify:")]


class TestWhichJobsNotify:
    def test_a_failed_backup_sends_one_notification(self, vault, source, write_config, webhook):
        """A backup whose folder is gone fails as before and sends one version-1 document naming item and state."""
        write_config(webhook_config(webhook.url, extra='headers = { Authorization = { from_env = "NOTIFY_TOKEN" } }'))
        shutil.rmtree(source)
        result = vault("backup", "docs", env={"NOTIFY_TOKEN": "Bearer t0ken"}, expect=None)
        assert result.exit_code not in (0, 1)
        assert plugin_lines(result.stderr) == []
        [request] = webhook.requests
        assert request.path == "/hooks/strongroom"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"] == "Bearer t0ken"
        doc = request.json
        assert doc["version"] == 1
        assert (doc["job"]["type"], doc["job"]["state"], doc["job"]["item"]) == ("backup", "failed", "docs")
        assert "does not exist" in doc["job"]["error"]
        [job] = json.loads(vault("jobs", "--json").stdout)
        assert job.pop("schema") == 1  # the command's JSON schema (docs/json.md), not part of the job record
        assert doc["job"] == job
        assert doc["vault"]["name"] == "notify-test" and doc["vault"]["url"] == vault.vault_url
        assert doc["vault"]["id"] and doc["host"] and doc["sent"]

    def test_a_successful_backup_sends_nothing_by_default(self, vault, write_config, webhook):
        """With the default `on` (failed, completed_with_warnings) a clean backup notifies no one."""
        write_config(webhook_config(webhook.url))
        vault("backup", "docs")
        assert webhook.requests == []

    def test_on_all_sends_one_per_job(self, vault, write_config, webhook, tmp_path):
        """`on = "all"` sends exactly one notification for every job the vault records."""
        write_config(webhook_config(webhook.url, on='on = "all"'))
        vault("backup", "docs")
        vault("backup", "docs")
        vault("restore", "docs", "--target", str(tmp_path / "out"))
        vault("vault", "verify")
        jobs = json.loads(vault("jobs", "--json").stdout)
        assert len(jobs) == 4
        assert sorted(d["job"]["job_id"] for d in webhook.documents) == sorted(j["job_id"] for j in jobs)
        assert sorted(d["job"]["type"] for d in webhook.documents) == ["backup", "backup", "restore", "verify"]

    def test_types_filters_the_job_types(self, vault, write_config, webhook, tmp_path):
        """`types` limits notifications to the listed job types."""
        write_config(webhook_config(webhook.url, on='on = ["completed"]\ntypes = ["restore"]'))
        vault("backup", "docs")
        vault("restore", "docs", "--target", str(tmp_path / "out"))
        assert [(d["job"]["type"], d["job"]["state"]) for d in webhook.documents] == [("restore", "completed")]

    def test_the_url_variable_is_enough(self, vault, source, strongroom_isolated_home, webhook):
        """STRONGROOM_NOTIFY_URL alone, with no notify.toml, makes a webhook with the default `on`."""
        assert not (strongroom_isolated_home / "notify.toml").exists()
        vault("backup", "docs", env={"STRONGROOM_NOTIFY_URL": webhook.url})
        shutil.rmtree(source)
        vault("backup", "docs", env={"STRONGROOM_NOTIFY_URL": webhook.url}, expect=None)
        assert [d["job"]["state"] for d in webhook.documents] == ["failed"]


class TestUnconfigured:
    def test_without_configuration_the_plugin_is_silent(self, vault, source, strongroom_isolated_home):
        """No notify.toml and no URL variable: a failed backup prints and writes nothing of the plugin's."""
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert result.exit_code not in (0, 1)
        assert "notify" not in result.output
        assert [p for p in strongroom_isolated_home.rglob("*") if "notify" in p.name] == []


class TestWebhookDelivery:
    def test_5xx_is_retried_and_delivered_once(self, vault, source, write_config, webhook):
        """A webhook answering 500 twice then 200 gets three tries, one delivery and no warning."""
        write_config(webhook_config(webhook.url))
        webhook.answers = [500, 503]
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert plugin_lines(result.stderr) == []
        assert len(webhook.requests) == 3
        assert len({r.body for r in webhook.requests}) == 1
        assert webhook.answers == []

    def test_4xx_is_not_retried(self, vault, source, write_config, webhook):
        """A 404 is final: one request, one warning naming the code and the host only."""
        write_config(webhook_config(webhook.url))
        webhook.answers = [404]
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert len(webhook.requests) == 1
        host = webhook.url.split("/")[2]
        assert plugin_lines(result.stderr) == [f"strongroom-notify: webhook: HTTP 404 from {host}"]

    def test_an_unreachable_webhook_leaves_the_exit_code_alone(self, vault, source, write_config, closed_port):
        """Connection refused: one warning line, and the backup exits as it would without the plugin."""
        vault("backup", "docs")  # clean baseline without a config
        write_config(webhook_config(f"http://127.0.0.1:{closed_port}/hook", on='on = "all"'))
        ok = vault("backup", "docs")
        assert plugin_lines(ok.stderr) == [
            f"strongroom-notify: webhook: cannot reach 127.0.0.1:{closed_port}: Connection refused (3 tries)"]
        assert ok.stderr.count("\n") == 1
        shutil.rmtree(source)
        write_config("")
        without = vault("backup", "docs", expect=None)
        write_config(webhook_config(f"http://127.0.0.1:{closed_port}/hook", on='on = "all"'))
        failed = vault("backup", "docs", expect=None)
        assert failed.exit_code == without.exit_code != 0
        assert len(plugin_lines(failed.stderr)) == 1

    def test_warnings_never_show_secrets(self, vault, source, write_config, webhook):
        """A failing webhook's warning holds neither the URL's password, path or query nor a header value."""
        host = webhook.url.split("/")[2]
        url = f"http://alice:pa55word@{host}/hooks/s3cr3t-path?token=t0psecret"
        write_config(webhook_config(url, extra='headers = { X-Api-Key = "literal-key-value" }'))
        webhook.answers = [500, 500, 500]
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert plugin_lines(result.stderr) == [f"strongroom-notify: webhook: HTTP 500 from {host} (3 tries)"]
        for secret in ("pa55word", "s3cr3t", "t0psecret", "literal-key-value", "alice"):
            assert secret not in result.output
        request = webhook.requests[0]
        assert request.path == "/hooks/s3cr3t-path?token=t0psecret"
        assert request.headers["X-Api-Key"] == "literal-key-value"
        assert request.headers["Authorization"] == "Basic YWxpY2U6cGE1NXdvcmQ="  # alice:pa55word

    def test_a_missing_header_variable_fails_that_sink_only(self, vault, source, write_config, webhook, recorder):
        """A header from an unset variable fails the webhook with a warning; the command still runs."""
        write_config(webhook_config(webhook.url, extra='headers = { Authorization = { from_env = "NOTIFY_TOKEN" } }')
                     + f'[command]\nargv = ["{recorder.path}"]\n')
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert plugin_lines(result.stderr) == [
            "strongroom-notify: webhook: header Authorization: environment variable NOTIFY_TOKEN is not set"]
        assert webhook.requests == []
        assert len(recorder.calls()) == 1


class TestCommandSink:
    def test_the_command_gets_the_json_on_stdin(self, vault, source, write_config, recorder):
        """The command gets the document on stdin, its own argv, and STRONGROOM_JOB_* variables."""
        write_config(f'[command]\nargv = ["{recorder.path}", "--severity", "high"]\ntimeout = 20\n')
        shutil.rmtree(source)
        result = vault("backup", "docs", expect=None)
        assert plugin_lines(result.stderr) == []
        [call] = recorder.calls()
        assert call["argv"] == ["--severity", "high"]
        assert call["stdin"]["version"] == 1
        job = call["stdin"]["job"]
        assert (job["type"], job["state"], job["item"]) == ("backup", "failed", "docs")
        assert call["env"] == {
            "STRONGROOM_JOB_ID": job["job_id"], "STRONGROOM_JOB_TYPE": "backup", "STRONGROOM_JOB_STATE": "failed",
            "STRONGROOM_JOB_ITEM": "docs", "STRONGROOM_JOB_ERROR": job["error"],
        }

    def test_a_failing_command_is_one_warning(self, vault, write_config, tmp_path):
        """A command exiting 3 is reported with its code and last stderr line; the backup still exits 0."""
        script = tmp_path / "page-me"
        script.write_text("#!/bin/sh\necho 'first line' >&2\necho 'pager is down' >&2\nexit 3\n")
        script.chmod(0o755)
        write_config(f'on = "all"\n[command]\nargv = ["{script}"]\n')
        result = vault("backup", "docs")
        assert plugin_lines(result.stderr) == [
            f"strongroom-notify: command: {script} exited with code 3: pager is down"]

    def test_a_missing_command_is_one_warning(self, vault, write_config, webhook, tmp_path):
        """A command that does not exist is reported; the webhook is still notified."""
        missing = tmp_path / "no-such-program"
        write_config(webhook_config(webhook.url, on='on = "all"') + f'[command]\nargv = ["{missing}"]\n')
        result = vault("backup", "docs")
        assert plugin_lines(result.stderr) == [f"strongroom-notify: command: {missing} not found"]
        assert len(webhook.requests) == 1

    def test_a_slow_command_is_killed_at_its_timeout(self, vault, write_config, tmp_path):
        """A command still running at its timeout is killed and reported."""
        script = tmp_path / "hang"
        script.write_text("#!/bin/sh\nsleep 30\n")
        script.chmod(0o755)
        write_config(f'on = "all"\n[command]\nargv = ["{script}"]\ntimeout = 0.3\n')
        result = vault("backup", "docs")
        assert plugin_lines(result.stderr) == [f"strongroom-notify: command: {script} did not finish within 0.3 s"]


class TestBadConfigurationDuringAJob:
    def test_a_bad_config_is_one_warning_and_changes_nothing(self, vault, write_config, webhook):
        """An unknown state in `on` warns once, sends nothing, and the backup still succeeds."""
        path = write_config(webhook_config(webhook.url, on='on = ["faild"]'))
        result = vault("backup", "docs")
        assert plugin_lines(result.stderr) == [
            f"strongroom-notify: configuration: Bad notification configuration in {path}: unknown job state "
            "'faild' in 'on' (known: all, completed, completed_with_warnings, failed, cancelled); "
            "no notification sent"]
        assert webhook.requests == []


class TestTheHookNeverRaises:
    def test_a_bug_is_one_warning_not_an_exception(self, write_config, webhook, capsys):
        """Even a vault object the hook cannot read gives one warning line; nothing propagates to the core."""
        write_config(webhook_config(webhook.url, on='on = "all"'))
        job = strongroom.Job(job_id="j1", type="backup", state="failed", started="2025-01-01T00:00:00+00:00")
        strongroom_notify.strongroom_job_finished(vault=object(), job=job)
        assert capsys.readouterr().err == (
            "strongroom-notify: internal error: AttributeError; no notification sent\n")
        assert webhook.requests == []
