"""The zero-run search of the chunker's window (repository/zeroruns.py): its answers are
those of a byte-by-byte look, through libc's memcmp and through numpy alike."""

from __future__ import annotations

import io

import numpy as np
import pytest

from strongroom.repository import zeroruns
from strongroom.repository.chunker import Chunker, ChunkerParams
from strongroom.repository.zeroruns import FINE, ZeroRuns, _memcmp


def plain_leading(data: bytes, start: int, stop: int) -> int:
    return (stop - start) - len(data[start:stop].lstrip(b"\0")) if stop > start else 0


def plain_trailing(data: bytes, begin: int, stop: int) -> int:
    return (stop - begin) - len(data[begin:stop].rstrip(b"\0")) if stop > begin else 0


def holey_window(rng: np.random.Generator, size: int) -> bytearray:
    """Random bytes with holes of every size, some with a lone non-zero byte inside."""
    data = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    for _ in range(40):
        at = int(rng.integers(0, size))
        length = int(rng.choice([1, 7, 64, FINE - 1, FINE + 1, 3 * FINE, 70_000, 300_000]))
        data[at:at + length] = bytes(min(length, size - at))
        if rng.random() < 0.3 and length > 2:
            data[at + int(rng.integers(0, min(length, size - at)))] = 1 + int(rng.integers(0, 255))
    return data


@pytest.fixture(params=["memcmp", "numpy"])
def way(request, monkeypatch):
    """Both ways of telling zero ranges: libc's memcmp (ctypes) and numpy."""
    if request.param == "numpy":
        monkeypatch.setattr(zeroruns, "_memcmp", lambda: None)
    return request.param


def test_memcmp_is_found_here():
    """On this system the search goes through memcmp (so the other test runs of it mean it)."""
    assert ZeroRuns(bytearray(64), 64)._memcmp is not None


def test_zero_ranges_and_run_lengths_are_those_of_a_plain_look(way):
    rng = np.random.default_rng(11)
    size = 1 << 20
    window = holey_window(rng, size)
    runs = ZeroRuns(window, 2048)
    assert (runs._memcmp is not None) == (way == "memcmp")
    data = bytes(window)
    zeros = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0)
    for _ in range(2000):
        a, b = sorted(int(x) for x in rng.integers(0, size + 1, 2))
        if rng.random() < 0.5:  # in a hole more often than chance would
            a = int(zeros[int(rng.integers(0, len(zeros)))])
            b = min(size, a + int(rng.integers(1, 400_000)))
        assert runs.all_zero(a, b) == (data[a:b].count(0) == b - a)
        assert runs.leading(a, b) == plain_leading(data, a, b)
        assert runs.trailing(a, b) == plain_trailing(data, a, b)


def test_chunks_are_the_same_either_way(way, monkeypatch):
    """Holey streams cut the same through memcmp or numpy (the chunker's own tests compare
    its cuts with a reference; this ties the two ways together on larger holes)."""
    rng = np.random.default_rng(12)
    params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=77, zero_run=2048)
    data = bytes(holey_window(rng, 3 << 20))
    got = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))]
    assert b"".join(got) == data
    monkeypatch.setattr(zeroruns, "_memcmp", (lambda: None) if way == "memcmp" else _memcmp)
    other = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))]
    assert got == other
