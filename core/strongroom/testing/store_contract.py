"""The store contract as an abstract test class: every Store backend subclasses it.

Subclass :class:`StoreContract` in a test module and give it a ``store`` fixture that
returns a fresh, empty store (wrapped in the retry decorator or not); every test of the
class then runs against that store::

    from strongroom.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return open_store(f"myproto://{tmp_path}", create=True)

It checks put/get/ranges/size/exists/list/delete, missing objects, overwrites, large
objects, listing right after a write, names with every allowed character, refused
names, threads, and that uploads in progress are never listed.
"""

from __future__ import annotations

import os
import threading

import pytest

from ..errors import ObjectNotFound
from ..storage import Capabilities, capabilities_of

__all__ = ["StoreContract"]

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

    def test_no_upload_in_progress_is_ever_listed(self, store):
        """After many puts and overwrites, no temporary upload name shows in a listing."""
        for i in range(10):
            store.put(f"index/i{i}", os.urandom(1000 + i))
            store.put(f"index/i{i}", os.urandom(2000 + i))
        names = list(store.list())
        assert sorted(names) == [f"index/i{i}" for i in range(10)]
        assert not any(".tmp-" in name for name in names)

    def test_listing_is_complete_beyond_one_page(self, store):
        """A listing returns every object even when there are more than a server's page (1000)."""
        payload = b"x"
        names = [f"jobs/{i:05d}" for i in range(1010)]

        def put_all(part: list[str]) -> None:
            for name in part:
                store.put(name, payload)

        threads = [threading.Thread(target=put_all, args=(names[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(store.list("jobs/")) == names

    def test_capabilities_are_reported(self, store):
        """The store (through any decorators) reports capabilities with a usable concurrency."""
        caps = capabilities_of(store)
        assert isinstance(caps, Capabilities)
        assert caps.concurrency >= 1

