"""Hostile packs: a footer's trailer length and a pack's size are checked against bounds
before anything beyond the fixed tail read is read (issue 21, finding 2: pack trailers).

A fake 1 GiB sparse pack whose footer claims a trailer of almost 1 GiB made the old
code read (and hold) the whole claim; now it costs the tail read and one clean
integrity error, in backup (adoption), verify, rebuild-index and repair: each runs as a
child process whose peak RSS is read with ``os.wait4``.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository.envelope import KIND_DATA, Envelope
from strongroom.repository.pack import (
    MAX_PACK_BLOBS,
    MAX_PACK_SIZE,
    MAX_TRAILER_LENGTH,
    PACK_TARGET_SIZE,
    PackWriter,
    pack_name,
    read_trailer,
)

GIB = 1 << 30
RSS_BOUND = 200 * 1024 * 1024
FAKE_ID = "ab" + "5e" * 15


def plant_sparse_pack(root: Path, pack_id: str, size: int, trailer_len: int) -> Path:
    """A pack of ``size`` bytes, all holes but its footer, which claims ``trailer_len``."""
    path = root / pack_name(pack_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - 8)
        f.write(struct.pack("<I4s", trailer_len, b"SRPK"))
    return path


#: Runs argv[2:] as its own child and writes that child's peak RSS (KiB) to argv[1]: a
#: process's ru_maxrss starts from the memory of the process it was forked from (Linux
#: keeps the high-water mark across exec), so measuring a child of the test process
#: would count the test process too.
_MEASURE = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_child(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``strongroom ARGS`` in a child process; its result and its own peak RSS in bytes."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    with tempfile.NamedTemporaryFile("r") as peak:
        result = subprocess.run([sys.executable, "-c", _MEASURE, peak.name, exe, *args],
                                capture_output=True, text=True, timeout=600)
        return result, int(peak.read()) * 1024


@pytest.fixture
def hostile_vault(tmp_path, cli) -> tuple[str, Path]:
    """A vault with one backed-up item, and a 1 GiB sparse fake pack planted in it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("kept safe\n" * 1000)
    (src / "b.bin").write_bytes(os.urandom(200_000))
    url = str(tmp_path / "vault")
    assert cli("vault", "create", url).exit_code == 0
    assert cli("--vault", url, "protect", "files", "docs", "--path", str(src)).exit_code == 0
    assert cli("--vault", url, "backup", "docs").exit_code == 0
    plant_sparse_pack(Path(url), FAKE_ID, GIB, GIB - 8 - 64)
    return url, src


class TestFakePackCostsLittle:
    def assert_clean(self, result: subprocess.CompletedProcess, peak: int, codes: tuple[int, ...]) -> None:
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
        assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB"

    def test_backup_adopting_it(self, hostile_vault):
        """A backup lists the fake pack as unindexed, tries to adopt it, and goes on: bounded memory."""
        url, _ = hostile_vault
        result, peak = run_child("--vault", url, "backup", "docs")
        self.assert_clean(result, peak, (0,))
        assert Path(url, pack_name(FAKE_ID)).stat().st_size == GIB  # left for verify to name

    def test_verify(self, hostile_vault):
        """Plain and --read-data verify name the fake pack as damaged: bounded memory, exit 51."""
        url, _ = hostile_vault
        result, peak = run_child("--vault", url, "vault", "verify")
        self.assert_clean(result, peak, (0, 51))
        result, peak = run_child("--vault", url, "vault", "verify", "--read-data")
        self.assert_clean(result, peak, (51,))
        assert FAKE_ID in result.stderr and "damaged" in result.stderr

    def test_rebuild_index_and_repair(self, hostile_vault):
        """rebuild-index and repair (dry run) report the fake pack: bounded memory, no traceback."""
        url, _ = hostile_vault
        result, peak = run_child("--vault", url, "vault", "repair")
        self.assert_clean(result, peak, (0, 53))
        assert FAKE_ID in result.stdout + result.stderr
        result, peak = run_child("--vault", url, "vault", "rebuild-index")
        self.assert_clean(result, peak, (0,))
        assert FAKE_ID in result.stdout + result.stderr
        result, peak = run_child("--vault", url, "restore", "docs", "--target", str(Path(url).parent / "out"))
        self.assert_clean(result, peak, (0,))


class CountingStore:
    """A store proxy that records the bytes each read asked for."""

    def __init__(self, store) -> None:
        self.store = store
        self.asked = 0

    def size(self, name):
        return self.store.size(name)

    def get_range(self, name, offset, length):
        self.asked += length
        return self.store.get_range(name, offset, length)

    def get(self, name):  # never used by read_trailer
        raise AssertionError("read_trailer read a whole pack")


class TestBounds:
    def test_bounds_fit_what_writers_make(self):
        """The bounds hold a full pack of the smallest blobs and one more of the largest."""
        assert MAX_PACK_BLOBS * Envelope.OVERHEAD >= PACK_TARGET_SIZE
        assert MAX_TRAILER_LENGTH >= 5 + 45 * MAX_PACK_BLOBS + Envelope.OVERHEAD
        assert MAX_TRAILER_LENGTH < 10 * 2**20 and MAX_PACK_SIZE < 82 * 2**20

    def test_writer_stops_where_readers_stop(self):
        """A PackWriter refuses a blob that would take the pack past what readers accept."""
        writer = PackWriter(Envelope(os.urandom(32), b"kid1"))
        writer._entries = [None] * MAX_PACK_BLOBS  # a pack already holding the most blobs
        with pytest.raises(ValueError, match="readers accept"):
            writer.add(bytes(32), KIND_DATA, bytes(40), 2)

    @pytest.mark.parametrize("claim", [MAX_TRAILER_LENGTH + 1, 20 * 2**20])
    def test_long_trailer_claim_read_no_further(self, tmp_path, claim):
        """A footer claiming a trailer beyond the bound is refused after the tail read alone."""
        from strongroom.storage import open_store

        store = open_store(str(tmp_path / "v"), create=True)
        plant_sparse_pack(tmp_path / "v", FAKE_ID, 30 * 2**20, claim)
        counting = CountingStore(store)
        with pytest.raises(IntegrityError, match=f"at most {MAX_TRAILER_LENGTH}"):
            read_trailer(counting, FAKE_ID, Envelope(os.urandom(32), b"kid1"))
        assert counting.asked == 64 * 1024

    def test_oversized_pack_is_not_read_at_all(self, tmp_path):
        """A pack larger than any pack can be is refused from its size alone."""
        from strongroom.storage import open_store

        store = open_store(str(tmp_path / "v"), create=True)
        plant_sparse_pack(tmp_path / "v", FAKE_ID, MAX_PACK_SIZE + 1, 100)
        counting = CountingStore(store)
        with pytest.raises(IntegrityError, match="larger than any pack"):
            read_trailer(counting, FAKE_ID, Envelope(os.urandom(32), b"kid1"))
        assert counting.asked == 0

    def test_on_s3(self, strongroom_s3_location):
        """On S3 too, a trailer claim beyond the bound costs one 64 KiB ranged read."""
        store = strongroom_s3_location.open_store(create=True)
        size = 12 * 2**20
        body = bytearray(size)
        struct.pack_into("<I4s", body, size - 8, size - 8 - 1024, b"SRPK")
        store.put(pack_name(FAKE_ID), body)
        counting = CountingStore(store)
        with pytest.raises(IntegrityError, match="does not fit"):
            read_trailer(counting, FAKE_ID, Envelope(os.urandom(32), b"kid1"))
        assert counting.asked == 64 * 1024
