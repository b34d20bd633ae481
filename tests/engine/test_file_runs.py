"""A workload may give the plain files of a folder at once (:class:`FileRun`): the backup
is the very same point as with a :class:`FileSource` per file, first or later, whatever
changed; a file the same as in the parent point is reused without an entry made of it."""

from __future__ import annotations

import os
import random

import attrs
import pytest

from strongroom import FILE, Entry, FileRun, FileSource, FolderSource, Workload, each_source
from strongroom.engine import slots
from strongroom.errors import BackupError
from strongroom.testing import assert_trees_equal, build_sample_tree
from strongroom.vault import Vault
from strongroom_files.scan import Scanner
from vaultkit import workload_host


def _fields(entry: Entry) -> tuple:
    """The values of ``entry`` in the order of its fields (``Entry(*fields)`` is it)."""
    return attrs.astuple(entry, recurse=False)


def _grouped(sources, seed: int):
    """``sources`` with runs of the plain files of a folder given as :class:`FileRun` of
    random lengths (1 to 40), the other sources as they are."""
    rng = random.Random(seed)
    run: list = []
    folder = None
    limit = rng.randint(1, 40)
    for src in sources:
        entry = src.entry
        plain = type(src) is FileSource and entry.type == FILE and entry.nlink == 1
        here = src.path.rpartition("/")[0]
        if run and (not plain or here != folder or len(run) == limit):
            yield FileRun(folder, tuple(run))
            run, limit = [], rng.randint(1, 40)
        if plain:
            folder = here
            run.append((src.path, src.abspath, _fields(entry)))
        else:
            yield src
    if run:
        yield FileRun(folder, tuple(run))


class ScanWorkload(Workload):
    """The files plugin's scan of ``source["path"]``, its plain files in runs if
    ``source["runs"]`` (with the seed ``source["seed"]``)."""

    name = "runscan"

    def validate_source(self, source):
        return source

    def backup(self, ctx):
        sources = Scanner([ctx.item.source["path"]])
        if ctx.item.source["runs"]:
            return _grouped(sources, ctx.item.source["seed"])
        return iter(sources)


@pytest.fixture
def tree(tmp_path) -> str:
    root = build_sample_tree(str(tmp_path / "src"), big_file_mib=1, small_files=300)
    many = os.path.join(root, "many")
    for d in range(3):
        os.makedirs(os.path.join(many, f"d{d}"))
        for n in range(120):
            with open(os.path.join(many, f"d{d}", f"f{n:03d}"), "wb") as f:
                f.write(os.urandom(n * 7 % 3000))
    return root


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    return Vault.create(str(tmp_path / "vault"), plugins=workload_host(runscan=ScanWorkload))


def _change(root: str) -> None:
    """A day of changes: content, metadata only, an extended attribute, files gone and new."""
    many = os.path.join(root, "many")
    with open(os.path.join(many, "d0", "f005"), "ab") as f:
        f.write(b"more")
    os.chmod(os.path.join(many, "d1", "f010"), 0o600)
    os.setxattr(os.path.join(many, "d1", "f011"), "user.tag", b"x")
    os.unlink(os.path.join(many, "d2", "f020"))
    with open(os.path.join(many, "d2", "f020b"), "wb") as f:
        f.write(b"new file")
    st = os.stat(os.path.join(many, "d2", "f030"))
    os.utime(os.path.join(many, "d2", "f030"), ns=(st.st_atime_ns, st.st_mtime_ns + 1))


@pytest.mark.parametrize("seed", [1, 2])
def test_runs_make_the_same_points_as_single_sources(vault, tree, tmp_path, seed):
    vault.protect("runscan", "singles", {"path": tree, "runs": False})
    vault.protect("runscan", "runs", {"path": tree, "runs": True, "seed": seed})
    assert any(type(s) is FileRun and len(s.files) > 1 for s in _grouped(Scanner([tree]), seed))
    first = {item: vault.backup(item) for item in ("runs", "singles")}
    assert first["runs"].root == first["singles"].root
    again = {item: vault.backup(item) for item in ("runs", "singles")}  # nothing changed
    assert again["runs"].root == again["singles"].root == first["runs"].root
    assert again["runs"].stats["files_unchanged"] == again["singles"].stats["files_unchanged"] > 360
    assert again["runs"].stats["bytes_read"] == again["singles"].stats["bytes_read"] == 0
    _change(tree)
    later = {item: vault.backup(item) for item in ("runs", "singles")}
    assert later["runs"].root == later["singles"].root != first["runs"].root
    for key in ("files", "files_unchanged", "files_read", "bytes_read", "bytes_total"):
        assert later["runs"].stats[key] == later["singles"].stats[key], key
    out = tmp_path / "out"
    vault.restore("runs", None, str(out))
    assert_trees_equal(tree, str(out / tree.lstrip("/")))


