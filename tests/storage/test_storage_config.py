"""Storage options: the config file, the environment, --storage-option, and secrets kept out of sight."""

from __future__ import annotations

import json

import pytest

from strongroom.config import parse_storage_option, redact_options, storage_options_for
from strongroom.errors import UsageError


@pytest.fixture
def config(strongroom_home):
    path = strongroom_home / "config.toml"

    def write(text: str):
        path.write_text(text)
        return path

    return write


class TestStorageOptionsFor:
    def test_nothing_configured_gives_the_explicit_options(self):
        """Without a config file or environment, the given options are used as they are."""
        assert storage_options_for("s3://b/v", {"a": 1}) == {"a": 1}
        assert storage_options_for("s3://b/v") == {}

    def test_config_tables_match_by_url_prefix_longest_last(self, config):
        """Every table whose prefix matches applies; a longer prefix overrides a shorter one."""
        config('[storage."s3://backups"]\nendpoint_url = "http://minio:9000"\nkey = "general"\n'
               '[storage."s3://backups/web"]\nkey = "web-writer"\n'
               '[storage."s3://backups-old"]\nkey = "never"\n')
        assert storage_options_for("s3://backups/web") == {"endpoint_url": "http://minio:9000", "key": "web-writer"}
        assert storage_options_for("s3://backups/db/") == {"endpoint_url": "http://minio:9000", "key": "general"}
        assert storage_options_for("s3://other") == {}

    def test_environment_over_config_and_explicit_over_both(self, config, monkeypatch):
        """STRONGROOM_STORAGE_OPTIONS overrides the config file; explicit options override both."""
        config('[storage."sftp://h"]\nport = 22\nusername = "a"\n')
        monkeypatch.setenv("STRONGROOM_STORAGE_OPTIONS", json.dumps({"username": "b", "timeout": 5}))
        assert storage_options_for("sftp://h/x", {"timeout": 9}) == {"port": 22, "username": "b", "timeout": 9}

    def test_secrets_come_from_the_environment_or_a_file(self, config, monkeypatch, tmp_path):
        """{from_env = ...} and {from_file = ...} are read when the options are needed."""
        (tmp_path / "secret").write_text("from-a-file\n")
        config(f'[storage."s3://b"]\nsecret = {{ from_env = "MY_S3_SECRET" }}\n'
               f'password = {{ from_file = "{tmp_path / "secret"}" }}\n')
        monkeypatch.setenv("MY_S3_SECRET", "from-the-env")
        assert storage_options_for("s3://b") == {"secret": "from-the-env", "password": "from-a-file"}

    def test_missing_secret_source_is_a_clear_error(self, config):
        """A reference to an unset variable names the option and the variable, not a value."""
        config('[storage."s3://b"]\nsecret = { from_env = "NOT_SET_ANYWHERE" }\n')
        with pytest.raises(UsageError, match="'secret'.*NOT_SET_ANYWHERE"):
            storage_options_for("s3://b")

    def test_bad_config_and_environment_are_usage_errors(self, config, monkeypatch):
        """A config file that is not TOML, or an environment value that is not a JSON object, is refused."""
        monkeypatch.setenv("STRONGROOM_STORAGE_OPTIONS", "[1, 2]")
        with pytest.raises(UsageError, match="JSON object"):
            storage_options_for("s3://b")
        monkeypatch.delenv("STRONGROOM_STORAGE_OPTIONS")
        config("this is = = not toml")
        with pytest.raises(UsageError, match="config.toml"):
            storage_options_for("s3://b")


class TestParseAndRedact:
    @pytest.mark.parametrize("text, parsed", [
        ("endpoint_url=http://127.0.0.1:9000", ("endpoint_url", "http://127.0.0.1:9000")),
        ("anon=true", ("anon", True)),
        ("use_ssl=False", ("use_ssl", False)),
        ("port=2222", ("port", 2222)),
        ("known_hosts=none", ("known_hosts", None)),
        ('client_kwargs={"verify": false}', ("client_kwargs", {"verify": False})),
        ("client_keys=[\"/k\"]", ("client_keys", ["/k"])),
        ("username=a=b", ("username", "a=b")),
    ])
    def test_values_are_typed(self, text, parsed):
        """Booleans, none, integers and JSON are recognised; everything else stays text."""
        assert parse_storage_option(text) == parsed

    def test_malformed_option_does_not_echo_its_text(self):
        """An option without '=' is refused without repeating what was typed (it may be a secret)."""
        with pytest.raises(UsageError) as info:
            parse_storage_option("hunter2")
        assert "hunter2" not in str(info.value)

    def test_secret_values_are_redacted(self):
        """Secret-looking keys show ***; the rest, nested too, is shown."""
        shown = redact_options({"key": "AKIA", "secret": "s", "password": "p", "token": "t",
                                "account_key": "k", "endpoint_url": "http://e", "known_hosts": "/kh",
                                "client_kwargs": {"aws_secret_access_key": "x", "region_name": "r"}})
        assert shown == {"key": "***", "secret": "***", "password": "***", "token": "***",
                         "account_key": "***", "endpoint_url": "http://e", "known_hosts": "/kh",
                         "client_kwargs": {"aws_secret_access_key": "***", "region_name": "r"}}
