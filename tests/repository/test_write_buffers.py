"""The write path: the chunker's read window and zero runs, and the blob writer's pack buffers.

The chunker reads into one window per thread instead of a fresh buffer per stream: its
boundaries must be exactly pyfastcdc's stream cutter's, however the stream is read.  With
``zero_run`` (new vaults) runs of zeros are cut out: the chunks must be those of a plain
reference (find the runs, cut the data between them on its own, the runs in max_size
pieces), however the stream is read; vaults whose settings do not name it keep theirs.
Packs are written into buffers the writer reuses: every pack must still be whole and
readable, and a buffer must not be reused while a store still holds a view of it.
"""

from __future__ import annotations

import io
import os
import threading
import time

import attrs
import numpy as np
import pytest
from pyfastcdc.cy import FastCDC
from test_chunker import Dribble  # a stream that gives a few bytes per read

from strongroom.repository import blobwriter
from strongroom.repository.blobid import blob_id
from strongroom.repository.chunker import ZERO_RUN, Chunker, ChunkerParams, fastcdc_arguments
from strongroom.repository.envelope import KIND_DATA, Envelope
from strongroom.repository.pack import PackWriter, parse_pack, read_trailer
from strongroom.repository.repository import Repository
from strongroom.repository.masterkey import MasterKey
from strongroom.storage import MemoryStore

SMALL = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=99, zero_run=0)
ID_KEY = bytes(32)