def test_a_file_whose_chunks_are_gone_is_read_again(vault, tree, monkeypatch):
    """A file of a run equal to its row, but whose chunks the vault no longer holds
    (as the parent point's folder tells), is read again, not reused."""
    vault.protect("runscan", "runs", {"path": tree, "runs": True, "seed": 3})
    vault.backup("runs")
    unchanged = vault.backup("runs").stats["files_unchanged"]
    from strongroom.engine import parentfolders

    real = parentfolders.ParentFolders._load

    def load(self, path):  # every chunk of the folders of "many" counts as gone
        folder = real(self, path)
        if path.endswith(("many/d0", "many/d1", "many/d2")) and folder.stored:
            folder.missing = frozenset(c for row in folder.stored.values() if row.type == FILE for c in row.chunks)
        return folder

    monkeypatch.setattr(parentfolders.ParentFolders, "_load", load)
    second = vault.backup("runs")
    # each folder's empty file has no chunk to miss; every other file of them is read again
    assert second.stats["files_read"] == 3 * 119
    assert second.stats["files_unchanged"] == unchanged - 3 * 119


def test_each_source_gives_the_single_sources():
    entry = Entry(name="a", type=FILE, size=3, nlink=1)
    fields = _fields(entry)
    run = FileRun("d", (("d/a", "/x/d/a", fields), ("d/b", "/x/d/b", fields[:0] + ("b",) + fields[1:])))
    folder = FolderSource.named("d")
    got = list(each_source([folder, run]))
    assert got == [folder, FileSource("d/a", "/x/d/a", entry), FileSource("d/b", "/x/d/b", Entry(**{**_as_dict(entry), "name": "b"}))]


def _as_dict(entry: Entry) -> dict:
    return attrs.asdict(entry, recurse=False)


class GivenRun(Workload):
    """The folders ``d`` and ``e``, then the run of ``source["folder"]`` with one file at
    ``source["path"]`` whose entry has ``source["nlink"]`` links."""

    name = "givenrun"

    def validate_source(self, source):
        return source

    def backup(self, ctx):
        given = ctx.item.source
        entry = Entry(name=given["path"].rpartition("/")[2], type=FILE, nlink=given["nlink"])
        yield FolderSource.named("d")
        yield FolderSource.named("e")
        yield FileRun(given["folder"], ((given["path"], "/nonexistent/" + given["path"], _fields(entry)),))


@pytest.mark.parametrize("given, message", [
    ({"folder": "e", "path": "e/linked", "nlink": 2}, "holds 'e/linked', which is not a plain file of one link"),
    ({"folder": "e", "path": "d/f", "nlink": 1}, "a run of files of folder 'e' holds 'd/f'"),
])
def test_a_run_with_what_is_not_its_plain_file_is_refused(tmp_path, strongroom_isolated_home, given, message):
    """A file of several links, or one of another folder, fails the backup with a one-line error."""
    vault = Vault.create(str(tmp_path / "vault"), plugins=workload_host(givenrun=GivenRun))
    vault.protect("givenrun", "one", given)
    with pytest.raises(BackupError, match=message):
        vault.backup("one")


def test_a_reused_slot_without_an_entry_resolves_to_its_row():
    """A file of a run reused from its row has no entry of its own: its row's entry,
    with the row's chunks."""
    from strongroom.catalog.tree import decode_tree_rows, encode_tree

    entry = Entry(name="f", type=FILE, size=4, mtime_ns=7, chunks=(bytes(range(32)),))
    rows = decode_tree_rows(encode_tree([entry]), what="test")
    assert slots.resolve(slots.Reused(None, rows["f"])) == entry
