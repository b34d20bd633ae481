"""verify's lean copy plan agrees with repair's full one wherever verify looks."""

from __future__ import annotations

import random

import pytest

from strongroom.engine.leanplan import lean_plan
from strongroom.engine.packscan import BlobDamage, PackCheck
from strongroom.engine.repair import plan_copies
from strongroom.repository.pack import IndexEntry


def _packs(seed: int) -> tuple[list[PackCheck], dict[bytes, IndexEntry]]:
    """Packs of random blobs, some held in two or three packs, some damaged, one pack
    with a damaged trailer, one missing; and the copy the index names of each blob."""
    rng = random.Random(seed)
    blobs = [rng.randbytes(32) for _ in range(300)]
    blobs.append(rng.randbytes(31) + b"\0")  # an id ending in a zero byte
    checks = []
    current: dict[bytes, IndexEntry] = {}
    for p in range(12):
        pack_id = f"{p:032x}"
        offset, entries = 0, []
        for blob in rng.sample(blobs, 40):
            length = rng.randrange(40, 5000)
            entry = IndexEntry(blob, rng.choice((1, 2)), pack_id, offset, length, length * 2,
                               b"k" * 16 if p % 2 else b"")
            entries.append(entry)
            offset += length
            if blob not in current or rng.random() < 0.3:
                current[blob] = entry
        damaged = tuple(BlobDamage(e, "authentication failed") for e in entries
                        if p in (2, 3) and rng.random() < 0.2)
        problem = f"pack {p}: trailer damaged" if p == 5 else None
        checks.append(PackCheck(pack_id, offset + 100, tuple(entries), damaged, problem,
                                (f"pack {p}: disagrees",) if p == 7 else ()))
    checks.append(PackCheck(f"{99:032x}", 0, problem="gone: missing from storage", missing=True))
    return checks, current


@pytest.mark.parametrize("seed", range(6))
def test_lean_plan_agrees_with_the_full_plan(seed):
    """Problems, damaged copies, quarantined packs, counts, bytes read and extra copies
    are the same; every blob with a damaged copy has the same intact copy, or none."""
    checks, current = _packs(seed)
    full = plan_copies(checks, current.get)
    lean = lean_plan(iter(checks), current.get)
    assert lean.problems == full.problems
    assert lean.damaged == full.damaged
    assert lean.quarantine == full.quarantine
    assert lean.blob_counts == full.blob_counts
    assert (lean.packs_read, lean.bytes_read) == (full.packs_read, full.bytes_read)
    assert lean.extra == full.extra and lean.extra_by_pack() == full.extra_by_pack()
    assert full.extra  # the packs share blobs: the comparison is not empty
    for damage in full.damaged:
        assert lean.available.get(damage.entry.blob_id) == full.available.get(damage.entry.blob_id)
    assert lean.lost == full.lost
    assert any(full.available.get(d.entry.blob_id) for d in full.damaged)  # some have a copy elsewhere


def test_no_packs():
    """Nothing read: an empty plan."""
    plan = lean_plan([], lambda blob: None)
    assert (plan.available, plan.extra, plan.damaged, plan.blob_counts) == ({}, (), (), {})
