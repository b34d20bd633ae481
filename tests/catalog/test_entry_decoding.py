"""Entry.from_dict's quick path for plain entries (entry._plain_entry) makes exactly the
entry the field-by-field path makes, and leaves everything else to it: compared on
generated stored entries, well formed and not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.catalog.entry import Entry, _plain_entry
from strongroom.errors import IntegrityError

CHUNK = "0123456789abcdef" * 4
FIELDS = ("name", "type", "mode", "uid", "gid", "user", "group", "mtime_ns", "atime_ns", "ctime_ns", "size",
          "ino", "dev", "nlink", "rdev", "target", "xattrs", "sparse", "chunk_size", "chunks", "subtree")
BOUNDS = (0, 1, -1, 0o644, 0o177777, 0o200000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
          2**64 - 1, 2**64, -(2**63), -(2**63) - 1)


class _Checked(dict):
    """A dict that is not exactly a dict: from_dict reads it field by field."""


def _slow(data: dict) -> Entry:
    return Entry.from_dict(_Checked(data), "node")


def _outcome(call, data):
    try:
        return "ok", call(data)
    except IntegrityError as exc:
        return "refused", str(exc)


hexes = st.sampled_from([CHUNK, CHUNK.upper(), CHUNK[:-1], CHUNK + "0", " " + CHUNK[1:], "", "zz" * 32,
                         CHUNK[:32] + " " + CHUNK[33:], "\u0660" * 64])
values = st.one_of(
    st.sampled_from(BOUNDS), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.sampled_from(["file", "dir", "symlink", "hardlink", "disk", "stream", "bogus", "", ".", "..", "a/b",
                     "a\0b", "f.txt", "root", CHUNK, "\udcff"]),
    st.lists(hexes, max_size=3), st.lists(st.integers(), max_size=2), st.just([["user.a", "eA=="]]),
    hexes,
)
stored = st.dictionaries(st.sampled_from(FIELDS + ("bogus",)), values, max_size=12)
plausible = st.fixed_dictionaries(
    {"name": st.sampled_from(["f.txt", "d", "\udcff", "a/b", ""]),
     "type": st.sampled_from(["file", "dir", "symlink", "hardlink", "disk", "bogus"])},
    optional={name: values for name in FIELDS[2:]},
)

VALID = [
    {"name": "f.txt", "type": "file", "mode": 0o600, "user": "u", "mtime_ns": 5, "size": 12, "ino": 9,
     "chunks": [CHUNK, CHUNK]},
    {"name": "d", "type": "dir", "mode": 0o40755, "nlink": 2, "subtree": CHUNK},
    {"name": "l", "type": "symlink", "target": "f.txt", "atime_ns": -1},
]
# a well-formed entry with one or two fields changed, added or taken out
near_valid = st.builds(
    lambda base, changes, dropped: {**{k: v for k, v in base.items() if k not in dropped}, **changes},
    st.sampled_from(VALID), st.dictionaries(st.sampled_from(FIELDS), values, max_size=2),
    st.sets(st.sampled_from(FIELDS), max_size=1),
)


@settings(max_examples=800, deadline=None)
@given(st.one_of(stored, plausible, near_valid, near_valid))
def test_the_quick_path_agrees_with_the_checked_one(data):
    assert _outcome(lambda d: Entry.from_dict(d, "node"), data) == _outcome(_slow, data)
    plain = _plain_entry(dict(data)) if data.keys() <= set(FIELDS) - {"xattrs"} else None
    if plain is not None:
        assert _outcome(_slow, data) == ("ok", plain)


def test_the_entries_a_backup_stores_take_the_quick_path():
    entries = [
        Entry("f.txt", "file", mode=0o600, uid=1000, gid=1000, user="u", group="g", mtime_ns=-5, atime_ns=7,
              ctime_ns=2**63 - 1, size=12, ino=2**64 - 1, dev=3, nlink=2, chunks=(bytes(32), bytes(range(32)))),
        Entry("d", "dir", mode=0o40755, subtree=bytes(range(32))),
        Entry("l", "symlink", target="f.txt"),
        Entry("h", "hardlink", target="d/f.txt", size=1, chunks=(b"\xff" * 32,)),
        Entry("e", "file", sparse=True),
        Entry(b"\xff".decode("utf-8", "surrogateescape"), "fifo"),
    ]
    for entry in entries:
        assert _plain_entry(entry.to_dict()) == entry
        assert Entry.from_dict(entry.to_dict()) == entry


def test_entries_the_quick_path_leaves_to_the_checked_one():
    disk = Entry("disk.img", "disk", size=10, chunk_size=8, chunks=(bytes(32), b""))
    with_xattrs = Entry("x", "file", xattrs=(("user.a", b"1"),))
    for entry in (disk, with_xattrs):
        assert Entry.from_dict(entry.to_dict()) == entry
    assert _plain_entry(disk.to_dict()) is None


SPECIAL = [*BOUNDS, True, False, None, 1.0, "", "x", "f.txt", "dir", "file", "a/b", ".", CHUNK, CHUNK.upper(),
           CHUNK[:-1], " " + CHUNK[1:], [], [CHUNK], [CHUNK.upper()], [CHUNK[:-1] + " "], [CHUNK, ""],
           [CHUNK[:63], CHUNK + "a"], [None], [1], (CHUNK,), {"a": 1}, [["user.a", "eA=="]]]


def test_each_field_changed_to_each_special_value():
    for base in VALID:
        for name in FIELDS:
            for value in SPECIAL:
                data = {**base, name: value}
                assert _outcome(lambda d: Entry.from_dict(d, "node"), data) == _outcome(_slow, data), data
