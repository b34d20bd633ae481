"""An Entry made by its constructor is a frozen record like any attrs one: every field as
given, equal and hashable by value, refused changes, copied, pickled and evolved."""

from __future__ import annotations

import copy
import pickle

import attrs
import pytest

from strongroom.catalog.entry import Entry, with_content

VALUES = dict(name="f.txt", type="file", mode=0o600, uid=1, gid=2, user="u", group="g", mtime_ns=3, atime_ns=4,
              ctime_ns=5, size=6, ino=7, dev=8, nlink=9, rdev=10, target="t", xattrs=(("user.a", b"1"),),
              sparse=True, chunk_size=0, chunks=(bytes(32),), subtree=None)


def test_every_field_as_given():
    entry = Entry(**VALUES)
    assert type(entry) is Entry
    assert attrs.asdict(entry, recurse=False) == VALUES
    assert Entry(*VALUES.values()) == entry and hash(Entry(**VALUES)) == hash(entry)
    assert Entry("f.txt", "file") == Entry(name="f.txt", type="file", mode=0o644, nlink=1)


def test_an_entry_cannot_be_changed():
    entry = Entry(**VALUES)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        entry.size = 1  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del entry.name  # type: ignore[misc]


def test_copies_and_changed_copies():
    entry = Entry(**VALUES)
    for other in (copy.copy(entry), copy.deepcopy(entry), pickle.loads(pickle.dumps(entry))):
        assert other == entry and type(other) is Entry
    assert attrs.evolve(entry, size=1) == Entry(**{**VALUES, "size": 1})
    assert with_content(entry, (b"\1" * 32,), 2) == Entry(**{**VALUES, "chunks": (b"\1" * 32,), "size": 2})


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0b"])
def test_invalid_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid entry name"):
        Entry(name, "file")


def test_invalid_types_are_refused():
    with pytest.raises(ValueError, match="invalid entry type"):
        Entry("a", "folder")
    with pytest.raises(TypeError):
        Entry("a")  # type: ignore[call-arg]
