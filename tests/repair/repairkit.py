"""What the repair tests share: two backups at once, damage at a chosen blob, restores compared."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

from strongroom.repository.pack import IndexEntry, pack_name, read_trailer
from strongroom.testing import assert_same_tree, tree_digest
from strongroom.vault import Vault

MIB = 1 << 20


def make_source(root: Path, seed: int = 12) -> Path:
    """Two files of random data (several chunks each) and a few small notes."""
    rng = random.Random(seed)
    (root / "docs").mkdir(parents=True)
    (root / "a.bin").write_bytes(rng.randbytes(2 * MIB + 12345))
    (root / "b.bin").write_bytes(rng.randbytes(2 * MIB + 54321))
    for i in range(5):
        (root / "docs" / f"note-{i}.txt").write_text(f"note {i}\n" * (50 + 40 * i))
    return root


def two_backups_at_once(url: str, item: str, storage_options: dict | None = None) -> list:
    """Back up ``item`` from two vault handles at once: both load the index before
    either writes (they meet at their first progress report), so both store every blob."""
    handles = [Vault.open(url, storage_options=storage_options) for _ in range(2)]
    meet = threading.Barrier(2)
    points: list = [None, None]
    errors: list = []

    def run(i: int) -> None:
        met = []

        def progress(stats) -> None:
            if not met:
                met.append(True)
                meet.wait(timeout=120)
        try:
            points[i] = handles[i].backup(item, progress=progress)
        except BaseException as exc:  # reported below
            meet.abort()
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return points


def copies(vault: Vault) -> dict[bytes, list[IndexEntry]]:
    """blob id -> every copy on storage, read from the packs' own trailers."""
    found: dict[bytes, list[IndexEntry]] = {}
    for pack_id in sorted(vault.repo.pack_ids_on_storage()):
        for entry in read_trailer(vault.store, pack_id, vault.repo.envelope):
            found.setdefault(entry.blob_id, []).append(entry)
    return found


def chosen(vault: Vault, blob: bytes) -> IndexEntry:
    """The copy of ``blob`` that a freshly opened vault's index names."""
    fresh = vault.reopen()
    fresh.index.load()
    entry = fresh.repo.index.lookup(blob)
    assert entry is not None
    return entry


def damage(store, entry: IndexEntry) -> None:
    """Flip one bit in the middle of one blob's sealed bytes in its pack (any store)."""
    name = pack_name(entry.pack_id)
    data = bytearray(store.get(name))
    data[entry.offset + entry.length // 2] ^= 0x10
    store.put(name, bytes(data))


def chunks_of(vault: Vault, point, path: str) -> tuple[bytes, ...]:
    return vault.reopen().tree(point).lookup(path).chunks


def point_path(source: Path) -> str:
    return os.path.abspath(source).lstrip("/")


def assert_every_point_restores(vault: Vault, item: str, source: Path, tmp_path: Path) -> None:
    """Every point of ``item`` restores to a tree equal to ``source`` (type, mode, size, bytes)."""
    vault = vault.reopen()
    expected = tree_digest(str(source))
    points = vault.points(item)
    assert points
    for n, point in enumerate(points):
        target = tmp_path / f"restore-{point.short_id}-{n}"
        vault.restore(item, point.point_id, str(target))
        assert_same_tree(expected, str(target / point_path(source)))


def objects(store, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` with its bytes."""
    return {name: store.get(name) for name in sorted(store.list(prefix))}
