"""What the prune tests share: vaults with soft delete off, their sizes, every point restored
and compared with its source's snapshot (``vaultkit.digest_tree``; the simulated clock is
``vaultkit.Clock``)."""

from __future__ import annotations

import os
from pathlib import Path

from strongroom.vault import Vault
from vaultkit import restored_digest


def soft_delete_off(vault: Vault) -> None:
    """Turn the vault's soft delete off: these tests are about garbage collection, so an
    expired point's header goes at once and its data is garbage at that prune (with soft
    delete on, the default, it would wait for its purge time: tests/softdelete)."""
    import attrs

    from strongroom.policy.security import SoftDelete

    vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))


def vault_bytes(url: str) -> int:
    """Bytes of every object in a local vault."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(url) for f in files)


def pack_bytes(url: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(url, "data")) for f in files)


def assert_all_points_restore(vault: Vault, snapshots: dict[str, dict[str, str]], sources: dict[str, Path],
                              tmp: Path) -> int:
    """Every point of every item restores to the snapshot taken when it was made; returns how many."""
    count = 0
    for item, source in sources.items():
        try:
            points = vault.points(item)
        except Exception:  # an item whose data was deleted and not protected again
            continue
        for point in points:
            target = tmp / f"restore-{item}-{point.point_id}"
            assert restored_digest(vault, item, point.point_id, target, source) == snapshots[point.point_id], point
            count += 1
    return count
