"""Two SeaweedFS servers with different credentials, and geo vaults between their buckets.

Each server's storage options go to the user's ``config.toml`` under ``[storage."s3://BUCKET"]``,
as a user would configure a secondary: the vault never holds them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from strongroom.policy.redundancy import Redundancy
from strongroom.testing import ServerUnavailable, unavailable
from strongroom.testing.servers import S3Server
from strongroom.vault import Vault


def start_server() -> S3Server:
    server = S3Server()
    try:
        return server.start()
    except ServerUnavailable as exc:
        unavailable(f"SeaweedFS is not available: {exc}")


@pytest.fixture(scope="module")
def two_servers():
    """(primary server, secondary server), two independent SeaweedFS instances."""
    primary = start_server()
    try:
        secondary = start_server()
        try:
            yield primary, secondary
        finally:
            secondary.stop()
    finally:
        primary.stop()


def configure(home: Path, server: S3Server, bucket: str) -> None:
    """Put ``server``'s storage options for ``s3://bucket`` in the user's config.toml."""
    path = home / "config.toml"
    text = path.read_text() if path.exists() else ""
    text += f'\n[storage."s3://{bucket}"]\n' + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in server.storage_options.items())
    path.write_text(text)


def geo_pair(home: Path, primary: S3Server, secondary: S3Server) -> tuple[str, str]:
    """Fresh buckets on both servers, configured: (primary URL, secondary URL)."""
    urls = []
    for server in (primary, secondary):
        bucket = server.create_bucket()
        configure(home, server, bucket)
        urls.append(f"s3://{bucket}/vault")
    return urls[0], urls[1]


def geo_vault(home: Path, primary: S3Server, secondary: S3Server) -> tuple[Vault, str]:
    url, secondary_url = geo_pair(home, primary, secondary)
    return Vault.create(url, name="geo", redundancy=Redundancy("geo", secondary_url)), secondary_url


#: the secondary of :func:`geo_vault_out_of_reach`, configured at an endpoint that refuses connections
UNREACHABLE = "s3://gone/vault"


def geo_vault_out_of_reach(home: Path, primary: S3Server) -> Vault:
    """A geo vault in a new bucket of ``primary`` whose secondary, :data:`UNREACHABLE`, is
    configured in ``home``'s config.toml at a loopback port nothing listens on."""
    bucket = primary.create_bucket()
    configure(home, primary, bucket)
    (home / "config.toml").write_text((home / "config.toml").read_text() +
                                      '\n[storage."s3://gone"]\nendpoint_url = "http://127.0.0.1:9"\n'
                                      'key = "k"\nsecret = "s"\n')
    return Vault.create(f"s3://{bucket}/vault", name="geo", redundancy=Redundancy("geo", UNREACHABLE))


def write_files(root: Path, count: int = 12, size: int = 40_000, seed: str = "a") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{i:03d}.bin").write_bytes(os.urandom(size))
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "note.txt").write_text(f"note {seed} {uuid.uuid4()}")
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
