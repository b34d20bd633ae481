"""ParentFolders: the parent point's folders as stored, found by path, with the chunk ids
the vault no longer holds; a node the writer cannot have made is read only through the
checked decoder, and a folder that cannot be read counts as empty, reported once."""

from __future__ import annotations

import json

import pytest

from strongroom.catalog.tree import TreeReader, row_dict
from strongroom.engine.parentfolders import ParentFolders
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.vault import Vault


@pytest.fixture
def repo(tmp_path, strongroom_isolated_home):
    return Vault.create(str(tmp_path / "vault")).repo


def _node(writer, entries: list[dict]) -> bytes:
    return writer.add(KIND_TREE, json.dumps({"v": 1, "entries": entries}).encode())


def _dicts(stored) -> dict[str, dict]:
    """Typed rows by name as the dicts Entry.to_dict gives."""
    return {name: row_dict(row) for name, row in stored.items()}


def _folders(repo, build) -> tuple[ParentFolders, list]:
    writer = repo.writer()
    root = build(writer)
    writer.flush()
    writer.close()
    damaged: list = []
    return ParentFolders(TreeReader(repo, root, point="p"), repo.index, damaged.append), damaged


def test_nested_folders_as_stored_and_missing_chunks(repo):
    """A folder two levels down is found by path; its rows are the JSON objects stored;
    a chunk id no pack holds is listed as missing, a stored one is not."""
    kept = {}

    def build(writer):
        kept["chunk"] = writer.add(KIND_DATA, b"content")
        gone = "ab" * 32
        inner = _node(writer, [
            {"name": "a.txt", "type": "file", "size": 7, "chunks": [kept["chunk"].hex()]},
            {"name": "b.txt", "type": "file", "size": 9, "chunks": [gone]},
        ])
        middle = _node(writer, [{"name": "in", "type": "dir", "subtree": inner.hex()}])
        kept["inner"] = inner
        return _node(writer, [{"name": "mid", "type": "dir", "subtree": middle.hex()},
                              {"name": "f", "type": "file"}])

    folders, damaged = _folders(repo, build)
    folder = folders.folder("mid/in")
    assert folder.tree_id == kept["inner"]
    assert row_dict(folder.stored["a.txt"]) == {"name": "a.txt", "type": "file", "size": 7,
                                                "chunks": [kept["chunk"].hex()]}
    assert folder.missing == {"ab" * 32}
    assert sorted(folder.entries()) == ["a.txt", "b.txt"]
    assert folders.folder("f").tree_id is None and folders.folder("nothing/here").stored == {}
    assert damaged == []


@pytest.mark.parametrize("chunks", [
    ["AB" * 32], ["ab" * 31 + "a", "b" + "ab" * 32], ["ab " * 21 + "a"], ["ab" * 32, 7], ["ab" * 32, None],
    ["gg" * 32], [["ab" * 32]], "ab" * 32,
], ids=["upper", "lengths", "spaces", "number", "null", "not-hex", "nested", "not-a-list"])
def test_a_malformed_chunk_id_is_left_to_the_checked_decoder(repo, chunks):
    """A chunk id that is not 64 lowercase hex digits: no stored rows are trusted, the
    checked decoder refuses the node, and the folder is reported damaged and empty."""
    def build(writer):
        good = writer.add(KIND_DATA, b"content").hex()
        sub = _node(writer, [{"name": "a", "type": "file", "size": 7, "chunks": [good]},
                             {"name": "x", "type": "file", "size": 1, "chunks": chunks}])
        return _node(writer, [{"name": "d", "type": "dir", "subtree": sub.hex()}])

    folders, damaged = _folders(repo, build)
    folder = folders.folder("d")
    assert folder.stored is None and folder.entries() == {}
    assert [exc.fields["path"] for exc in damaged] == ["d"]


