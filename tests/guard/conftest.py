"""Fixtures of the guard tests: a guard key pair, a vault linked to it, tickets signed by it."""

from __future__ import annotations

import pytest

from strongroom.vault import Vault


@pytest.fixture
def guard_key(tmp_path, cli):
    """(private key file, public key file) of a new guard, made by ``strongroom guard keygen``."""
    out = tmp_path / "guard.key"
    cli("guard", "keygen", "--out", str(out))
    return out, tmp_path / "guard.key.pub"


@pytest.fixture
def linked(vault, cli, guard_key) -> Vault:
    """The test vault, linked to ``guard_key`` (through the command line)."""
    cli("vault", "guard", "link", str(guard_key[1]))
    return vault


@pytest.fixture
def sign(cli, guard_key, tmp_path):
    """sign(operation, vault_id=..., key=..., valid=..., **params) -> a ticket file made by ``guard sign``."""
    made = []

    def make(operation: str, *, vault_id: str, key=None, valid: str = "1h", **params: str):
        path = tmp_path / f"ticket-{len(made)}"
        args = ["guard", "sign", "--key", str(key or guard_key[0]), "--vault-id", vault_id,
                "--operation", operation, "--valid", valid, "--output", str(path)]
        for name, value in params.items():
            args += ["--param", f"{name}={value}"]
        cli(*args)
        made.append(path)
        return path

    return make
