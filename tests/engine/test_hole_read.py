"""Sparse files read without reading their holes (strongroom.engine.holeread): the bytes of
a plain read, in any read size, from real sparse files; and a backup of a sparse file has
the chunks of a dense file with the same bytes, and restores byte for byte."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from strongroom.engine import holeread
from strongroom import data_extents
from strongroom.engine.holeread import HoleSkippingReader
from strongroom.vault import Vault

KIB = 1024
MIB = 1024 * KIB


def _sparse(path, size: int, extents: list[tuple[int, bytes]]) -> bytes:
    """A sparse file of ``size`` bytes with ``extents`` written (the rest never written:
    holes), and its bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in extents:
            f.seek(offset)
            f.write(data)
    with open(path, "rb") as f:
        return f.read()


def _read_all(reader: HoleSkippingReader, step: int) -> bytes:
    buffer = bytearray(step)
    out = bytearray()
    while n := reader.readinto(buffer):
        out += buffer[:n]
    return bytes(out)


def _holes_supported(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < os.fstat(fd).st_size
    except OSError:
        return False
    finally:
        os.close(fd)


LAYOUTS = {
    "hole first": (3 * MIB, [(2 * MIB, os.urandom(100 * KIB))]),
    "hole last": (3 * MIB, [(0, os.urandom(700 * KIB))]),
    "many extents": (4 * MIB, [(i * 128 * KIB, os.urandom(64 * KIB)) for i in range(0, 32, 3)]),
    "all hole": (1 * MIB, []),
    "no hole": (1 * MIB, [(0, os.urandom(1 * MIB))]),
    "unaligned data": (2 * MIB + 17, [(5, b"x" * 3), (1 * MIB + 4095, os.urandom(9000)), (2 * MIB + 16, b"y")]),
}


class TestDataExtents:
    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    def test_extents_cover_the_data_and_only_holes_lie_outside(self, tmp_path, layout):
        """Every byte written lies in an extent, every byte outside the extents is zero, the
        extents are in order and apart; a part of the file gives the extents clipped to it."""
        size, written = LAYOUTS[layout]
        content = _sparse(tmp_path / "f", size, written)
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            for start, end in [(0, size), (size // 3, size - size // 5), (size, size + 4096)]:
                extents = data_extents(fd, start, end)
                if extents is None:
                    pytest.skip("this file system cannot say where its holes are")
                inside = bytearray(size)
                last = start
                for first, stop in extents:
                    assert last <= first < stop <= min(end, size)
                    inside[first:stop] = b"\1" * (stop - first)
                    last = stop
                for offset, data in written:
                    for at in range(max(offset, start), min(offset + len(data), end)):
                        assert inside[at], (offset, at)
                outside = bytes(b for at, b in enumerate(content[start:end], start) if not inside[at])
                assert not outside.strip(b"\0")
        finally:
            os.close(fd)

    def test_a_sparse_file_gives_only_its_data(self, tmp_path):
        """On a file system that reports holes, a 3 MiB file with 4 KiB written at 1 MiB has
        one extent, the block written."""
        _sparse(tmp_path / "f", 3 * MIB, [(1 * MIB, b"d" * 4096)])
        if not _holes_supported(tmp_path / "f"):
            pytest.skip("this file system does not report holes")
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            assert data_extents(fd, 0, 3 * MIB) == [(1 * MIB, 1 * MIB + 4096)]
            assert data_extents(fd, 1 * MIB + 100, 1 * MIB + 200) == [(1 * MIB + 100, 1 * MIB + 200)]
            assert data_extents(fd, 2 * MIB, 3 * MIB) == []
        finally:
            os.close(fd)

    def test_none_when_holes_cannot_be_asked_for(self, tmp_path, monkeypatch):
        """Without ``SEEK_DATA``, or when ``lseek`` refuses it, the answer is None: all of
        the range may hold data."""
        _sparse(tmp_path / "f", 1 * MIB, [(0, b"x")])
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            monkeypatch.setattr(holeread, "_SEEK_DATA", None)
            assert data_extents(fd, 0, 1 * MIB) is None
            monkeypatch.undo()

            def refuse(fd, pos, how):
                raise OSError(errno.EINVAL, "Invalid argument")
            monkeypatch.setattr(holeread.os, "lseek", refuse)
            assert data_extents(fd, 0, 1 * MIB) is None
        finally:
            os.close(fd)


class TestHoleSkippingReader:
    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("step", [1000, 4096, 64 * KIB, 1 * MIB + 3, 8 * MIB])
    def test_returns_the_bytes_of_a_plain_read(self, tmp_path, layout, step):
        """Whatever the layout of holes and data and the size of the reads, the reader
        returns exactly the file's bytes, then 0."""
        size, extents = LAYOUTS[layout]
        expected = _sparse(tmp_path / "f", size, extents)
        with open(tmp_path / "f", "rb", buffering=0) as f:
            reader = HoleSkippingReader(f.fileno())
            assert _read_all(reader, step) == expected
            assert reader.readinto(bytearray(10)) == 0

    def test_holes_are_not_read(self, tmp_path, monkeypatch):
        """Only the data extents are read from the file (``pread``); the holes are filled in."""
        extents = [(i * 256 * KIB, os.urandom(64 * KIB)) for i in range(16)]
        expected = _sparse(tmp_path / "f", 4 * MIB, extents)
        if not _holes_supported(tmp_path / "f"):
            pytest.skip("this file system does not report holes")
        asked: list[int] = []
        real = os.preadv
        monkeypatch.setattr(holeread.os, "preadv",
                            lambda fd, buffers, offset: asked.append(sum(map(len, buffers))) or real(fd, buffers, offset))
        with open(tmp_path / "f", "rb", buffering=0) as f:
            assert _read_all(HoleSkippingReader(f.fileno()), 8 * MIB) == expected
        assert sum(asked) == 16 * 64 * KIB

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("step", [4096, 100 * KIB + 3, 8 * MIB])
    def test_zeros_lists_the_holes_it_filled_in(self, tmp_path, layout, step):
        """After each read, ``zeros`` lists in order the ranges of the buffer that were
        holes: zero bytes, outside the file's data, and with the bytes read they make up
        the whole read (long holes are cleared by memset, short ones copied).  Where the
        file system reports no holes (or cannot be asked), the whole file is data and
        nothing may be listed."""
        size, extents = LAYOUTS[layout]
        expected = _sparse(tmp_path / "f", size, extents)
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        try:
            data = data_extents(fd, 0, size)
            if data is None:
                data = [(0, size)]
            reader = HoleSkippingReader(fd)
            buffer = bytearray(b"\xff" * step)  # not zero before: the zeros are written
            pos = filled = 0
            while n := reader.readinto(buffer):
                last = 0
                for start, stop in reader.zeros:
                    assert last <= start < stop <= n
                    assert not buffer[start:stop].strip(b"\0")
                    assert not any(a < pos + stop and b > pos + start for a, b in data)
                    filled += stop - start
                    last = stop
                assert bytes(buffer[:n]) == expected[pos:pos + n]
                pos += n
        finally:
            os.close(fd)
        assert filled == size - sum(b - a for a, b in data)

    def test_without_seek_data_reads_everything(self, tmp_path, monkeypatch):
        """Where holes cannot be asked for, the whole file is read, with the same bytes."""
        expected = _sparse(tmp_path / "f", 3 * MIB, [(1 * MIB, os.urandom(5000))])
        monkeypatch.setattr(holeread, "_SEEK_DATA", None)
        asked: list[int] = []
        real = os.preadv
        monkeypatch.setattr(holeread.os, "preadv",
                            lambda fd, buffers, offset: asked.append(offset) or real(fd, buffers, offset))
        with open(tmp_path / "f", "rb", buffering=0) as f:
            assert _read_all(HoleSkippingReader(f.fileno()), 1 * MIB) == expected
        assert asked[:3] == [0, 1 * MIB, 2 * MIB]

    def test_a_file_that_grows_while_read_is_read_to_its_new_end(self, tmp_path):
        """Data appended after a trailing hole while the file is read is returned, as a plain
        read would return it; a file truncated while read ends where it now ends."""
        _sparse(tmp_path / "f", 2 * MIB, [(0, b"a" * 4096)])
        with open(tmp_path / "f", "rb", buffering=0) as f:
            reader = HoleSkippingReader(f.fileno())
            buffer = bytearray(1 * MIB)
            assert reader.readinto(buffer) == 1 * MIB
            with open(tmp_path / "f", "r+b") as w:
                w.seek(3 * MIB)
                w.write(b"tail")
            rest = _read_all(reader, 1 * MIB)
        assert len(rest) == 2 * MIB + 4 and rest.endswith(b"tail") and not rest[:-4].strip(b"\0")
        _sparse(tmp_path / "g", 4 * MIB, [(3 * MIB, b"z" * 4096)])
        with open(tmp_path / "g", "rb", buffering=0) as f:
            reader = HoleSkippingReader(f.fileno())
            assert reader.readinto(bytearray(1 * MIB)) == 1 * MIB
            os.truncate(tmp_path / "g", 1 * MIB + 10)
            assert _read_all(reader, 1 * MIB) == bytes(10)
        _sparse(tmp_path / "h", 4 * MIB, [(3 * MIB, b"z" * 4096)])
        with open(tmp_path / "h", "rb", buffering=0) as f:
            reader = HoleSkippingReader(f.fileno())
            assert reader.readinto(bytearray(1 * MIB)) == 1 * MIB
            os.truncate(tmp_path / "h", 100 * KIB)  # now shorter than what was read
            assert reader.readinto(bytearray(1 * MIB)) == 0
            assert reader.readinto(bytearray(1 * MIB)) == 0


class TestSparseBackup:
    def test_sparse_file_has_the_chunks_of_its_dense_twin(self, tmp_path, strongroom_isolated_home, monkeypatch):
        """A sparse file and a dense file with the same bytes back up to the same chunk
        ids, the sparse one without reading its holes, and both restore byte for byte (the
        sparse one with its holes)."""
        extents = [(i * 192 * KIB, os.urandom(64 * KIB)) for i in range(40)] + [(7 * MIB + 5, b"end")]
        src = tmp_path / "src"
        src.mkdir()
        data = _sparse(src / "sparse.img", 7 * MIB + 8, extents)
        (src / "dense.img").write_bytes(data)
        if not _holes_supported(src / "sparse.img"):
            pytest.skip("this file system does not report holes")
        vault = Vault.create(str(tmp_path / "vault"))
        vault.protect("files", "t", {"paths": [str(src)]})
        asked: list[int] = []
        real = os.preadv
        monkeypatch.setattr(holeread.os, "preadv",
                            lambda fd, buffers, offset: asked.append(sum(map(len, buffers))) or real(fd, buffers, offset))
        point = vault.backup("t")
        assert sum(asked) == 40 * 64 * KIB + 4096  # the extents, and the 4 KiB block that holds b"end"
        top = str(src).lstrip("/")
        entries = {e.name: e for e in vault.tree(point).listdir(top)}
        assert entries["sparse.img"].sparse and not entries["dense.img"].sparse
        assert entries["sparse.img"].chunks == entries["dense.img"].chunks
        assert len(entries["sparse.img"].chunks) > 3
        vault.restore("t", None, str(tmp_path / "out"))
        restored = tmp_path / "out" / top
        for name in ("sparse.img", "dense.img"):
            assert hashlib.sha256((restored / name).read_bytes()).digest() == hashlib.sha256(data).digest(), name
        assert os.stat(restored / "sparse.img").st_blocks * 512 < len(data)