@pytest.mark.parametrize("row", [
    {"name": "x", "type": "file", "size": 1, "nlink": True},
    {"name": "x", "type": "file", "size": 1.0},
    {"name": "x", "type": "file", "size": 1, "colour": "blue"},
    {"name": "x", "type": "file", "size": 1, "sparse": 1},
], ids=["bool-for-a-number", "float-for-a-number", "unknown-field", "number-for-a-bool"])
def test_a_row_the_writer_cannot_have_made_leaves_the_node_to_the_checked_decoder(repo, row):
    """A row with a field of the wrong JSON type, or one an entry does not have: no row
    of the node is trusted; the checked decoder refuses it, and the folder is reported
    damaged and empty (every file in it is read again)."""
    def build(writer):
        good = writer.add(KIND_DATA, b"content").hex()
        sub = _node(writer, [{"name": "a", "type": "file", "size": 7, "chunks": [good]}, row])
        return _node(writer, [{"name": "d", "type": "dir", "subtree": sub.hex()}])

    folders, damaged = _folders(repo, build)
    folder = folders.folder("d")
    assert folder.stored is None and folder.entries() == {}
    assert [exc.fields["path"] for exc in damaged] == ["d"]


def test_the_folder_asked_for_last_is_the_one_given(repo):
    """Asking for folders in turn (the last one is answered without the cache's lock)
    gives each its own rows, and again after other folders were asked for."""
    def build(writer):
        one = _node(writer, [{"name": "a", "type": "file"}])
        two = _node(writer, [{"name": "b", "type": "file"}])
        return _node(writer, [{"name": "one", "type": "dir", "subtree": one.hex()},
                              {"name": "two", "type": "dir", "subtree": two.hex()}])

    folders, _ = _folders(repo, build)
    for path, name in [("one", "a"), ("one", "a"), ("two", "b"), ("one", "a"), ("", "one"), ("two", "b")]:
        assert list(folders.folder(path).stored) == ([name, "two"] if path == "" else [name])


def test_a_node_that_cannot_be_read_is_an_empty_folder(repo):
    """A subtree no pack holds: the folder is empty and reported once, by its path."""
    def build(writer):
        return _node(writer, [{"name": "d", "type": "dir", "subtree": "cd" * 32}])

    folders, damaged = _folders(repo, build)
    folder = folders.folder("d")
    assert folder.stored == {} and folder.entries() == {}
    assert [exc.fields["path"] for exc in damaged] == ["d"]


def test_a_folder_of_deep_subfolders_is_decoded_once(repo, monkeypatch):
    """Walking folders in order, each node is decoded once: the folders on the way to
    the current one stay however many folders each subtree holds."""
    def build(writer):
        subs = []
        for i in range(4):
            node = _node(writer, [{"name": "leaf", "type": "file"}])
            for depth in range(8):
                node = _node(writer, [{"name": f"n{depth}", "type": "dir", "subtree": node.hex()}])
            subs.append({"name": f"s{i}", "type": "dir", "subtree": node.hex()})
        wide = _node(writer, subs)
        return _node(writer, [{"name": "wide", "type": "dir", "subtree": wide.hex()}])

    folders, damaged = _folders(repo, build)
    decoded = []
    real = folders.reader.stored_rows
    monkeypatch.setattr(folders.reader, "stored_rows", lambda tree_id, path: decoded.append(path) or real(tree_id, path))
    walked = ["", "wide"]
    for i in range(4):
        path = f"wide/s{i}"
        walked.append(path)
        for depth in reversed(range(8)):
            path += f"/n{depth}"
            walked.append(path)
    for path in walked:
        assert folders.folder(path).stored
    assert sorted(decoded) == sorted(walked) and damaged == []


