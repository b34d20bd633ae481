"""The Store contract, checked the same way against every store implementation."""

from __future__ import annotations

import os
import threading
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from strongroom.errors import ObjectNotFound
from strongroom.storage import FsspecStore, MemoryStore, RetryingStore, open_store

ALLOWED = "AZaz09._-"


class StoreContract:
    """Behaviour every Store must have; subclasses provide the ``store`` fixture."""

    def test_put_then_get_returns_the_bytes(self, store):
        """An object reads back exactly as written."""
        store.put("strongroom.json", b'{"format": 1}')
        assert store.get("strongroom.json") == b'{"format": 1}'

    def test_put_accepts_bytearray_and_memoryview_and_copies_them(self, store):
        """Buffers are accepted, and changing a buffer after put does not change the object."""
        buf = bytearray(b"abcdef")
        store.put("keys/a", buf)
        store.put("keys/b", memoryview(buf)[1:4])
        buf[:] = b"zzzzzz"
        assert store.get("keys/a") == b"abcdef"
        assert store.get("keys/b") == b"bcd"

    def test_empty_object(self, store):
        """A zero-byte object exists, has size 0 and reads back empty."""
        store.put("empty", b"")
        assert store.exists("empty")
        assert store.size("empty") == 0
        assert store.get("empty") == b""

    def test_missing_objects_raise_object_not_found(self, store):
        """get, get_range and size of a missing object raise ObjectNotFound naming it."""
        for call in (
            lambda: store.get("data/00/missing"),
            lambda: store.get_range("data/00/missing", 0, 10),
            lambda: store.get_range("data/00/missing", 0, 0),
            lambda: store.size("data/00/missing"),
        ):
            with pytest.raises(ObjectNotFound) as info:
                call()
            assert info.value.fields["name"] == "data/00/missing"
        assert not store.exists("data/00/missing")

    def test_get_range_is_exact_and_short_at_eof(self, store):
        """A range returns exactly the bytes asked for, fewer only past the end."""
        data = bytes(range(256)) * 4
        store.put("data/ab/pack", data)
        assert store.get_range("data/ab/pack", 0, 10) == data[:10]
        assert store.get_range("data/ab/pack", 500, 300) == data[500:800]
        assert store.get_range("data/ab/pack", 1000, 100) == data[1000:]
        assert store.get_range("data/ab/pack", 5000, 10) == b""
        assert store.get_range("data/ab/pack", 7, 0) == b""

    def test_negative_range_is_refused(self, store):
        """Negative offsets or lengths are a programming error."""
        store.put("x", b"abc")
        with pytest.raises(ValueError):
            store.get_range("x", -1, 2)
        with pytest.raises(ValueError):
            store.get_range("x", 0, -2)

    def test_size_and_exists(self, store):
        """size reports the object's length; exists is true only for objects."""
        store.put("points/p1", b"x" * 1234)
        assert store.size("points/p1") == 1234
        assert store.exists("points/p1")
        assert not store.exists("points")  # a "directory" is not an object

    def test_overwrite_replaces_the_object(self, store):
        """A second put under the same name replaces the first."""
        store.put("settings/s", b"first version, longer")
        store.put("settings/s", b"second")
        assert store.get("settings/s") == b"second"
        assert store.size("settings/s") == 6

    def test_list_prefix_is_recursive_and_a_plain_string_prefix(self, store):
        """list yields every name starting with the prefix, at any depth, and nothing else."""
        names = ["data/ab/1", "data/ab/2", "data/ac/3", "index/i1", "keys/k", "strongroom.json"]
        for name in names:
            store.put(name, b"x")
        assert sorted(store.list()) == names
        assert sorted(store.list("data/")) == names[:3]
        assert sorted(store.list("data/a")) == names[:3]
        assert sorted(store.list("data/ab")) == names[:2]
        assert sorted(store.list("data/ab/2")) == ["data/ab/2"]
        assert sorted(store.list("d")) == names[:3]
        assert sorted(store.list("strongroom")) == ["strongroom.json"]
        assert list(store.list("jobs/")) == []
        assert list(store.list("data/zz/")) == []

    def test_list_sees_objects_right_after_put(self, store):
        """An object is listed as soon as its put returns, and no longer after delete."""
        store.put("journal/1", b"x")
        assert "journal/1" in set(store.list("journal/"))
        store.delete("journal/1")
        assert "journal/1" not in set(store.list("journal/"))

    def test_delete_is_idempotent(self, store):
        """Deleting removes the object; deleting a missing object is not an error."""
        store.put("leases/l", b"x")
        store.delete("leases/l")
        store.delete("leases/l")
        store.delete("never/was")
        assert not store.exists("leases/l")
        with pytest.raises(ObjectNotFound):
            store.get("leases/l")

    def test_names_with_every_allowed_character(self, store):
        """Names may use letters, digits, '.', '_', '-' and '/' separators."""
        name = "A-Z_a.z/0-9/" + "".join(chr(c) for c in range(ord("a"), ord("z") + 1)) + ALLOWED
        name += "/" + "".join(chr(c) for c in range(ord("A"), ord("Z") + 1)) + "0123456789._-"
        store.put(name, b"ok")
        assert store.get(name) == b"ok"
        assert list(store.list("A-Z_a.z/")) == [name]

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/../b",
            "./a",
            "a b",
            "ü",
            "a\\b",
            ".tmp-1",
            "d/.tmp-x",
        ],
    )
    def test_invalid_names_are_refused(self, store, name):
        """Names outside the allowed alphabet, escaping the root or reserved raise ValueError."""
        with pytest.raises(ValueError):
            store.put(name, b"x")
        with pytest.raises(ValueError):
            store.get(name)

    def test_forty_mib_object(self, store):
        """A 40 MiB object round-trips whole and by range."""
        data = os.urandom(40 * 1024 * 1024)
        store.put("data/4f/big", data)
        assert store.size("data/4f/big") == len(data)
        assert store.get("data/4f/big") == data
        middle = 17 * 1024 * 1024 + 3
        assert (
            store.get_range("data/4f/big", middle, 5 * 1024 * 1024)
            == data[middle : middle + 5 * 1024 * 1024]
        )

    def test_concurrent_puts_and_gets(self, store):
        """Several threads writing and reading distinct objects all see their own data."""
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    name = f"data/{n:02d}/{i}"
                    payload = f"{n}:{i}".encode() * 100
                    store.put(name, payload)
                    assert store.get(name) == payload
            except BaseException as exc:  # collected for the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(list(store.list("data/"))) == 160


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
