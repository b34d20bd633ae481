"""BlobWriter.add_many: the blobs and ids that ``add`` of each in turn gives, with one
search of the index for all of them."""

from __future__ import annotations

import os

import pytest

from strongroom.repository.envelope import KIND_DATA
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.repository import Repository
from strongroom.storage import MemoryStore


def test_ids_and_stored_blobs_are_those_of_add():
    repo = Repository(MemoryStore(), MasterKey.generate())
    old = [os.urandom(300) for _ in range(5)]
    with repo.writer() as writer:
        for data in old:
            writer.add(KIND_DATA, data)
    assert len(repo.index) == 5
    fresh = [os.urandom(200) for _ in range(4)]
    # blobs the vault has, a blob twice in one call, and new ones, in one call
    batch = [old[0], fresh[0], fresh[1], fresh[0], old[3], fresh[2], b"x" * 1000]
    with repo.writer(pack_size=4096) as writer:
        ids = writer.add_many(KIND_DATA, batch)
        again = writer.add_many(KIND_DATA, [fresh[2], fresh[3]])  # one added above, not yet uploaded
    assert ids == [repo.blob_id(data) for data in batch]
    assert again == [repo.blob_id(fresh[2]), repo.blob_id(fresh[3])]
    assert writer.new_blobs == 5  # fresh[0..3] and the run of x, each once
    assert len(repo.index) == 10
    for blob, data in zip(ids + again, batch + [fresh[2], fresh[3]]):
        assert repo.get_blob(blob) == data


def test_a_failure_leaves_the_blobs_not_stored_unknown(monkeypatch):
    """A blob whose sealing fails is not taken for stored: a later add stores it."""
    repo = Repository(MemoryStore(), MasterKey.generate())
    datas = [os.urandom(100) for _ in range(3)]
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise OSError("no more")

    with repo.writer() as writer:
        with monkeypatch.context() as patch:
            patch.setattr(repo.envelope, "prepare", failing)
            with pytest.raises(OSError):
                writer.add_many(KIND_DATA, datas)
        assert len(calls) == 1
        assert writer.add_many(KIND_DATA, datas) == [repo.blob_id(d) for d in datas]
    assert writer.new_blobs == 3
    for data in datas:
        assert repo.get_blob(repo.blob_id(data)) == data


def test_a_failure_while_sealing_into_the_pack_leaves_the_pack_whole(monkeypatch):
    """Encryption that fails inside the pack's buffer: the blob is not in the pack, the
    blobs around it are, and the pack reads back."""
    repo = Repository(MemoryStore(), MasterKey.generate())
    first, bad, last = (os.urandom(5000) for _ in range(3))
    real = repo.envelope.seal_prepared_into

    def failing_once(out, kind, name, body, compression):
        if name == repo.blob_id(bad):
            out[:10] = b"x" * 10  # wrote a little, then failed
            raise OSError("no more")
        return real(out, kind, name, body, compression)

    with repo.writer() as writer:
        writer.add(KIND_DATA, first)
        with monkeypatch.context() as patch:
            patch.setattr(repo.envelope, "seal_prepared_into", failing_once)
            with pytest.raises(OSError):
                writer.add(KIND_DATA, bad)
        writer.add(KIND_DATA, last)
        writer.add(KIND_DATA, bad)  # not taken for stored: stored now
    assert writer.new_blobs == 3
    for data in (first, bad, last):
        assert repo.get_blob(repo.blob_id(data)) == data
