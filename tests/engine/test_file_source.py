"""A FileSource is built by a hand-written ``__new__`` (one is made for every file a
backup scans): it must still behave as the frozen attrs class it is declared as."""

from __future__ import annotations

import copy
import pickle

import attrs
import pytest

from strongroom import FILE, HARDLINK, Entry, FileSource

ENTRY = Entry(name="report.txt", type=FILE, size=12, mtime_ns=1_700_000_000_000_000_000, ino=42, nlink=2)


def test_fields_by_position_and_by_keyword():
    by_position = FileSource("docs/report.txt", "/srv/docs/report.txt", ENTRY)
    by_keyword = FileSource(entry=ENTRY, abspath="/srv/docs/report.txt", path="docs/report.txt")
    assert (by_position.path, by_position.abspath, by_position.entry) == ("docs/report.txt", "/srv/docs/report.txt", ENTRY)
    assert by_position == by_keyword
    assert hash(by_position) == hash(by_keyword)
    assert type(by_position) is FileSource
    assert attrs.astuple(by_position, recurse=False) == ("docs/report.txt", "/srv/docs/report.txt", ENTRY)


def test_unequal_when_a_field_differs():
    source = FileSource("docs/report.txt", "/srv/docs/report.txt", ENTRY)
    assert source != FileSource("docs/other.txt", "/srv/docs/report.txt", ENTRY)
    assert source != FileSource("docs/report.txt", "/srv/other.txt", ENTRY)
    assert source != FileSource("docs/report.txt", "/srv/docs/report.txt", attrs.evolve(ENTRY, size=13))


def test_frozen_and_without_a_dict():
    source = FileSource("a", "/a", ENTRY)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        source.path = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        source.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(source, "__dict__")


def test_a_missing_or_unknown_argument_is_a_type_error():
    with pytest.raises(TypeError):
        FileSource("a", "/a")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FileSource("a", "/a", ENTRY, "more")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        FileSource(path="a", abspath="/a", entry=ENTRY, size=1)  # type: ignore[call-arg]


def test_evolve_copy_and_pickle_keep_every_field():
    source = FileSource("docs/report.txt", "/srv/docs/report.txt", ENTRY)
    linked = attrs.evolve(source, entry=attrs.evolve(ENTRY, type=HARDLINK, target="docs/first.txt"))
    assert (linked.path, linked.abspath, linked.entry.type, linked.entry.target) == (
        "docs/report.txt", "/srv/docs/report.txt", HARDLINK, "docs/first.txt")
    assert source.entry.type == FILE  # the original is untouched
    for made in (copy.copy(source), copy.deepcopy(source), pickle.loads(pickle.dumps(source))):
        assert made == source
        assert type(made) is FileSource


def test_repr_names_the_fields():
    text = repr(FileSource("a", "/a", ENTRY))
    assert text.startswith("FileSource(path='a', abspath='/a', entry=Entry(name='report.txt'")
