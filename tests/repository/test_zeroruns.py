"""The zero-run search of the chunker's window (repository/zeroruns.py): its answers are
those of a byte-by-byte look, through libc's memcmp and through the window's own count
alike, and with ranges noted as zero (a sparse file's holes) or without."""

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


@pytest.fixture(params=["memcmp", "count"])
def way(request, monkeypatch):
    """Both ways of telling zero ranges: libc's memcmp (ctypes) and the window's count."""
    if request.param == "count":
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
    """Holey streams cut the same through memcmp or count (the chunker's own tests compare
    its cuts with a reference; this ties the two ways together on larger holes)."""
    rng = np.random.default_rng(12)
    params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=77, zero_run=2048)
    data = bytes(holey_window(rng, 3 << 20))
    got = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))]
    assert b"".join(got) == data
    monkeypatch.setattr(zeroruns, "_memcmp", (lambda: None) if way == "memcmp" else _memcmp)
    other = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))]
    assert got == other


def zero_runs_of(data: bytes) -> list[tuple[int, int]]:
    """The maximal runs of zero bytes of ``data``, as ``(start, stop)``."""
    runs, at = [], 0
    while (at := data.find(b"\0", at)) >= 0:
        stop = len(data) - len(data[at:].lstrip(b"\0"))
        runs.append((at, stop))
        at = stop
    return runs


def some_of(rng: np.random.Generator, runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """About half of ``runs``, each whole or a part of it: ranges a stream may say it filled
    in as zero bytes."""
    noted = []
    for a, b in runs:
        if rng.random() < 0.5:
            continue
        if rng.random() < 0.5 and b - a > 2:
            a, b = sorted(int(x) for x in rng.integers(a, b + 1, 2))
        if b > a:
            noted.append((a, b))
    return noted


def test_noted_zeros_change_no_answer(way):
    """With parts of its zero runs noted as zero (in pieces that may touch), every answer
    is the one without notes, and that of a plain look."""
    rng = np.random.default_rng(21)
    size = 1 << 20
    window = holey_window(rng, size)
    data = bytes(window)
    runs = zero_runs_of(data)
    noted = ZeroRuns(window, 2048)
    for a, b in some_of(rng, runs):
        middle = (a + b) // 2
        noted.note_zeros(a, middle)
        noted.note_zeros(middle, b)
    assert noted._known_starts
    plain = ZeroRuns(window, 2048)
    starts = [a for a, _ in runs]
    for _ in range(3000):
        a, b = sorted(int(x) for x in rng.integers(0, size + 1, 2))
        if rng.random() < 0.5:  # in a run more often than chance would
            a = starts[int(rng.integers(0, len(starts)))] + int(rng.integers(0, 3))
            b = min(size, a + int(rng.integers(1, 400_000)))
        assert noted.all_zero(a, b) == (data[a:b].count(0) == b - a)
        assert noted.leading(a, b) == plain_leading(data, a, b)
        assert noted.trailing(a, b) == plain_trailing(data, a, b)
        before = min(size, a + int(rng.integers(1, 300_000)))
        assert noted.next_run(a, before, size) == plain.next_run(a, before, size)


def test_noted_zeros_are_not_searched(monkeypatch):
    """A run that starts in a range noted as zero is counted to the range's end without
    comparing a byte of it: what the search costs a hole of a disk image."""
    rng = np.random.default_rng(22)
    size, hole = 1 << 20, (100_000, 400_000)
    window = bytearray(rng.integers(1, 256, size, dtype=np.uint8).tobytes())
    window[hole[0]:hole[1]] = bytes(hole[1] - hole[0])
    compared: list[int] = []
    real = _memcmp()
    monkeypatch.setattr(zeroruns, "_memcmp", lambda: lambda a, b, n: compared.append(n) or real(a, b, n))
    plain = ZeroRuns(window, 2048)
    assert plain.leading(hole[0] + 5, size) == hole[1] - hole[0] - 5
    assert sum(compared) >= hole[1] - hole[0] - 5  # without the note, the hole is compared
    noted = ZeroRuns(window, 2048)
    noted.note_zeros(*hole)
    compared.clear()
    assert noted.leading(hole[0] + 5, size) == hole[1] - hole[0] - 5
    assert noted.trailing(0, hole[1] - 7) == hole[1] - hole[0] - 7
    assert noted.all_zero(hole[0], hole[1])
    assert noted.next_run(0, size, size) == hole[0]
    assert sum(compared) < 3 * 32 * 1024  # at most a few blocks at the hole's edges, not the hole


def test_noted_zeros_follow_the_window_when_it_moves(way):
    """After the window's bytes from ``by`` on move to its start (what the chunker does
    before it reads more), the notes moved with them give the answers of a plain look."""
    rng = np.random.default_rng(23)
    size = 1 << 20
    for _ in range(20):
        window = holey_window(rng, size)
        runs = ZeroRuns(window, 2048)
        for a, b in some_of(rng, zero_runs_of(bytes(window))):
            runs.note_zeros(a, b)
        by = int(rng.integers(1, size))
        window[:size - by] = window[by:]
        window[size - by:] = rng.integers(1, 256, by, dtype=np.uint8).tobytes()  # not noted: other bytes
        runs.moved(by)
        data = bytes(window)
        for _ in range(200):
            a, b = sorted(int(x) for x in rng.integers(0, size + 1, 2))
            assert runs.leading(a, b) == plain_leading(data, a, b)
            assert runs.trailing(a, b) == plain_trailing(data, a, b)


class _HoleyStream:
    """The bytes of ``data`` in reads of random sizes, each saying in ``zeros`` which of
    its bytes lie in ``holes`` (as a sparse file's reader does)."""

    def __init__(self, data: bytes, holes: list[tuple[int, int]], rng: np.random.Generator) -> None:
        self.data, self.holes, self.rng, self.pos = data, holes, rng, 0
        self.zeros: list[tuple[int, int]] = []

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self.data) - self.pos, int(self.rng.integers(1, 200_000)))
        start, stop = self.pos, self.pos + n
        buffer[:n] = self.data[start:stop]
        self.zeros = [(max(a, start) - start, min(b, stop) - start) for a, b in self.holes if a < stop and b > start]
        self.pos = stop
        return n


def test_chunks_of_a_stream_that_says_where_its_zeros_are_are_the_same():
    """A stream that lists the zero bytes it filled in is cut exactly as the same bytes
    read plainly, whatever the sizes of its reads (the notes move with the window)."""
    rng = np.random.default_rng(24)
    params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=78, zero_run=2048)
    for _ in range(8):
        data = bytes(holey_window(rng, int(rng.integers(1, 3 << 20)) // 8 * 8 + 8))
        want = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))]
        holes = some_of(rng, zero_runs_of(data))
        got = [bytes(v) for v in Chunker(params).chunks(_HoleyStream(data, holes, rng))]
        assert got == want
