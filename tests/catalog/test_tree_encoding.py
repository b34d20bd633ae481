"""encode_tree writes the very bytes json.dumps of the entries' to_dict() wrote before it
was written out field by field: nodes of unchanged folders keep their ids across
versions, so they deduplicate against points made before."""

from __future__ import annotations

import json
import os
import random

import pytest

from strongroom.catalog.entry import TYPES, Entry
from strongroom.catalog.tree import (
    decode_tree, decode_tree_rows, decode_tree_stored, encode_row, encode_stored, encode_tree, encode_tree_rows, row_dict,
    sort_entries,
)
from strongroom.errors import IntegrityError


def _reference(entries: list[Entry]) -> bytes:
    return json.dumps({"v": 1, "entries": [e.to_dict() for e in sort_entries(entries)]},
                      separators=(",", ":")).encode()


_CHOICES = {
    "mode": [0o644, 0o755, 0, 0o7777], "uid": [0, 1000, 2**32 - 1], "gid": [0, 5], "user": ["", "root", 'é"x\\'],
    "group": ["", "g"], "mtime_ns": [0, -5, 2**63 - 1], "atime_ns": [0, 7], "ctime_ns": [0, 9],
    "size": [0, 1, 2**40], "ino": [0, 2**64 - 1], "dev": [0, 3], "nlink": [1, 0, 2], "rdev": [0, 8],
    "target": ["", "a/b", "\udcff\n"], "xattrs": [(), (("user.a", b"\x00\xff"),)], "sparse": [False, True],
    "chunk_size": [0, 4096], "chunks": [(), (b"\x01" * 32,), (b"\x02" * 32, b"")], "subtree": [None, b"\x03" * 32],
}


def _random_entry(rng: random.Random) -> Entry:
    raw = bytes(rng.choice(b'ab\xff\n"\\\x01\xc3\xa9z\x7f') for _ in range(rng.randint(1, 6)))
    name = os.fsdecode(raw)
    if name in (".", ".."):
        name = "n"
    fields = {key: rng.choice(values) for key, values in _CHOICES.items() if rng.random() < 0.5}
    return Entry(name=name, type=rng.choice(sorted(TYPES)), **fields)


def test_nodes_are_the_bytes_json_dumps_wrote():
    """Random entries of every type, odd names (control bytes, quotes, undecodable
    bytes), every field at and away from its default: the same bytes as before."""
    rng = random.Random(20)
    for _ in range(2000):
        entries = {e.name: e for e in (_random_entry(rng) for _ in range(rng.randint(0, 6)))}
        assert encode_tree(list(entries.values())) == _reference(list(entries.values()))


def test_a_folder_of_scanned_files_round_trips():
    """A node as a backup writes it for a folder of small files reads back equal."""
    entries = [Entry(f"f{i:08d}.txt", "file", 0o640, 1000, 1000, "alice", "staff", 1733380000123456789 + i,
                     0, 1733380000123456789, 100 + i, 123456 + i, 2049, 1, chunks=(bytes([i % 256]) * 32,))
               for i in range(300)]
    raw = encode_tree(list(reversed(entries)))
    assert raw == _reference(entries)
    assert decode_tree(raw) == entries


def test_entries_are_sorted_by_the_bytes_of_their_names():
    """ASCII names, and names with UTF-8 and undecodable bytes (whose code points sort
    otherwise than their bytes), come in the order of their bytes."""
    rng = random.Random(7)
    for alphabet in (b"aB_.z09", b"a\xc3\xa9\xff\x80Z~\xe2\x82\xac"):
        for _ in range(200):
            names = {os.fsdecode(bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4))))
                     for _ in range(rng.randint(0, 8))} - {".", ".."}
            entries = [Entry(name=name, type="file") for name in names]
            rng.shuffle(entries)
            assert [e.name for e in sort_entries(entries)] == sorted(names, key=os.fsencode)


def test_entries_as_stored_are_written_as_their_entries_are():
    """A node of some entries and of others given as they were stored (the JSON objects a
    node holds, through encode_stored) is the node of them all: the same bytes, for the
    random entries above (odd names, extended attributes, every field)."""
    rng = random.Random(21)
    for _ in range(2000):
        entries = list({e.name: e for e in (_random_entry(rng) for _ in range(rng.randint(1, 6)))}.values())
        split = rng.randint(0, len(entries))
        rows = [json.loads(json.dumps(e.to_dict())) for e in entries[split:]]
        encoded = [(row["name"], encode_stored(row)) for row in rows]
        assert encode_tree(entries[:split], encoded) == _reference(entries)


def test_entries_as_stored_without_msgspec(monkeypatch):
    """Without msgspec's encoder, json.dumps writes the rows: the same bytes."""
    from strongroom.catalog import tree

    monkeypatch.setattr(tree, "_stored_codec", False)
    rng = random.Random(22)
    for _ in range(300):
        entries = list({e.name: e for e in (_random_entry(rng) for _ in range(rng.randint(1, 4)))}.values())
        encoded = [(e.name, encode_stored(e.to_dict())) for e in entries]
        assert encode_tree([], encoded) == _reference(entries)


@pytest.mark.parametrize("field, value", [
    ("size", 5.0), ("mtime_ns", True), ("sparse", 1), ("name", 7), ("chunks", "ab"), ("colour", "red")])
def test_a_stored_entry_with_a_field_of_another_type_is_not_written_as_it_is(field, value):
    """A number as a float or bool, a bool as a number, an unknown field: None (the row is
    decoded and checked instead), never a node no reader accepts."""
    row = Entry(name="f", type="file", size=5, mtime_ns=1, chunks=(b"\x01" * 32,)).to_dict()
    assert encode_stored(row) is not None
    row[field] = value
    assert encode_stored(row) is None