def content(size: int, seed: int) -> bytes:
    """Random bytes with a run of zeros and a repeated stretch in the middle."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    quarter = size // 4
    return data[:quarter] + bytes(quarter) + data[:quarter] + data[3 * quarter :]


def reference(params: ChunkerParams, data: bytes) -> list[bytes]:
    avg, nc = fastcdc_arguments(params)
    cutter = FastCDC(avg, min_size=params.min_size, max_size=params.max_size, normalized_chunking=nc,
                     seed=params.gear_seed)
    return [bytes(c.data) for c in cutter.cut_stream(io.BytesIO(data))]


class TestChunkerWindow:
    @pytest.mark.parametrize("size", [0, 1, 2047, 2048, 32768, 65536 + 5, 300_001])
    def test_boundaries_are_the_stream_cutters(self, size):
        """Every size around the bounds cuts exactly as pyfastcdc's stream cutter does."""
        data = content(size, size)
        chunks = [bytes(v) for v in Chunker(SMALL).chunks(io.BytesIO(data))]
        assert chunks == reference(SMALL, data)

    @pytest.mark.parametrize("step", [1000, 4096, 40_000])
    def test_short_reads_cut_the_same(self, step):
        """A stream that returns short reads (read() only) is cut as one read whole."""
        data = content(200_000, 7)
        assert [bytes(v) for v in Chunker(SMALL).chunks(Dribble(data, step))] == reference(SMALL, data)

    def test_nested_streams_in_one_thread(self):
        """Two streams cut at once in one thread do not share a window."""
        a, b = content(100_000, 1), content(100_000, 2)
        chunker = Chunker(SMALL)
        out_a, out_b = [], []
        for va, vb in zip(chunker.chunks(io.BytesIO(a)), chunker.chunks(io.BytesIO(b))):
            out_a.append(bytes(va))
            out_b.append(bytes(vb))
        n = min(len(out_a), len(out_b))
        assert out_a[:n] == reference(SMALL, a)[:n]
        assert out_b[:n] == reference(SMALL, b)[:n]

    def test_threads_cut_the_same(self):
        """Threads cutting at once each get the stream cutter's chunks."""
        datas = [content(150_000, seed) for seed in range(4)]
        results: dict[int, list[bytes]] = {}

        def cut(i: int) -> None:
            results[i] = [bytes(v) for v in Chunker(SMALL).chunks(io.BytesIO(datas[i]))]

        threads = [threading.Thread(target=cut, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results[i] == reference(SMALL, datas[i]) for i in range(4))


class TestPackBuffers:
    def test_pack_in_a_given_buffer_is_whole(self):
        """A pack written into a reused buffer (dirty from an earlier, larger pack) parses."""
        env = Envelope(os.urandom(32), b"kid1")
        buffer = bytearray(os.urandom(4096))  # too small: the pack grows it
        for round_ in range(3):
            writer = PackWriter(env, buffer=buffer)
            plains = [os.urandom(300 * (round_ + 1)) for _ in range(5 - round_)]
            for plain in plains:
                bid = blob_id(ID_KEY, plain)
                writer.add(bid, KIND_DATA, env.seal(KIND_DATA, bid, plain), len(plain))
            data, entries = writer.finish()
            assert isinstance(data, memoryview)
            parsed = parse_pack(bytes(data), writer.pack_id, env)
            assert [e.blob_id for e in parsed] == [blob_id(ID_KEY, p) for p in plains]
            for entry, plain in zip(parsed, plains):
                sealed = bytes(data[entry.offset : entry.offset + entry.length])
                assert env.open(sealed, entry.blob_id, kind=KIND_DATA) == plain
            data.release()

    def test_backup_writer_reuses_buffers_and_packs_read_back(self, monkeypatch):
        """Many packs through a few reused buffers: every blob reads back."""
        buffers: dict[int, bytearray] = {}  # held: no id is reused

        class Recording(PackWriter):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                buffers[id(self.buffer)] = self.buffer

        monkeypatch.setattr(blobwriter, "PackWriter", Recording)
        repo = Repository(MemoryStore(), MasterKey.generate())
        plains = [os.urandom(20_000) + bytes([i % 256, i // 256]) for i in range(300)]
        with repo.writer(pack_size=64 * 1024) as writer:
            ids = [writer.add(KIND_DATA, p) for p in plains]
        assert writer.packs_written >= 70
        assert len(buffers) <= writer.packs_written // 3
        for bid, plain in zip(ids, plains):
            assert repo.get_blob(bid) == plain
        for name in repo.store.list("data/"):
            pack_id = name.rpartition("/")[2]
            assert read_trailer(repo.store, pack_id, repo.envelope)

    def test_store_keeping_a_view_keeps_the_buffer(self):
        """A store that keeps a view of what it was given: that buffer is never reused."""
        kept: list[memoryview] = []

        class Keeping(MemoryStore):
            def put(self, name, data):
                super().put(name, data)
                if name.startswith("data/"):
                    kept.append(memoryview(data))

        repo = Repository(Keeping(), MasterKey.generate())
        plains = [os.urandom(30_000) for _ in range(40)]
        with repo.writer(pack_size=64 * 1024) as writer:
            for p in plains:
                writer.add(KIND_DATA, p)
        assert not writer._free_packs
        stored = {name.rpartition("/")[2]: repo.store.get(name) for name in repo.store.list("data/")}
        assert len(kept) == len(stored)
        assert sorted(bytes(v) for v in kept) == sorted(stored.values())


def zero_run_reference(params: ChunkerParams, data: bytes) -> list[bytes]:
    """The chunks of ``data`` with zero runs cut out, computed the plain way, all in memory."""
    avg, nc = fastcdc_arguments(params)
    cutter = FastCDC(avg, min_size=params.min_size, max_size=params.max_size, normalized_chunking=nc,
                     seed=params.gear_seed)
    out: list[bytes] = []
    is_zero = np.concatenate(([False], np.frombuffer(data, np.uint8) == 0, [False])).astype(np.int8)
    edges = np.diff(is_zero)
    pos = 0
    for begin, end in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()):
        if end - begin < params.zero_run:
            continue
        out.extend(bytes(c.data) for c in cutter.cut_buf(data[pos:begin]))
        out.extend(bytes(min(params.max_size, end - p)) for p in range(begin, end, params.max_size))
        pos = end
    out.extend(bytes(c.data) for c in cutter.cut_buf(data[pos:]))
    return out


def holey(rng: np.random.Generator, size: int, zero_run: int) -> bytes:
    """Random data with zero stretches shorter and longer than ``zero_run``, some very long."""
    parts, n = [], 0
    while n < size:
        roll = rng.random()
        if roll < 0.3:
            part = bytes(int(rng.integers(1, 4 * zero_run)))
        elif roll < 0.35:
            part = bytes(int(rng.integers(8 * zero_run, 40 * zero_run)))
        else:
            part = rng.integers(0, 256, int(rng.integers(1, 6 * zero_run)), dtype=np.uint8).tobytes()
        parts.append(part)
        n += len(part)
    return b"".join(parts)[:size]


class TestZeroRuns:
    def test_chunks_are_the_references_however_read(self):
        """Random holey content, several run lengths and seeds, whole and dribbled reads."""
        rng = np.random.default_rng(5)
        for _ in range(60):
            params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768,
                                   seed=int(rng.integers(1, 2**40)), zero_run=int(rng.choice([64, 1000, 2048])))
            data = holey(rng, int(rng.integers(0, 300_000)), params.zero_run)
            want = zero_run_reference(params, data)
            assert [bytes(v) for v in Chunker(params).chunks(io.BytesIO(data))] == want
            step = int(rng.integers(1, 50_000))
            assert [bytes(v) for v in Chunker(params).chunks(Dribble(data, step))] == want

    def test_an_edit_beside_a_hole_stays_there(self):
        """Data, a long hole, data: rewriting bytes just before the hole leaves every chunk
        from the hole on as it was."""
        rng = np.random.default_rng(9)
        params = ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, seed=3, zero_run=2048)
        head = rng.integers(1, 256, 20_000, dtype=np.uint8).tobytes()
        tail = rng.integers(1, 256, 50_000, dtype=np.uint8).tobytes()
        before = head + bytes(100_000) + tail
        after = head[:-100] + bytes(rng.integers(1, 256, 100, dtype=np.uint8)) + bytes(100_000) + tail
        old = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(before))]
        new = [bytes(v) for v in Chunker(params).chunks(io.BytesIO(after))]
        piece = bytes(params.max_size)
        assert new[new.index(piece):] == old[old.index(piece):]  # the hole and the tail: as they were
        assert sum(len(c) for c in new if c not in old) <= len(head)

    def test_new_params_cut_zero_runs_and_old_settings_do_not(self):
        """A new vault's parameters name zero_run; settings without it keep the old cuts."""
        new = ChunkerParams(seed=ChunkerParams.new_seed())
        assert new.zero_run == ZERO_RUN and new.to_dict()["zero_run"] == ZERO_RUN
        assert ChunkerParams.from_dict(new.to_dict()) == new
        old_doc = {"min_size": 524288, "avg_size": 1048576, "max_size": 4194304, "seed": 12345}
        old = ChunkerParams.from_dict(old_doc)
        assert old.zero_run == 0 and old.to_dict() == old_doc
        data = os.urandom(600_000) + bytes(3 * 1024 * 1024) + os.urandom(700_000)
        old_chunks = [bytes(v) for v in Chunker(old).chunks(io.BytesIO(data))]
        assert old_chunks == reference(old, data)  # the stream cutter's, as before zero runs
        cut = [bytes(v) for v in Chunker(attrs.evolve(old, zero_run=ZERO_RUN)).chunks(io.BytesIO(data))]
        assert bytes(3 * 1024 * 1024) in cut and cut != old_chunks

    @pytest.mark.parametrize("zero_run", [-1, 63, 4096])
    def test_bad_zero_runs_are_refused(self, zero_run):
        """zero_run is 0 or within [64, min_size]."""
        with pytest.raises(ValueError):
            ChunkerParams(min_size=2048, avg_size=8192, max_size=32768, zero_run=zero_run)