def test_a_folder_compared_after_it_left_the_cache_is_read_without_its_chunk_check(repo, monkeypatch):
    """compared() gives the rows of the cached folder itself; of a folder the walk has
    left behind (dropped from the cache), the same rows read again, with no search for
    missing chunks and without pushing the walk's folders out; of one never loaded,
    the folder loaded."""
    def build(writer):
        chunk = writer.add(KIND_DATA, b"content").hex()
        subs = [{"name": f"s{i}", "type": "dir",
                 "subtree": _node(writer, [{"name": f"f{i}", "type": "file", "size": 7, "chunks": [chunk]}]).hex()}
                for i in range(8)]
        return _node(writer, subs)

    folders, damaged = _folders(repo, build)
    searched = []
    real = folders._index.missing
    monkeypatch.setattr(folders._index, "missing", lambda ids: searched.append(1) or real(ids))
    first = folders.folder("s0")
    assert folders.compared("s0") == (first.tree_id, first.stored)
    for i in range(1, 8):
        folders.folder(f"s{i}")
    assert "s1" not in folders._cache
    searches = len(searched)
    tree_id, stored = folders.compared("s1")
    assert tree_id == bytes.fromhex(folders.folder("").stored["s1"].subtree)
    assert _dicts(stored) == {"f1": {"name": "f1", "type": "file", "size": 7, "chunks": stored["f1"].chunks}}
    assert len(searched) == searches and "s1" not in folders._cache
    assert folders.compared("s7")[1] is folders.folder("s7").stored
    fresh, _ = _folders(repo, build)
    assert _dicts(fresh.compared("s3")[1]) == {"f3": {**_dicts(stored)["f1"], "name": "f3"}}
    assert "s3" in fresh._cache and damaged == []


def test_a_damaged_folder_compared_again_is_empty(repo):
    def build(writer):
        subs = [{"name": "d", "type": "dir", "subtree": "cd" * 32}]
        subs += [{"name": f"e{i}", "type": "dir", "subtree": _node(writer, []).hex()} for i in range(6)]
        return _node(writer, subs)

    folders, damaged = _folders(repo, build)
    assert folders.folder("d").stored == {}
    for i in range(6):
        folders.folder(f"e{i}")
    assert folders.compared("d") == (bytes.fromhex("cd" * 32), {})
    assert {exc.fields["path"] for exc in damaged} == {"d"}  # the backup warns once a folder


def test_subfolders_after_a_folder_are_loaded_with_it_in_one_search(repo, monkeypatch):
    """Sibling folders are loaded with the first asked for: the index is searched once
    for all their chunks, each keeps its own missing ones, and a damaged sibling is
    reported only when the walk asks for it."""
    def build(writer):
        chunk = writer.add(KIND_DATA, b"content").hex()
        subs = []
        for i in range(6):
            rows = [{"name": "f", "type": "file", "size": 7, "chunks": [chunk]}]
            if i == 3:
                rows.append({"name": "g", "type": "file", "size": 7, "chunks": ["ef" * 32]})
            subs.append({"name": f"s{i}", "type": "dir", "subtree": _node(writer, rows).hex()})
        subs.insert(2, {"name": "s1x", "type": "dir", "subtree": "cd" * 32})  # cannot be read
        return _node(writer, subs)

    folders, damaged = _folders(repo, build)
    folders.folder("")
    searched = []
    real = folders._index.missing
    monkeypatch.setattr(folders._index, "missing", lambda ids: searched.append(1) or real(ids))
    found = {f"s{i}": folders.folder(f"s{i}") for i in range(6)}
    assert len(searched) == 1 and damaged == []
    assert found["s3"].missing == {"ef" * 32}
    assert all(not f.missing and f.stored["f"].size == 7 for name, f in found.items() if name != "s3")
    assert folders.folder("s1x").stored == {}
    assert [exc.fields["path"] for exc in damaged] == ["s1x"]
    assert folders.compared("s4")[1] == found["s4"].stored


def test_folders_loaded_ahead_and_never_asked_for_are_let_go(repo, monkeypatch):
    """Folders loaded ahead that the walk never asks for (gone from the source) are
    dropped once those loaded after them hold more than twice the rows allowed."""
    from strongroom.engine import parentfolders

    monkeypatch.setattr(parentfolders, "AHEAD_ROWS", 4)
    monkeypatch.setattr(parentfolders, "AHEAD_FOLDERS", 2)

    def build(writer):
        subs = [{"name": f"s{i:02}", "type": "dir", "subtree": _node(writer, [{"name": "f", "type": "file"}]).hex()}
                for i in range(30)]
        return _node(writer, subs)

    folders, damaged = _folders(repo, build)
    for i in range(0, 30, 3):  # every third folder: the two after it are loaded ahead, never asked for
        assert folders.folder(f"s{i:02}").stored
    assert len(folders._ahead) <= 8 and folders._ahead_rows == len(folders._ahead)
    assert damaged == []
