"""What the soft delete tests share: a vault on a clock the test controls, an item with four
daily points and the snapshot of the source each was made from, and a guard to sign tickets."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import attrs
import pytest

from strongroom.policy.options import policy_from_options
from strongroom.policy.security import GuardLink, Immutability, SoftDelete
from strongroom.services.tickets import load_private_key, load_public_key, new_guard_key, sign_ticket
from strongroom.vault import Vault
from vaultkit import Clock, digest_tree, restored_digest

UTC = dt.timezone.utc


@attrs.define
class World:
    """``vault`` (clock ``clock``) with item 'docs' (policy 'short': 2 daily points) backed up
    on four days from ``src``; ``snapshots``: point id -> digest of the source then."""

    vault: Vault
    clock: Clock
    src: Path
    tmp: Path
    snapshots: dict[str, dict[str, str]]

    @property
    def ids(self) -> list[str]:
        return list(self.snapshots)

    def restored(self, point_id: str, name: str = "docs") -> dict[str, str]:
        """Restore ``point_id`` to a new folder; the digest of what came back."""
        target = self.tmp / f"restore-{point_id}-{len(os.listdir(self.tmp))}"
        return restored_digest(self.vault, name, point_id, target, self.src)

    def reopened(self) -> Vault:
        fresh = Vault.open(self.vault.url)
        fresh.clock = self.clock
        return fresh


def set_security(vault: Vault, **parts) -> None:
    vault.security.change(attrs.evolve(vault.security.settings, **parts))


def soft_delete(vault: Vault, state: str = "enabled", days: int = 14) -> None:
    set_security(vault, soft_delete=SoftDelete(state=state, days=days))


def immutable(vault: Vault) -> None:
    set_security(vault, immutability=Immutability(state="enabled"))


@pytest.fixture
def world(tmp_path) -> World:
    clock = Clock(dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(minutes=1))  # whole seconds
    vault = Vault.create(str(tmp_path / "vault"), name="soft")
    vault.clock = clock
    vault.policies.create(policy_from_options("short", {"daily": "02:00", "keep_daily": 2}))
    vault.policies.create(policy_from_options("long", {"daily": "02:00", "keep_daily": 60}))
    src = tmp_path / "src"
    src.mkdir()
    (src / "base.bin").write_bytes(os.urandom(40_000))
    vault.protect("files", "docs", {"paths": [str(src)]}, policy="short")
    snapshots = {}
    for day in range(4):
        (src / f"day{day}.bin").write_bytes(os.urandom(60_000))  # data only this point and later ones hold
        if day:
            (src / f"day{day - 1}.bin").unlink()
        snapshots[vault.backup("docs").point_id] = digest_tree(src)
        clock.advance(days=1)
    out = tmp_path / "out"
    out.mkdir()
    return World(vault, clock, src, out, snapshots)


@attrs.define
class Guard:
    """A guard key pair; ``ticket(op, **params)`` signs one for the vault, valid an hour."""

    private: object
    public: str
    vault: Vault

    def ticket(self, operation: str, *, vault_id: str | None = None, **params: str) -> str:
        return sign_ticket(self.private, vault_id or self.vault.vault_id, operation, params,
                           dt.timedelta(hours=1), self.vault.clock())


@pytest.fixture
def guard(world, tmp_path) -> Guard:
    """``world``'s vault linked to a new guard."""
    key = tmp_path / "guard.key"
    new_guard_key(key)
    public = load_public_key(Path(f"{key}.pub"))
    set_security(world.vault, guard=GuardLink(public_key=public, linked_at=world.clock().isoformat()))
    return Guard(load_private_key(key), public, world.vault)
