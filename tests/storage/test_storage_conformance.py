"""The Store contract (strongroom.testing.StoreContract) on every built-in store.

Memory, local folders, fsspec's memory filesystem, a non-atomic remote filesystem, SFTP
against OpenSSH on loopback and S3 against an S3 server on loopback all run the same
suite; the local and non-atomic classes add what is particular to them.
"""

from __future__ import annotations

import os
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from strongroom.errors import ObjectNotFound
from strongroom.storage import FsspecStore, MemoryStore, RetryingStore, capabilities_of, open_store
from strongroom.testing import StoreContract

class TestMemoryStore(StoreContract):
    """MemoryStore keeps the Store contract."""

    @pytest.fixture
    def store(self):
        return MemoryStore()


class TestLocalFsspecStore(StoreContract):
    """FsspecStore on the local filesystem keeps the Store contract, plus atomic puts."""

    @pytest.fixture
    def store(self, tmp_path):
        return FsspecStore(fsspec.filesystem("file"), str(tmp_path / "vault"))

    def test_tmp_leftovers_are_never_listed(self, store):
        """A tmp file left by a crashed put is invisible to list."""
        store.put("data/ab/pack", b"x")
        root = store.root
        for rel in ("data/ab/.tmp-deadbeef", ".tmp-0011", "data/.tmp-22"):
            with open(os.path.join(root, rel), "wb") as f:
                f.write(b"partial")
        assert sorted(store.list()) == ["data/ab/pack"]
        assert list(store.list("data/ab/.")) == []

    def test_put_leaves_no_tmp_file_and_private_mode(self, store):
        """After a put only the object is in its directory, readable by its owner only."""
        store.put("keys/k1", b"secret-ish")
        directory = os.path.join(store.root, "keys")
        assert os.listdir(directory) == ["k1"]
        assert os.stat(os.path.join(directory, "k1")).st_mode & 0o777 == 0o600

    def test_failed_put_keeps_the_old_object(self, store, monkeypatch):
        """A put that fails while writing leaves the previous object whole and no tmp file."""
        store.put("settings/s", b"old contents")
        real_write = os.write

        def failing_write(fd, data):
            real_write(fd, bytes(data)[:3])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", failing_write)
        with pytest.raises(Exception) as info:
            store.put("settings/s", b"new contents that never land")
        monkeypatch.undo()
        assert "No space left" in str(info.value)
        assert store.get("settings/s") == b"old contents"
        assert os.listdir(os.path.join(store.root, "settings")) == ["s"]

    def test_name_below_an_object_is_not_found(self, store):
        """Reading 'a/b' when 'a' is an object raises ObjectNotFound, not a raw OSError."""
        store.put("a", b"x")
        with pytest.raises(ObjectNotFound):
            store.get("a/b")
        assert not store.exists("a/b")


class TestFsspecMemoryThroughOpenStore(StoreContract):
    """open_store('memory://...') (fsspec's memory filesystem, retried) keeps the contract."""

    @pytest.fixture
    def store(self):
        root = f"memory://strongroom-tests/{uuid.uuid4().hex}"
        store = open_store(root, create=True)
        assert isinstance(store, RetryingStore) and isinstance(store.inner, FsspecStore)
        yield store
        store.inner.fs.rm(store.inner.root, recursive=True)


class _FakeSftp(MemoryFileSystem):
    """A memory filesystem posing as one whose writes are not atomic."""

    protocol = "fakesftp"
    piped: list[str] = []

    def pipe_file(self, path, value, **kwargs):
        self.piped.append(path)
        return super().pipe_file(path, value, **kwargs)


class TestNonAtomicRemoteFsspecStore(StoreContract):
    """On remote filesystems without atomic writes, puts go through a tmp name and a rename."""

    @pytest.fixture
    def store(self):
        fs = _FakeSftp(skip_instance_cache=True, global_store=False)
        _FakeSftp.piped = []
        return FsspecStore(fs, "/vault")

    def test_put_writes_a_tmp_name_then_renames(self, store):
        """The bytes are first written under a .tmp- name in the same directory."""
        store.put("data/ab/p", b"payload")
        assert len(_FakeSftp.piped) == 1
        assert _FakeSftp.piped[0].startswith("/vault/data/ab/.tmp-")
        assert store.get("data/ab/p") == b"payload"
        assert store.fs.find("/vault") == ["/vault/data/ab/p"]


class TestSftpStore(StoreContract):
    """SFTP (sshfs) against OpenSSH on loopback keeps the Store contract."""

    @pytest.fixture
    def store(self, strongroom_sftp_location):
        return strongroom_sftp_location.open_store(create=True)

    def test_ranges_are_honoured(self, store):
        """Ranged reads return the range only (sshfs's cat_file would return the whole file)."""
        data = os.urandom(300_000)
        store.put("data/00/p", data)
        assert store.get_range("data/00/p", 123_456, 10) == data[123_456:123_466]

    def test_remote_capabilities(self, store):
        """An SFTP store is remote, renames into place and keeps several requests in flight."""
        caps = capabilities_of(store)
        assert caps.remote and caps.atomic_rename and caps.concurrency > 4
        assert not caps.object_lock


class TestS3Store(StoreContract):
    """S3 (s3fs) against an S3 server on loopback keeps the Store contract."""

    @pytest.fixture
    def store(self, strongroom_s3_location):
        return strongroom_s3_location.open_store(create=True)

    def test_remote_capabilities(self, store):
        """An S3 store is remote, puts in one request and can report object lock."""
        caps = capabilities_of(store)
        assert caps.remote and not caps.atomic_rename and caps.concurrency > 4
        assert caps.object_lock