def test_a_stored_entry_in_another_order_or_with_its_defaults_is_written_as_encode_tree_writes_it():
    """A row whose fields come in another order, or name their default values: the text
    encode_tree writes of its entry (with msgspec)."""
    entry = Entry(name="f", type="file", size=5, mtime_ns=-1, chunks=(b"\x01" * 32,))
    row = dict(reversed(list(entry.to_dict().items())))
    row.update(mode=0o644, nlink=1, sparse=False, target="")
    assert encode_tree([], [("f", encode_stored(row))]) == _reference([entry])


def test_typed_rows_are_the_stored_entries_and_are_written_as_encode_tree_writes_them():
    """Random entries (names with accents, lone surrogates, control characters; xattrs;
    every field): a node's typed rows give the dicts to_dict gives, and each row is
    written as encode_tree writes its entry; a node msgspec cannot type (a lone surrogate
    in a name) gives None, for the checked decoder to read."""
    rng = random.Random(23)
    typed = 0
    for _ in range(300):
        entries = list({e.name: e for e in (_random_entry(rng) for _ in range(rng.randint(1, 4)))}.values())
        node = encode_tree(entries)
        rows = decode_tree_rows(node)
        if rows is None:
            assert any(_surrogate(e.name) or _surrogate(e.target) for e in entries)
            continue
        typed += 1
        assert {name: row_dict(row) for name, row in rows.items()} == {e.name: e.to_dict() for e in entries}
        assert encode_tree([], [(name, encode_row(row)) for name, row in rows.items()]) == node
    assert typed > 20


def test_rows_and_entries_written_in_one_call_are_the_node_encode_tree_writes():
    """Random entries, some of them as typed rows of a node: encode_tree_rows writes the
    bytes encode_tree writes of the entries and the rows, or gives None, and only where a
    name or text is not ASCII without DEL (the rows typed, the entries written by msgspec)."""
    rng = random.Random(29)
    written = 0
    for _ in range(1000):
        entries = list({e.name: e for e in (_random_entry(rng) for _ in range(rng.randint(1, 6)))}.values())
        rows = decode_tree_rows(encode_tree(entries))
        if rows is None:
            continue
        as_rows = [rows[e.name] for e in entries if rng.random() < 0.6]
        as_entries = [e for e in entries if e.name not in {row.name for row in as_rows}]
        expected = encode_tree(as_entries, [(row.name, encode_row(row)) for row in as_rows])
        assert expected == _reference(entries)
        node = encode_tree_rows(as_entries, as_rows)
        if node is None:
            texts = [e.name + e.user + e.group + e.target + "".join(n for n, _ in e.xattrs) for e in entries]
            assert not all(t.isascii() and "\x7f" not in t for t in texts)
            continue
        written += 1
        assert node == expected
    assert written > 20


def test_rows_and_entries_of_a_changed_folder_in_one_call():
    """A folder of 300 scanned files, two of them changed since the node was written:
    the node of its rows and the two new entries is the one encode_tree writes."""
    entries = [Entry(f"f{i:08d}.txt", "file", 0o640, 1000, 1000, "alice", "staff", 1733380000123456789 + i,
                     0, 1733380000123456789, 100 + i, 123456 + i, 2049, 1, chunks=(bytes([i % 256]) * 32,))
               for i in range(300)]
    rows = decode_tree_rows(encode_tree(entries))
    changed = [Entry(e.name, "file", 0o644, 1000, 1000, "alice", "staff", e.mtime_ns + 1, 0, e.ctime_ns + 1,
                     e.size + 1, e.ino, e.dev, 1, chunks=(b"\x07" * 32,)) for e in (entries[7], entries[200])]
    kept = [row for name, row in rows.items() if name not in (changed[0].name, changed[1].name)]
    node = encode_tree_rows(changed, kept)
    assert node == encode_tree(changed, [(row.name, encode_row(row)) for row in kept])
    assert decode_tree(node) == sorted([e for e in entries if e.name not in {c.name for c in changed}] + changed,
                                       key=lambda e: e.name)


def test_an_entry_with_a_field_not_of_its_stored_type_is_left_to_encode_tree():
    rows = decode_tree_rows(encode_tree([Entry("a", "file", size=5)]))
    assert encode_tree_rows([Entry("b", "file", size=True)], list(rows.values())) is None


def _surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


@pytest.mark.parametrize("field, value", [
    ("size", 5.0), ("mtime_ns", True), ("sparse", 1), ("chunks", "ab"), ("colour", "red")])
def test_a_node_with_a_field_of_another_type_has_no_typed_rows(field, value):
    """A number as a float or bool, a bool as a number, an unknown field: None (the node
    is read through the checked decoder)."""
    row = Entry(name="f", type="file", size=5, mtime_ns=1, chunks=(b"\x01" * 32,)).to_dict()
    assert decode_tree_rows(json.dumps({"v": 1, "entries": [row]}).encode()) is not None
    row[field] = value
    assert decode_tree_rows(json.dumps({"v": 1, "entries": [row]}).encode()) is None


@pytest.mark.parametrize("raw", [b"", b"{", b'{"v":2,"entries":[]}', b'{"v":1}', b'{"v":1,"entries":[{"name":7}]}',
                                 b'{"v":1,"entries":[{"name":"a","type":"file"},{"name":"a","type":"file"}]}'])
def test_what_is_not_a_node_is_refused_as_decode_tree_stored_refuses_it(raw):
    with pytest.raises(IntegrityError) as stored:
        decode_tree_stored(raw)
    with pytest.raises(IntegrityError) as typed:
        decode_tree_rows(raw)
    assert str(typed.value) == str(stored.value)
