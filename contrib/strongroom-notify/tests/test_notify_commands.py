"""``strongroom notify test`` and ``strongroom notify show``, and bad configuration."""

from __future__ import annotations

import json


def config(url: str, *, extra: str = "", top: str = "") -> str:
    return f'{top}\n[webhook]\nurl = "{url}"\n{extra}\n'


class TestNotifyTest:
    def test_every_sink_gets_a_made_up_job(self, strongroom_cli, write_config, webhook, recorder):
        """notify test --state sends a made-up job of that state to each sink and exits 0."""
        write_config(config(webhook.url, top='on = ["failed"]') + f'[command]\nargv = ["{recorder.path}"]\n')
        result = strongroom_cli()("notify", "test", "--state", "completed_with_warnings")
        lines = result.stdout.splitlines()
        assert [line.split(":")[0:2] for line in lines] == [["webhook", " ok"], ["command", " ok"]]
        [doc] = webhook.documents
        assert doc["version"] == 1
        assert doc["job"]["state"] == "completed_with_warnings" and doc["job"]["details"] == {"test": True}
        [call] = recorder.calls()
        assert call["stdin"]["job"] == doc["job"]
        assert call["env"]["STRONGROOM_JOB_STATE"] == "completed_with_warnings"

    def test_the_default_state_is_failed(self, strongroom_cli, write_config, webhook):
        """Without --state the made-up job failed, with an error message; --json reports each sink."""
        write_config(config(webhook.url))
        result = strongroom_cli()("notify", "test", "--json")
        [report] = json.loads(result.stdout)
        assert report["sink"] == "webhook" and report["ok"] is True
        job = webhook.documents[0]["job"]
        assert job["state"] == "failed" and job["error"]

    def test_a_failing_sink_fails_the_command(self, strongroom_cli, write_config, webhook, tmp_path):
        """One sink failing: both are reported and the command exits 103 with one error line."""
        write_config(config(webhook.url) + f'[command]\nargv = ["{tmp_path / "missing"}"]\n')
        result = strongroom_cli()("notify", "test", expect=103)
        assert result.stdout.splitlines()[0].startswith("webhook: ok: HTTP 200 from 127.0.0.1:")
        assert result.stdout.splitlines()[1] == f"command: FAILED: {tmp_path / 'missing'} not found"
        assert result.stderr == "strongroom: error: 1 of 2 notification sink(s) failed: command.\n"
        assert len(webhook.requests) == 1

    def test_nothing_configured_is_an_error(self, strongroom_cli, strongroom_isolated_home, write_config):
        """notify test with no sink configured says where the configuration goes, exit 102."""
        result = strongroom_cli()("notify", "test", expect=102)
        write_config('on = "all"\n')
        assert strongroom_cli()("notify", "test", expect=102).stderr == result.stderr
        assert result.stderr == (
            "strongroom: error: No notification sink is configured: add [webhook] or [command] to "
            f"{strongroom_isolated_home / 'notify.toml'}, or set STRONGROOM_NOTIFY_URL.\n")


class TestNotifyShow:
    def test_show_redacts_secrets(self, strongroom_cli, write_config):
        """show prints the configuration with a literal header, the URL password and query values as ***."""
        path = write_config(config(
            "https://alice:pa55word@hooks.example.net/strongroom?token=t0psecret",
            top='on = ["failed"]\ntypes = ["backup"]',
            extra='timeout = 3\nheaders = { X-Api-Key = "literal-key-value",'
                  ' Authorization = { from_env = "NOTIFY_TOKEN" } }',
        ) + '[command]\nargv = ["/usr/local/bin/page-me", "--severity", "high"]\n')
        out = strongroom_cli()("notify", "show", env={"NOTIFY_TOKEN": "env-secret"}).stdout
        for secret in ("pa55word", "t0psecret", "literal-key-value", "env-secret"):
            assert secret not in out
        assert out.splitlines() == [
            f"source:  {path}",
            "on:      failed",
            "types:   backup",
            "webhook: POST https://alice:***@hooks.example.net/strongroom?token=*** (timeout 3 s)",
            "  X-Api-Key: ***",
            '  Authorization: {"from_env": "NOTIFY_TOKEN"}',
            "command: /usr/local/bin/page-me --severity high (timeout 30 s)",
        ]

    def test_show_json(self, strongroom_cli, write_config):
        """show --json gives the same as an object; the URL variable overrides the file's URL."""
        write_config('on = "all"\n[webhook]\nurl = "https://a.example/x"\nheaders = { K = { from_file = "/etc/k" } }\n')
        doc = json.loads(strongroom_cli()("notify", "show", "--json",
                                          env={"STRONGROOM_NOTIFY_URL": "http://b.example:8080/y"}).stdout)
        assert doc["on"] == ["completed", "completed_with_warnings", "failed", "cancelled"]
        assert doc["types"] is None and doc["command"] is None
        assert doc["webhook"] == {"url": "http://b.example:8080/y", "timeout": 10.0,
                                  "headers": {"K": {"from_file": "/etc/k"}}}
        assert doc["source"].endswith("notify.toml and STRONGROOM_NOTIFY_URL")
        assert doc["schema"] == 1 and doc["configured"] is True

    def test_show_without_configuration(self, strongroom_cli):
        """show with nothing configured says so and exits 0 (with --json: configured false)."""
        assert strongroom_cli()("notify", "show").stdout.startswith("Not configured: no ")
        assert json.loads(strongroom_cli()("notify", "show", "--json").stdout) == {"schema": 1, "configured": False}


class TestBadConfiguration:
    BAD = {
        "unreadable TOML": ('on = ["failed"\n', "not valid TOML: "),
        "unknown state": ('on = ["failed", "exploded"]\n', "unknown job state 'exploded' in 'on'"),
        "not http": ('[webhook]\nurl = "ftp://files.example/x"\n',
                     "webhook.url must be an http:// or https:// URL with a host (it has 'ftp')"),
        "no scheme": ('[webhook]\nurl = "hooks.example.net/x"\n', "(it has no scheme)"),
        "unknown key": ('[webhook]\nurl = "https://h.example/"\nurll = "x"\n', "unknown key 'urll' in [webhook]"),
        "bad timeout": ('[command]\nargv = ["/bin/true"]\ntimeout = -1\n', "command.timeout must be a positive"),
        "empty argv": ('[command]\nargv = []\n', "command.argv must be a non-empty list"),
        "bad header": ('[webhook]\nurl = "https://h.example/"\nheaders = { A = { from_vault = "x" } }\n',
                       "webhook header 'A' must be a string"),
    }

    def test_each_problem_is_one_line_with_exit_code_101(self, strongroom_cli, write_config):
        """Every kind of bad configuration makes show and test fail with one line naming the file, exit 101."""
        for name, (text, reason) in self.BAD.items():
            path = write_config(text)
            for command in ("show", "test"):
                result = strongroom_cli()("notify", command, expect=101)
                assert result.stdout == "", name
                assert result.stderr.count("\n") == 1, name
                assert result.stderr.startswith(
                    f"strongroom: error: Bad notification configuration in {path}: "), name
                assert reason in result.stderr, name

    def test_a_bad_url_variable_names_the_variable(self, strongroom_cli):
        """A bad STRONGROOM_NOTIFY_URL is reported as such, without echoing it."""
        result = strongroom_cli()("notify", "show", env={"STRONGROOM_NOTIFY_URL": "mailto:ops:s3cret@example.net"},
                                  expect=101)
        assert "STRONGROOM_NOTIFY_URL must be an http:// or https:// URL" in result.stderr
        assert "s3cret" not in result.output
