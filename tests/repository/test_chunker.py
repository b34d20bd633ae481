"""Content-defined chunking: determinism, bounds, average size and the dedup property."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.repository.chunker import Chunker, ChunkerParams, fastcdc_arguments

MIB = 1024 * 1024
SMALL = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768)


def random_bytes(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def chunk_list(chunker: Chunker, data: bytes) -> list[bytes]:
    return [bytes(view) for view in chunker.chunks(io.BytesIO(data))]


def boundaries(chunks: list[bytes]) -> list[int]:
    return list(np.cumsum([len(c) for c in chunks]))


class Dribble:
    """A stream that returns at most ``step`` bytes per call, through read() only."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, n: int) -> bytes:
        return self._data.read(min(n, self._step))


@pytest.fixture(scope="module")
def data16():
    return random_bytes(16 * MIB, seed=1)


class TestChunkerParams:
    def test_defaults_match_the_design(self):
        """The defaults are 512 KiB / 1 MiB / 8 MiB with seed 0."""
        p = ChunkerParams()
        assert (p.min_size, p.avg_size, p.max_size, p.seed) == (512 * 1024, MIB, 4 * MIB, 0)

    def test_dict_round_trip(self):
        """to_dict and from_dict are inverse, and unknown keys are refused."""
        p = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=42)
        assert ChunkerParams.from_dict(p.to_dict()) == p
        with pytest.raises(ValueError):
            ChunkerParams.from_dict({**p.to_dict(), "extra": 1})

    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(min_size=MIB, avg_size=MIB, max_size=8 * MIB),
            dict(min_size=2 * MIB, avg_size=4 * MIB, max_size=8 * MIB),
            dict(max_size=32 * MIB),
            dict(seed=-1),
            dict(seed=2**64),
            dict(avg_size=1.5),
        ],
    )
    def test_invalid_params_are_refused(self, kwargs):
        """Sizes out of order or out of the cutter's range, and bad seeds, are refused."""
        with pytest.raises((ValueError, TypeError)):
            ChunkerParams(**kwargs)

    def test_calibration_targets_the_average(self):
        """The cutter arguments for the defaults use normalised chunking with a centre below avg."""
        centre, nc = fastcdc_arguments(ChunkerParams())
        assert 512 * 1024 < centre < MIB
        assert nc in (1, 2, 3)


class TestChunker:
    def test_concatenation_is_the_input(self, data16):
        """The chunks put together are exactly the input."""
        assert b"".join(chunk_list(Chunker(ChunkerParams()), data16)) == data16

    def test_sizes_within_bounds(self, data16):
        """Every chunk but the last is within [min, max]; the last is at most max."""
        p = ChunkerParams()
        sizes = [len(c) for c in chunk_list(Chunker(p), data16 + bytes(20 * MIB))]
        assert all(p.min_size <= s <= p.max_size for s in sizes[:-1])
        assert 0 < sizes[-1] <= p.max_size
        assert max(sizes) == p.max_size  # the zero run is cut at max_size

    def test_deterministic_whatever_the_reads(self, data16):
        """Same params and content give the same boundaries, via readinto or small reads."""
        chunker = Chunker(ChunkerParams())
        first = boundaries(chunk_list(chunker, data16))
        assert boundaries(chunk_list(Chunker(ChunkerParams()), data16)) == first
        dribbled = [bytes(v) for v in chunker.chunks(Dribble(data16, 100_003))]
        assert boundaries(dribbled) == first

    def test_seed_changes_boundaries(self, data16):
        """Another gear seed cuts the same content elsewhere."""
        plain = boundaries(chunk_list(Chunker(ChunkerParams()), data16))
        seeded = boundaries(chunk_list(Chunker(ChunkerParams(seed=12345)), data16))
        assert plain != seeded
        assert len(set(plain[:-1]) & set(seeded[:-1])) <= 1

    def test_empty_and_small_streams(self):
        """An empty stream yields nothing; a stream under min_size is one chunk."""
        chunker = Chunker(ChunkerParams())
        assert chunk_list(chunker, b"") == []
        assert chunk_list(chunker, b"tiny file") == [b"tiny file"]
        assert chunk_list(chunker, bytes(512 * 1024)) == [bytes(512 * 1024)]

    def test_average_size_near_target(self):
        """On 64 MiB of random data the mean chunk size is within 15 % of avg_size."""
        sizes = [
            len(v)
            for v in Chunker(ChunkerParams()).chunks(io.BytesIO(random_bytes(64 * MIB, seed=3)))
        ]
        mean = sum(sizes) / len(sizes)
        assert 0.85 * MIB <= mean <= 1.15 * MIB

    def test_small_params_average(self):
        """The calibration also holds for small parameters (many chunks, tight estimate)."""
        sizes = [len(v) for v in Chunker(SMALL).chunks(io.BytesIO(random_bytes(8 * MIB, seed=4)))]
        mean = sum(sizes[:-1]) / (len(sizes) - 1)
        assert abs(mean - SMALL.avg_size) <= 0.06 * SMALL.avg_size

    def test_edit_in_the_middle_keeps_most_chunks(self):
        """Inserting bytes in the middle of a file changes only the chunks around the edit."""
        chunker = Chunker(ChunkerParams())
        original = random_bytes(32 * MIB, seed=5)
        middle = len(original) // 2
        edited = original[:middle] + b"inserted bytes" * 7 + original[middle + 50 :]
        before = set(chunk_list(chunker, original))
        after = chunk_list(chunker, edited)
        shared = sum(1 for c in after if c in before)
        assert shared >= len(after) - 3
        assert shared < len(after)

    def test_views_are_reused(self):
        """Each view is valid until the next one: keeping copies preserves the data."""
        data = random_bytes(4 * MIB, seed=6)
        copies = [bytes(v) for v in Chunker(SMALL).chunks(io.BytesIO(data))]
        assert b"".join(copies) == data
        assert len(copies) > 100


class TestChunkerProperties:
    @settings(max_examples=40, deadline=None)
    @given(data=st.binary(max_size=200_000), seed=st.integers(min_value=0, max_value=2**63 - 1))
    def test_lossless_and_bounded(self, data, seed):
        """Any input is cut losslessly into chunks no larger than max_size."""
        params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=seed)
        chunks = chunk_list(Chunker(params), data)
        assert b"".join(chunks) == data
        assert all(0 < len(c) <= params.max_size for c in chunks)
        assert all(len(c) >= params.min_size for c in chunks[:-1])
