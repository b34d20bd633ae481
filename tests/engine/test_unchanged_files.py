"""Files unchanged since the parent point (same size, mtime, ctime, inode, device) are not
read: one equal in every field is taken as stored and its folder's node is reused; one
whose other metadata changed keeps its chunks and gets the new metadata in a new node."""

from __future__ import annotations

import os

import pytest

from strongroom import FILE, Entry, FileSource, FolderSource, Workload
from strongroom.catalog.tree import decode_tree, encode_tree
from strongroom.vault import Vault
from vaultkit import workload_host

META: dict[str, dict] = {}  # name -> Entry fields the workload reports besides the file's own
ROOT: list[str] = []


class FixedMetaWorkload(Workload):
    """The files of one folder with the times, inode and device of the file system and
    the rest of their metadata from META, so that a test changes only what it means to."""

    name = "fixedmeta"

    def backup(self, ctx):
        yield FolderSource.named("d", mtime_ns=1)
        for name in sorted(META):
            path = os.path.join(ROOT[0], name)
            st = os.lstat(path)
            entry = Entry(name=name, type=FILE, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
                          ino=st.st_ino, dev=st.st_dev, **META[name])
            yield FileSource(f"d/{name}", path, entry)


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 5000)
    ROOT[:] = [str(src)]
    META.clear()
    META.update({name: {"mode": 0o644, "user": "u", "atime_ns": 5} for name in ("a", "b", "c")})
    vault = Vault.create(str(tmp_path / "vault"), plugins=workload_host(fixedmeta=FixedMetaWorkload))
    vault.protect("fixedmeta", "files", {})
    return vault


def _folder(vault, point) -> dict[str, Entry]:
    return {e.name: e for e in vault.tree(point).listdir("d")}


def test_all_equal_reuses_the_folder_node(vault):
    """A second backup of the same files reads nothing and stores the same tree."""
    first = vault.backup("files")
    second = vault.backup("files")
    assert second.stats["files_unchanged"] == 3 and second.stats["bytes_read"] == 0
    assert vault.tree(second).lookup("d").subtree == vault.tree(first).lookup("d").subtree
    assert _folder(vault, second) == _folder(vault, first)


def test_other_metadata_changed_keeps_the_chunks(vault):
    """A file whose mode, owner name or atime changed (not its size or times) is not read:
    the new point has its new metadata and its old chunks, in a new folder node; the
    others are as they were; a third backup reuses that new node."""
    first = vault.backup("files")
    META["a"] = {**META["a"], "mode": 0o600}
    META["b"] = {**META["b"], "user": "someone"}
    META["c"] = {**META["c"], "atime_ns": 6}
    second = vault.backup("files")
    assert second.stats["files_unchanged"] == 3 and second.stats["bytes_read"] == 0
    before, after = _folder(vault, first), _folder(vault, second)
    assert (after["a"].mode, after["b"].user, after["c"].atime_ns) == (0o600, "someone", 6)
    assert all(after[n].chunks == before[n].chunks and after[n].chunks for n in "abc")
    assert vault.tree(second).lookup("d").subtree != vault.tree(first).lookup("d").subtree
    for name in "abc":
        assert vault.open_file("files", None, f"d/{name}").read() == name.encode() * 5000
    third = vault.backup("files")
    assert vault.tree(third).lookup("d").subtree == vault.tree(second).lookup("d").subtree


@pytest.mark.parametrize("suffix, in_one_call", [("", 12), ("é", 0)])
def test_a_changed_folder_is_written_from_its_unchanged_rows(tmp_path, strongroom_isolated_home, monkeypatch,
                                                             suffix, in_one_call):
    """Folders of files where one file changed: the new nodes, written from the parent's
    rows of the unchanged files (in one call where the names are ASCII, else row by row),
    are the bytes encode_tree writes of their entries; the unchanged files keep their
    entries, the changed one restores as it now is; and each node of the parent is read
    once, though the closed folders wait for their batch while the walk goes on
    (BATCH_FILES large) beyond the folders the reader keeps."""
    from strongroom.catalog import tree as tree_module
    from strongroom.engine import backup as backup_module

    src = tmp_path / "src"
    for d in range(12):
        for f in range(20):
            (src / f"d{d:02d}").mkdir(parents=True, exist_ok=True)
            (src / f"d{d:02d}" / f"f{f:02d}{suffix}").write_bytes(os.urandom(100 + f))
    vault = Vault.create(str(tmp_path / "vault"))
    vault.protect("files", "t", {"paths": [str(src)]})
    first = vault.backup("t")
    for d in range(12):
        (src / f"d{d:02d}" / f"f05{suffix}").write_bytes(b"changed %d" % d)
    monkeypatch.setattr(backup_module, "BATCH_FILES", 10**6)
    written: list[bytes] = []
    one_call = backup_module.encode_tree_rows
    monkeypatch.setattr(backup_module, "encode_tree_rows",
                        lambda entries, rows: (node := one_call(entries, rows)) and written.append(node) or node)
    reads: list[bytes] = []
    real = tree_module.TreeReader.stored_rows
    monkeypatch.setattr(tree_module.TreeReader, "stored_rows",
                        lambda self, tree_id, path: reads.append(tree_id) or real(self, tree_id, path))
    second = vault.backup("t")
    assert second.stats["files_unchanged"] == 12 * 19
    assert len(written) == in_one_call
    before, after = vault.tree(first), vault.tree(second)
    top = str(src).lstrip("/")
    assert {before.lookup(f"{top}/d{d:02d}").subtree for d in range(12)} <= set(reads)
    assert len(reads) == len(set(reads))
    for d in range(12):
        folder = f"{top}/d{d:02d}"
        node = vault.repo.get_blob(after.lookup(folder).subtree)
        assert encode_tree(decode_tree(node)) == node
        old = {e.name: e for e in before.listdir(folder)}
        new = {e.name: e for e in after.listdir(folder)}
        changed = f"f05{suffix}"
        assert {n: e for n, e in new.items() if n != changed} == {n: e for n, e in old.items() if n != changed}
        assert vault.open_file("t", None, f"{folder}/{changed}").read() == b"changed %d" % d
