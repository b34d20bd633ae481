"""Sparse files read without reading their holes (strongroom.engine.holeread): the bytes of
a plain read, in any read size, from real sparse files; and a backup of a sparse file has
the chunks of a dense file with the same bytes, and restores byte for byte."""

from __future__ import annotations

import hashlib
import os

import pytest

from strongroom.engine import holeread
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
