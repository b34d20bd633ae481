"""The ransomware drill, end to end on SeaweedFS with S3 object lock.

A vault on an object-lock bucket, reached with a *client* identity (read, write, list, object
retention; no governance bypass), linked to a guard whose private key is elsewhere, with
immutability locked and a webhook alert sink.  An attacker then holds everything the backup
host holds - the vault key (the local key slot in its home), the client's storage credentials
and a shell - and tries to destroy the backups, with strongroom and with raw S3 calls.
Every attempt is refused or only hides data; the journal records each refusal; the webhook
received the security alerts; and afterwards every recovery point restores byte for byte.
"""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from strongroom.storage.locking import is_transient_name
from strongroom.testing import Cli, VaultLocation, assert_same_tree, make_tree
from webhookkit import webhook  # noqa: F401  (a fixture)


def _raw_client(server):
    """boto3 as the attacker: the client identity's own credentials."""
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=server.client_key, aws_secret_access_key=server.client_secret,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _versions(client, bucket: str, prefix: str) -> tuple[list[dict], list[dict]]:
    versions, markers = [], []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
    return versions, markers


def test_an_attacker_with_the_key_the_storage_credentials_and_a_shell_cannot_destroy_the_backups(
        strongroom_s3_server, strongroom_isolated_home, webhook, tmp_path):
    server = strongroom_s3_server
    bucket = server.create_bucket(object_lock=True)  # left behind: its objects are locked (COMPLIANCE)
    location = VaultLocation("s3", f"s3://{bucket}/vault", server.client_storage_options)
    cli = Cli(location=location)

    # --- the backup admin sets the vault up; the security admin holds the guard -------------
    cli("vault", "create", location.url)
    source = tmp_path / "src"
    make_tree(str(source), big_mib=2, small_files=12)
    cli("policy", "create", "daily", "--daily", "01:00", "--keep-daily", "30")
    cli("protect", "files", "web", "--path", str(source))  # no policy: its points stay until deleted
    config = tmp_path / "config"
    make_tree(str(config), seed=7, big_mib=1, small_files=3)
    cli("protect", "files", "etc", "--path", str(config), "--policy", "daily")
    cli("backup", "etc")
    copies = {}
    for n in range(3):
        (source / f"day-{n}.txt").write_text(f"day {n}\n" * (n + 1))
        cli("backup", "web")
        point = json.loads(cli("points", "web", "--json").stdout)[-1]["point_id"]
        copies[point] = tmp_path / f"copy-{n}"
        shutil.copytree(source, copies[point], symlinks=True)
    cli("alerts", "sink", "add", "soc", "--type", "webhook", "--option", f"url={webhook.url('/alerts')}")
    security_admin = tmp_path / "security-admin"
    security_admin.mkdir()
    cli("guard", "keygen", "--out", str(security_admin / "guard"))
    cli("vault", "guard", "link", str(security_admin / "guard.pub"))
    cli("vault", "immutability", "enable")
    cli("vault", "immutability", "lock")
    victim = sorted(copies)[0]

    # --- the attacker: the same home (vault key), the same storage credentials ----------------
    attempts = {
        "items stop --delete-data": cli("items", "stop", "web", "--delete-data", "--yes", expect=None),
        "points delete": cli("points", "delete", f"web@{victim}", "--yes", expect=None),
        "policy update (shorter retention)": cli("policy", "update", "daily", "--keep-daily", "1", expect=None),
        "prune --keep-last 0": cli("prune", "--keep-last", "0", "--grace", "0", expect=None),
        "vault soft-delete --disable": cli("vault", "soft-delete", "--disable", expect=None),
        "vault immutability disable": cli("vault", "immutability", "disable", expect=None),
        "vault guard unlink": cli("vault", "guard", "unlink", expect=None),
    }
    for what, result in attempts.items():
        assert result.exit_code in (65, 66, 67, 68), f"{what}: exit {result.exit_code}: {result.output}"
        assert len(result.stderr.strip().splitlines()) == 1, f"{what}: {result.stderr}"
    pruned = cli("prune", "--grace", "0", "--json")
    assert json.loads(pruned.stdout)["points_expired"] == []
    assert len(json.loads(cli("points", "web", "--json").stdout)) == 3
    assert len(json.loads(cli("points", "etc", "--json").stdout)) == 1

    raw = _raw_client(server)
    versions, _ = _versions(raw, bucket, "vault/")
    assert len(versions) > 20
    refused = 0
    deleted = []
    for version in versions:  # every version of every object, by its id: locked
        try:
            raw.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            deleted.append(version["Key"])
        except ClientError as denied:
            assert denied.response["Error"]["Code"] == "AccessDenied"
            refused += 1
    # only coordination objects (leases, claims, prune marks) and vault heads written before
    # immutability was on are deletable; the heads written since, the newest first, are locked
    heads = sorted(v["Key"] for v in versions if v["Key"].startswith("vault/heads/"))
    assert heads[-1] not in deleted
    assert [key for key in deleted
            if not (is_transient_name(key.removeprefix("vault/")) or key.startswith("vault/heads/"))] == []
    versions = [v for v in versions if v["Key"] not in deleted]
    with pytest.raises(ClientError):  # nor can the lock be shortened
        raw.put_object_retention(Bucket=bucket, Key=versions[0]["Key"], VersionId=versions[0]["VersionId"],
                                 Retention={"Mode": "GOVERNANCE", "RetainUntilDate": "2001-01-01T00:00:00Z"},
                                 BypassGovernanceRetention=True)
    for version in {v["Key"]: v for v in versions}.values():  # a plain DeleteObject only hides
        raw.delete_object(Bucket=bucket, Key=version["Key"])
    after_versions, markers = _versions(raw, bucket, "vault/")
    assert len(after_versions) == len(versions) and markers
    assert cli("points", "web", expect=None).exit_code != 0  # the vault looks gone

    # --- the defender ------------------------------------------------------------------------
    cli("vault", "recover-objects", "--apply")
    points = [p["point_id"] for p in json.loads(cli("points", "web", "--json").stdout)]
    assert sorted(points) == sorted(copies)
    for point, copy in copies.items():
        target = tmp_path / f"restore-{point}"
        cli("restore", f"web@{point}", "--target", str(target))
        assert_same_tree(str(copy), str(target) + str(source))
    cli("vault", "verify", "--read-data")

    journal = json.loads(cli("vault", "audit", "--json").stdout)
    refusals = [e for e in journal if e["outcome"] == "refused"]
    assert len(refusals) >= len(attempts), refusals
    cli("vault", "audit", "--verify")
    delivered = [a for a in webhook.alerts() if a.get("category") == "security"]
    refused_alerts = [a for a in delivered if a.get("kind") == "operation.refused"]
    assert len(refused_alerts) >= len(attempts), [a.get("kind") for a in delivered]
    assert refused == len(versions)

