"""Tree nodes read with msgspec's decoder mean what json.loads makes of them, and are
refused alike: documents msgspec refuses but json.loads accepts (lone surrogates, NaN,
a byte-order mark, UTF-16, huge numbers) go through json.loads."""

from __future__ import annotations

import json

import pytest

from strongroom.catalog import tree
from strongroom.catalog.entry import Entry
from strongroom.catalog.tree import decode_tree, decode_tree_stored, encode_tree
from strongroom.errors import IntegrityError

CHUNK = "ab" * 32

DOCUMENTS = [
    b'{"v":1,"entries":[]}',
    b' \t{"v" : 1 , "entries" : [ ] }\r\n',
    b'{"v":1,"entries":[{"name":"\\udcff\\udc80","type":"file"}]}',  # undecodable bytes of a name
    b'{"v":1,"entries":[{"name":"\xed\xa0\x80","type":"file"}]}',  # a surrogate written in UTF-8
    b'{"v":1,"entries":[{"name":"\\uD834\\uDD1E \\u00e9 \\/ \\u0000","type":"file"}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","size":NaN}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","size":Infinity}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","size":1e400}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","size":1506.0}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","ino":18446744073709551616}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","mtime_ns":-9223372036854775809}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file","size":' + b"9" * 5000 + b"}]}",
    b'{"v":1,"entries":[{"name":"a","type":"file","size":1,"size":2}]}',
    b'{"v":1,"v":2,"entries":[]}',
    b'\xef\xbb\xbf{"v":1,"entries":[]}',
    '{"v":1,"entries":[{"name":"a","type":"file"}]}'.encode("utf-16-le"),
    b'{"v":1,"entries":[{"name":"a\nb","type":"file"}]}',
    b'{"v":1,"entries":[{"name":"\xff","type":"file"}]}',
    b'{"v":1,"entries":[{"name":"a","type":"file",}]}',
    b'{"v":1,"entries":[]}x',
    b'{"v":1,"entries":' + b"[" * 100000 + b"]" * 100000 + b"}",
    b"",
    b"\x00",
    f'{{"v":1,"entries":[{{"name":"a","type":"file","size":3,"chunks":["{CHUNK}"]}}]}}'.encode(),
]


def _outcome(call, raw):
    try:
        return "ok", call(raw)
    except IntegrityError as exc:
        return "refused", str(exc)


@pytest.fixture
def with_msgspec(monkeypatch):
    monkeypatch.setattr(tree, "_fast_loads", tree._fast_decoder())
    assert tree._fast_loads  # a dependency: without it every node goes through json.loads


def test_msgspec_reads_the_nodes_once_a_process_has_read_enough(monkeypatch):
    node = encode_tree([Entry(name=f"f{i}", type="file", size=1, chunks=(bytes(32),)) for i in range(100)])
    monkeypatch.setattr(tree, "_fast_loads", None)
    monkeypatch.setattr(tree, "_json_read", 0)
    monkeypatch.setattr(tree, "FAST_AFTER", 3 * len(node))
    for _ in range(3):
        decode_tree(node)
    assert tree._fast_loads is None and tree._json_read == 3 * len(node)
    assert len(decode_tree(memoryview(node))) == 100
    assert tree._fast_loads and tree._fast_loads.__self__.__class__.__module__.startswith("msgspec")


@pytest.mark.parametrize("raw", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_a_node_decodes_as_json_loads_decodes_it(raw, monkeypatch, with_msgspec):
    fast = _outcome(decode_tree, raw), _outcome(decode_tree_stored, raw)
    monkeypatch.setattr(tree, "_fast_loads", False)
    assert (_outcome(decode_tree, raw), _outcome(decode_tree_stored, raw)) == fast


@pytest.mark.parametrize("raw", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_the_decoded_document_is_json_loads_s(raw, with_msgspec):
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError):
        with pytest.raises((ValueError, RecursionError)):
            tree._loads(raw)
        return
    got = tree._loads(memoryview(raw))
    assert repr(got) == repr(expected)  # repr: NaN is not equal to itself, and 1 == 1.0 == True


def test_names_of_undecodable_bytes_round_trip():
    names = [b"\xff\xfe".decode("utf-8", "surrogateescape"), "caf\u00e9", "a\\\"b", "\x01"]
    entries = [Entry(name=n, type="file", size=1, chunks=(bytes(32),)) for n in names]
    node = encode_tree(entries)
    assert sorted(e.name for e in decode_tree(node)) == sorted(names)
    assert set(decode_tree_stored(node)) == set(names)


@pytest.mark.parametrize("files, fast", [(30, True), (3, False)])
def test_a_backup_of_a_parent_point_of_many_entries_reads_it_with_msgspec_from_the_start(
        vault, tmp_path, monkeypatch, files, fast):
    """A backup whose parent point lists at least FAST_FROM_ENTRIES files and folders
    switches to msgspec's decoder before its walk reads the first node; a smaller parent
    leaves the switch to the bytes read (FAST_AFTER, here never reached)."""
    import strongroom.services.backup as backup_service

    src = tmp_path / "src"
    src.mkdir()
    for i in range(files):
        (src / f"f{i:02d}").write_text(str(i))
    vault.protect("files", "docs", {"paths": [str(src)]})
    vault.backup("docs")
    monkeypatch.setattr(backup_service, "FAST_FROM_ENTRIES", 20)
    monkeypatch.setattr(tree, "FAST_AFTER", 1 << 40)
    monkeypatch.setattr(tree, "_fast_loads", None)
    vault.backup("docs")
    assert bool(tree._fast_loads) is fast
