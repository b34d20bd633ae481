"""Checking stored packs: read in pieces from a local store, whole from a remote one, the same findings."""

from __future__ import annotations

import os
import random

import pytest

from strongroom.engine import packscan
from strongroom.engine.packscan import PIECE, check_pack, scan_packs
from strongroom.repository.pack import pack_name, read_trailer
from strongroom.storage.capabilities import Capabilities
from strongroom.vault import Vault

MIB = 1 << 20


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home) -> Vault:
    """A vault holding one backup: random files of several chunks and many small notes."""
    rng = random.Random(5)
    src = tmp_path / "src"
    (src / "notes").mkdir(parents=True)
    for i in range(3):
        (src / f"r{i}.bin").write_bytes(rng.randbytes(3 * MIB + i))
    for i in range(200):
        (src / "notes" / f"n{i}.txt").write_bytes(rng.randbytes(2000 + i))
    vault = Vault.create(str(tmp_path / "vault"))
    vault.protect("files", "data", {"paths": [str(src)]})
    vault.backup("data")
    return vault


def _packs(vault: Vault) -> list[str]:
    return sorted(vault.repo.pack_ids_on_storage())


def _path(vault: Vault, pack_id: str) -> str:
    return os.path.join(vault.url, pack_name(pack_id))


def _whole(monkeypatch) -> None:
    """Make check_pack take the road of a remote store (one read of the whole pack)."""
    monkeypatch.setattr(packscan, "capabilities_of", lambda store: Capabilities(remote=True))


def _checks(vault: Vault) -> list:
    by_pack = vault.repo.index.pack_entries()
    return list(scan_packs(vault.repo, _packs(vault), by_pack))


class TestPieces:
    def test_a_local_pack_is_read_in_pieces_covering_every_byte(self, vault, monkeypatch):
        """From a local store, no request but the trailer's and a lone large blob's is
        larger than PIECE, and the requests for blobs cover every byte before the trailer."""
        store = vault.repo.store
        asked: list[tuple[str, int, int]] = []
        real = type(store).get_range

        def spy(self, name, offset, length):
            asked.append((name, offset, length))
            return real(self, name, offset, length)

        pack_id = max(_packs(vault), key=lambda p: os.path.getsize(_path(vault, p)))
        listed = read_trailer(store, pack_id, vault.repo.envelope)
        monkeypatch.setattr(type(store), "get_range", spy)
        check = check_pack(vault.repo, pack_id, listed)
        assert check.sound and check.size == os.path.getsize(_path(vault, pack_id))
        end = listed[-1].offset + listed[-1].length
        reads = sorted((o, n) for _, o, n in asked if o + n <= end)  # not the trailer's
        assert [o for o, _ in reads] == [0] + [o + n for o, n in reads[:-1]]  # contiguous, from 0
        assert reads[-1][0] + reads[-1][1] == end
        largest = max(e.length for e in listed)
        assert all(n <= max(PIECE, largest) for _, n in reads)
        assert len(reads) > 1

    def test_intact_packs_give_what_a_whole_read_gives(self, vault, monkeypatch):
        """Every pack of an intact vault checks the same read in pieces and read whole."""
        pieces = _checks(vault)
        _whole(monkeypatch)
        assert pieces == _checks(vault)
        assert all(c.sound and not c.disagreements for c in pieces)

    @pytest.mark.parametrize("damage", ["flip", "cut", "trailer"])
    def test_damaged_packs_give_what_a_whole_read_gives(self, vault, monkeypatch, damage):
        """A flipped byte in a blob, a pack cut short and a damaged trailer are found
        alike whichever way the pack is read."""
        pack_id = max(_packs(vault), key=lambda p: os.path.getsize(_path(vault, p)))
        path = _path(vault, pack_id)
        data = bytearray(open(path, "rb").read())
        if damage == "flip":
            data[len(data) // 3] ^= 0x10
        elif damage == "cut":
            del data[len(data) // 2 :]
        else:
            data[-40] ^= 0x01
        open(path, "wb").write(bytes(data))
        pieces = _checks(vault)
        _whole(monkeypatch)
        whole = _checks(vault)
        assert pieces == whole
        bad = [c for c in pieces if not c.sound]
        assert [c.pack_id for c in bad] == [pack_id]
        assert bad[0].damaged or bad[0].problem

    def test_a_missing_pack_is_missing(self, vault):
        """A pack gone from storage is reported missing, not damaged."""
        pack_id = _packs(vault)[0]
        indexed = vault.repo.index.pack_entries().get(pack_id, ())
        os.remove(_path(vault, pack_id))
        check = check_pack(vault.repo, pack_id, indexed)
        assert check.missing and check.problem.endswith("missing from storage")


def test_piece_is_below_the_mmap_threshold():
    """Pieces come from the allocator's arenas, not a fresh mapping each."""
    from strongroom.allocator import MMAP_THRESHOLD

    assert PIECE < MMAP_THRESHOLD
