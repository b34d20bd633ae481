"""The CLI on remote vaults: storage options from --storage-option, the environment and the
config file, and credentials that never show in output or land in the vault."""

from __future__ import annotations

import json
import uuid

import pytest

from strongroom.testing import Cli, make_tree


@pytest.fixture
def secret(strongroom_s3_server) -> str:
    """The server's secret (unique to the session): a real S3 server refuses any other."""
    return strongroom_s3_server.secret


@pytest.fixture
def bucket(strongroom_s3_server):
    name = strongroom_s3_server.create_bucket()
    yield name
    strongroom_s3_server.delete_bucket(name)


def _everything_stored(server, bucket: str) -> bytes:
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return b"".join(client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys)


def test_storage_options_on_the_command_line_and_secret_from_the_environment(
    strongroom_s3_server, bucket, secret, tmp_path
):
    """--storage-option gives the endpoint, the secret comes from the environment; the secret is never shown or stored."""
    server = strongroom_s3_server
    url = f"s3://{bucket}/vault"
    cli = Cli()
    opts = ["--vault", url, "--storage-option", f"endpoint_url={server.endpoint_url}",
            "--storage-option", f"key={server.key}"]
    env = {"STRONGROOM_STORAGE_OPTIONS": json.dumps({"secret": secret})}
    source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)
    outputs = [
        cli(*opts, "vault", "create", url, env=env),
        cli(*opts, "protect", "files", "web", "--path", source, env=env),
        cli(*opts, "backup", "web", env=env),
        cli(*opts, "vault", "info", env=env),
        cli(*opts, "vault", "verify", "--read-data", env=env),
        cli(*opts, "jobs", "--json", env=env),
        cli(*opts, "restore", "web", "--target", str(tmp_path / "out"), env=env),
    ]
    assert url in outputs[3].stdout
    for result in outputs:
        assert secret not in result.output
    assert secret.encode() not in _everything_stored(server, bucket)


def test_config_file_names_the_endpoint_and_where_the_secret_is(
    strongroom_s3_server, bucket, secret, strongroom_home, tmp_path
):
    """With the options in config.toml (the secret read from a variable), the CLI needs only the URL."""
    server = strongroom_s3_server
    (strongroom_home / "config.toml").write_text(
        f'[storage."s3://{bucket}"]\nendpoint_url = "{server.endpoint_url}"\nkey = "{server.key}"\n'
        'secret = { from_env = "TEST_S3_SECRET" }\n'
    )
    cli = Cli(f"s3://{bucket}/vault")
    env = {"TEST_S3_SECRET": secret}
    cli("vault", "create", f"s3://{bucket}/vault", env=env)
    info = cli("vault", "info", "--json", env=env)
    assert json.loads(info.stdout)["url"] == f"s3://{bucket}/vault"
    assert secret not in info.output
    failed = cli("vault", "info", expect=3)
    assert "TEST_S3_SECRET" in failed.stderr and failed.stderr.count("\n") == 1


def test_wrong_secret_is_a_storage_error_that_does_not_show_it(strongroom_s3_server, bucket):
    """The server refuses a wrong secret's signature: exit 20, one line, and the secret not in it."""
    server = strongroom_s3_server
    wrong = f"wrong-{uuid.uuid4().hex}"
    env = {"STRONGROOM_STORAGE_OPTIONS": json.dumps(
        {"endpoint_url": server.endpoint_url, "key": server.key, "secret": wrong})}
    result = Cli()("vault", "create", f"s3://{bucket}/vault", env=env, expect=20)
    assert "signature" in result.stderr.lower() and result.stderr.count("\n") == 1
    assert wrong not in result.output
    assert server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_malformed_storage_option_is_a_usage_error(tmp_path):
    """A --storage-option without '=' exits 3 with one line that does not repeat it."""
    result = Cli(str(tmp_path / "v"))("--storage-option", "hunter2", "vault", "info", expect=3)
    assert "KEY=VALUE" in result.stderr and "hunter2" not in result.stderr


def test_sftp_vault_from_the_command_line(strongroom_sshd, tmp_path):
    """An sftp:// vault with the client key and known_hosts given as storage options works end to end."""
    url = strongroom_sshd.url(f"{strongroom_sshd.workdir}/cli-{uuid.uuid4().hex}")
    opts = ["--vault", url, "--storage-option", f"client_keys={strongroom_sshd.client_key}",
            "--storage-option", f"known_hosts={strongroom_sshd.known_hosts}"]
    cli = Cli()
    source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)
    cli(*opts, "vault", "create", url)
    cli(*opts, "protect", "files", "web", "--path", source)
    cli(*opts, "backup", "web")
    cli(*opts, "vault", "verify", "--read-data")
    wrong = str(tmp_path / "wrong_known_hosts")
    with open(wrong, "w") as f:
        f.write(f"[127.0.0.1]:{strongroom_sshd.port} ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIEkXfwFq2PVbQSZfGk0ek/nUUl2trNFvtAVR+YaSK8lX\n")
    result = cli("--vault", url, "--storage-option", f"client_keys={strongroom_sshd.client_key}",
                 "--storage-option", f"known_hosts={wrong}", "points", expect=20)
    assert "strongroom: error: Storage error" in result.stderr