class TestPackBufferBound:
    def test_at_most_one_buffer_per_upload_and_the_open_pack(self, monkeypatch):
        """However fast blobs come, no more pack buffers are out than uploads run at once
        plus the open pack; slow uploads make adders wait rather than take more memory."""
        out: list[int] = []

        class Slow(MemoryStore):
            def put(self, name, data):
                if name.startswith("data/"):
                    time.sleep(0.01)
                super().put(name, data)

        repo = Repository(Slow(), MasterKey.generate())
        plains = [os.urandom(20_000) for _ in range(200)]
        with repo.writer(pack_size=64 * 1024) as writer:
            limit = writer._max_packs

            def add(chunk):
                for p in chunk:
                    writer.add(KIND_DATA, p)
                    out.append(writer._packs_out)

            threads = [threading.Thread(target=add, args=(plains[i::2],)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert max(out) <= limit
        assert all(repo.get_blob(blob_id_of(repo, p)) == p for p in plains)

    def test_failed_uploads_fail_the_adders_instead_of_hanging(self):
        """A store that refuses packs: adding raises its error (waiting adders wake up)."""

        class Refusing(MemoryStore):
            def put(self, name, data):
                if name.startswith("data/"):
                    raise OSError("disk full")
                super().put(name, data)

        repo = Repository(Refusing(), MasterKey.generate())
        writer = repo.writer(pack_size=64 * 1024)
        errors: list[BaseException] = []

        def add():
            try:
                for _ in range(400):
                    writer.add(KIND_DATA, os.urandom(20_000))
                writer.flush()
            except OSError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=add) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        writer.close()
        assert len(errors) == 2 and all("disk full" in str(e) for e in errors)


def blob_id_of(repo: Repository, plain: bytes) -> bytes:
    return repo.blob_id(plain)
