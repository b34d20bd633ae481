"""Large objects of a local vault are written past the page cache (O_DIRECT), byte for
byte, and where a filesystem refuses that, through the page cache as before."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import random

import pytest

from bench.pagecache import resident_pages
from strongroom.storage import directwrite
from strongroom.storage.fsspec_store import FsspecStore
from strongroom.testing import unavailable

MIB = 1024 * 1024
SIZES = [0, 1, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345, 17 * MIB + 5]


@pytest.fixture(autouse=True)
def _fresh_refusals(monkeypatch):
    """Each test starts with no filesystem known to refuse O_DIRECT."""
    monkeypatch.setattr(directwrite, "_refused_devices", set())


def _data(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def _round_trip(folder, size: int) -> None:
    """Put an object of ``size`` bytes into a local store at ``folder``; it reads back the same."""
    store = FsspecStore(None, str(folder))
    data = _data(size)
    store.put("data/ab/obj", data)
    assert store.get("data/ab/obj") == data


def _direct_allowed(folder) -> bool:
    try:
        fd = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | directwrite.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    os.unlink(folder / "probe")
    return True


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("given", ["bytes", "bytearray view"])
def test_objects_read_back_byte_for_byte(tmp_path, size, given):
    """Every size around the block size, the direct threshold and the stage size, given as
    read-only bytes and as a view of a writable buffer (a pack's), reads back the same."""
    store = FsspecStore(None, str(tmp_path))
    data = _data(size)
    store.put("data/ab/obj", data if given == "bytes" else memoryview(bytearray(data)))
    assert store.get("data/ab/obj") == data
    assert os.path.getsize(tmp_path / "data/ab/obj") == size
    assert [p.name for p in (tmp_path / "data/ab").iterdir()] == ["obj"]  # no tmp file left


def test_a_large_object_does_not_fill_the_page_cache(tmp_path, monkeypatch):
    """An 8 MiB object just written is (almost) not in the page cache; the same object
    written through the page cache is: the measure sees the difference."""
    if not _direct_allowed(tmp_path):
        unavailable(f"the filesystem of {tmp_path} refuses O_DIRECT")
    store = FsspecStore(None, str(tmp_path))
    store.put("data/ab/direct", _data(8 * MIB + 100))
    resident, pages = resident_pages(tmp_path / "data/ab/direct")
    assert resident <= pages // 8, (resident, pages)
    assert store.get("data/ab/direct") == _data(8 * MIB + 100)

    monkeypatch.setattr(directwrite, "DIRECT_FROM", 1 << 62)
    store.put("data/ab/cached", _data(8 * MIB + 100))
    resident, pages = resident_pages(tmp_path / "data/ab/cached")
    assert resident >= pages * 7 // 8, (resident, pages)


def test_small_objects_go_through_the_page_cache(tmp_path, monkeypatch):
    """Below DIRECT_FROM no file is opened with O_DIRECT."""
    opened = []
    real_open = os.open
    monkeypatch.setattr(directwrite.os, "open", lambda p, f, m=0o777: opened.append(f) or real_open(p, f, m))
    FsspecStore(None, str(tmp_path)).put("index/small", _data(directwrite.DIRECT_FROM - 1))
    assert opened and not any(f & directwrite.O_DIRECT for f in opened)


def test_a_filesystem_that_refuses_at_open(tmp_path, monkeypatch):
    """EINVAL for O_DIRECT at open: the object is written through the page cache, and that
    filesystem is not asked again."""
    tries = []
    real_open = os.open

    def refusing_open(path, flags, mode=0o777):
        if flags & directwrite.O_DIRECT:
            tries.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(directwrite.os, "open", refusing_open)
    store = FsspecStore(None, str(tmp_path))
    (tmp_path / "data/ab").mkdir(parents=True)
    for n in (3 * MIB + 7, 2 * MIB):
        store.put(f"data/ab/o{n}", _data(n))
        assert store.get(f"data/ab/o{n}") == _data(n)
    assert len(tries) == 1


@pytest.mark.parametrize("after", [0, 1, 3])
def test_a_filesystem_that_refuses_a_write(tmp_path, monkeypatch, after):
    """EINVAL at the first direct write, or after some: the rest goes through the page
    cache from where the direct writes stopped, and the object reads back the same."""
    if not _direct_allowed(tmp_path):
        unavailable(f"the filesystem of {tmp_path} refuses O_DIRECT")
    real_write = os.write
    writes = []

    def refusing_write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & directwrite.O_DIRECT:
            writes.append(len(data))
            if len(writes) > after:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(directwrite.os, "write", refusing_write)
    _round_trip(tmp_path, 5 * MIB + 333)
    assert len(writes) == after + 1
    assert os.stat(tmp_path).st_dev in directwrite._refused_devices


def test_a_short_direct_write(tmp_path, monkeypatch):
    """A direct write that writes less than asked (allowed by POSIX): the rest goes through
    the page cache and the object reads back the same."""
    if not _direct_allowed(tmp_path):
        unavailable(f"the filesystem of {tmp_path} refuses O_DIRECT")
    real_write = os.write
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        if len(calls) == 2:
            return real_write(fd, memoryview(data)[:8192])
        return real_write(fd, data)

    monkeypatch.setattr(directwrite.os, "write", short_write)
    _round_trip(tmp_path, 4 * MIB + 5)
    assert len(calls) > 2  # the rest went on after the short write
