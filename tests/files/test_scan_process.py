"""The scan carried on in a second process past the first entries (scanprocess.py): the
same entries in the same order and the same warnings as a scan in this process, from a
real helper; a helper that dies or never answers changes nothing but the time."""

from __future__ import annotations

import logging
import os
import select
import signal

import attrs
import pytest

from strongroom import FILE, HARDLINK, Entry, FileRun, FileSource, each_source, processes
from strongroom.testing import assert_trees_equal, build_sample_tree
from strongroom.vault import Vault
from strongroom_files import scanprocess
from strongroom_files.scan import Scanner, ScanWarning
from strongroom_files.scanprocess import _after, _Emitted, _Helper, _HelperLost, scan, walk_key

pytestmark = pytest.mark.skipif(scanprocess.cpus() < 2, reason="the helper runs only with more than one CPU")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    """The sample tree (hard links, symbolic links, a fifo, extended attributes, names
    that are not UTF-8, modes and owners) with a folder that is left out (a warning)."""
    root = build_sample_tree(str(tmp_path_factory.mktemp("scan") / "src"), big_file_mib=1, small_files=400)
    os.makedirs(os.path.join(root, "zz-left-out", "inside"))
    return root


@pytest.fixture(autouse=True)
def handed_over_at_once(monkeypatch):
    """The scan here waits for the helper at the first entry past the hand-over (these
    trees are scanned here before a helper would have started); no job is being stopped
    (a lost helper is then not warned about)."""
    monkeypatch.setattr(processes, "_ending", False)
    monkeypatch.setattr(scanprocess, "_POLL_EVERY", 1)
    monkeypatch.setattr(_Helper, "ready", lambda self: bool(select.select([self.stream], [], [], 60)[0]))


def _scanner(root: str) -> Scanner:
    return Scanner([root], excludes=["*.skip"], leave_out=[os.path.join(root, "zz-left-out")])


def _seen(root: str, sources) -> list:
    """The entries inside ``root`` (the folders above it are other processes' to change)
    without access times (listing a folder sets its own)."""
    inside = root.lstrip("/")
    return [(type(s), s.path, getattr(s, "abspath", ""), attrs.evolve(s.entry, atime_ns=0)) for s in each_source(sources)
            if s.path == inside or s.path.startswith(inside + "/")]


def _counting_helpers(monkeypatch) -> list[int]:
    """Counts the entries each helper sends, in a list (one number per helper started)."""
    counts: list[int] = []
    real = _Helper.entries

    def entries(self, yielded):
        counts.append(0)
        for src in real(self, yielded):
            counts[-1] += len(src.files) if type(src) is FileRun else 1
            yield src

    monkeypatch.setattr(_Helper, "entries", entries)
    return counts


@pytest.mark.parametrize("handover_after", [1, 7, 300, 10**9])
def test_the_helper_yields_what_the_scan_here_yields(tree, monkeypatch, handover_after):
    """Handed over after the first entry, a few, hundreds, or never: the same entries in
    the same order, the same warnings, and (but never) entries from a helper."""
    reference = _scanner(tree)
    expected = _seen(tree, list(reference))
    counts = _counting_helpers(monkeypatch)
    scanner = _scanner(tree)
    found = _seen(tree, list(scan(scanner, handover_after=handover_after)))
    assert found == expected
    assert scanner.warnings == reference.warnings and any("zz-left-out" in w.path for w in scanner.warnings)
    if handover_after == 10**9:
        assert counts == []
    else:  # entries came from the helper, none that this process had yielded
        assert len(counts) == 1 and 0 < counts[0] <= len(list(_scanner(tree))) - handover_after


@pytest.mark.parametrize("yielded", [0, 9, 200])
def test_the_helper_sends_only_the_entries_after_those_yielded_before_it_started(tree, yielded):
    """Started once this process has yielded some entries, the helper sends those after
    the last of them, all of them, in order: it drops the others itself."""
    reference = [s.path for s in _scanner(tree)]
    helper = _Helper.start(_scanner(tree), reference[yielded])
    try:
        sent = [s.path for s in each_source(helper.entries(""))]
    finally:
        helper.close()
    assert sent == reference[yielded + 1:] and sent


def test_a_helper_that_died_before_it_answered(tree, monkeypatch, caplog):
    """Killed as it starts: the scan goes on in this process, from the entry after the
    last one yielded, with a log warning; nothing is yielded twice or left out."""
    real = _Helper.start

    def start_and_kill(scanner, yielded):
        helper = real(scanner, yielded)
        helper.process.send_signal(signal.SIGKILL)
        helper.process.wait()
        return helper

    monkeypatch.setattr(_Helper, "start", start_and_kill)
    _assert_scans_alike(tree, caplog, 5)
    assert "the process scanning the files ended unexpectedly" in caplog.text


def _assert_scans_alike(tree: str, caplog, handover_after: int) -> None:
    """A scan handed over after ``handover_after`` entries yields what a scan here does,
    with the same warnings (the log's are in ``caplog``)."""
    reference = _scanner(tree)
    expected = _seen(tree, list(reference))
    scanner = _scanner(tree)
    with caplog.at_level(logging.WARNING, logger=scanprocess.__name__):
        found = _seen(tree, list(scan(scanner, handover_after=handover_after)))
    assert found == expected
    assert scanner.warnings == reference.warnings


@pytest.mark.parametrize("lost_after", [0, 1, 250])
def test_a_helper_lost_in_the_middle(tree, monkeypatch, caplog, lost_after):
    """The helper's stream ends after some of its entries (as when it is killed): the
    scan goes on in this process from the entry after the last one yielded."""
    real = _Helper.entries

    def cut(self, yielded):  # after ``lost_after`` entries, the files of a run counted one by one
        n = 0
        for src in real(self, yielded):
            if type(src) is FileRun and n + len(src.files) > lost_after:
                if lost_after > n:  # part of the run came
                    yield FileRun(src.folder, src.files[:lost_after - n])
                n = lost_after
            if n == lost_after:
                raise _HelperLost("ended unexpectedly")
            n += len(src.files) if type(src) is FileRun else 1
            yield src

    monkeypatch.setattr(_Helper, "entries", cut)
    _assert_scans_alike(tree, caplog, 3)
    assert "ended unexpectedly; the scan goes on in this process" in caplog.text


def test_a_helper_that_fails_says_why(tree, monkeypatch, caplog):
    """A source path gone when the helper starts: its scanner fails there, the helper
    says so, and the scan here goes on (its own scanner warns about what is gone)."""
    os.makedirs(os.path.join(tree, "zz-gone"), exist_ok=True)
    monkeypatch.setattr(_Helper, "start", _start_without(os.path.join(tree, "zz-gone")))
    scanner = Scanner([tree, os.path.join(tree, "zz-gone")])
    with caplog.at_level(logging.WARNING, logger=scanprocess.__name__):
        found = list(scan(scanner, handover_after=2))
    assert "failed (SourceError" in caplog.text
    assert [s.path for s in each_source(found)] == [s.path for s in Scanner([tree])]


def _start_without(gone: str):
    real = _Helper.start

    def start(scanner, yielded):
        os.rmdir(gone)
        return real(scanner, yielded)

    return start


def test_a_hard_link_to_a_first_name_not_yielded_becomes_a_file():
    """The tree changed between the two scans: the helper names as first name a path
    before the hand-over that this process yielded as something else; the link is
    yielded as a file (read whole), and a later link to it stays a link."""
    emitted = _Emitted()
    emitted.last = "d/m"
    emitted.linked = {"d/a"}

    def source(path: str, kind: str, target: str = "") -> FileSource:
        entry = Entry(name=path.rpartition("/")[2], type=kind, nlink=2, size=5, target=target)
        return FileSource(path, "/" + path, entry)

    helper_stream = [source("d/a", FILE), source("d/b", HARDLINK, "d/a"), source("d/m", FILE),
                     source("d/x", HARDLINK, "d/a"), source("d/y", HARDLINK, "d/b"), source("d/z", HARDLINK, "d/y")]
    got = list(emitted.after(iter(helper_stream)))
    assert [(s.path, s.entry.type, s.entry.target) for s in got] == [
        ("d/x", HARDLINK, "d/a"), ("d/y", FILE, ""), ("d/z", HARDLINK, "d/y")]
    assert emitted.last == "d/z"


def test_warnings_about_the_entry_handed_over_are_not_lost_nor_repeated():
    """The scan here stopped right after yielding folder ``/d/m``: it has the warning
    about the entry's attributes (made before it was yielded), not the one that the
    folder cannot be listed (made after).  Of the helper's warnings, those about paths
    before it go, that one stays, and the rest after it stay."""
    here = [ScanWarning("/d/a", "gone"), ScanWarning("/d/m", "xattrs unreadable")]
    helper = [ScanWarning("/d/a", "gone"), ScanWarning("/d/m", "xattrs unreadable"),
              ScanWarning("/d/m", "cannot list"), ScanWarning("/d/m/x", "gone"), ScanWarning("/d/n", "gone")]
    assert _after("d/m", helper, here) == helper[2:]


def test_walk_key_is_the_scanner_order():
    """Components compared as bytes: ``a/b`` before ``a-b`` (the folder's contents come
    before its next sibling), upper case before lower, é after z."""
    paths = ["", "a", "a/b", "a/b/c", "a-b", "a.b", "aB", "ab", "z", "é"]
    assert sorted(paths, key=walk_key) == paths


def test_a_package_of_the_same_name_in_the_current_folder_is_not_imported(tree, tmp_path, monkeypatch):
    """The helper runs this plugin's own code: a ``strongroom_files`` folder in the
    current folder (which would fail on import) is not on its path."""
    trap = tmp_path / "cwd" / "strongroom_files"
    trap.mkdir(parents=True)
    (trap / "__init__.py").write_text("raise SystemExit('the wrong strongroom_files was imported')\n")
    monkeypatch.chdir(trap.parent)
    counts = _counting_helpers(monkeypatch)
    expected = _seen(tree, list(_scanner(tree)))
    assert _seen(tree, list(scan(_scanner(tree), handover_after=3))) == expected
    assert counts and counts[0] >= len(expected) - 3


def test_a_backup_through_the_helper_restores_as_it_was(tmp_path, monkeypatch, strongroom_isolated_home):
    """The first backup of a tree scans it here; the next ones hand the scan over (after
    50 entries here): the point of a changed tree restores byte for byte with its
    metadata, and a backup of the unchanged tree reads no file and reuses its tree."""
    monkeypatch.setattr(scanprocess, "HANDOVER_AFTER", 50)
    counts = _counting_helpers(monkeypatch)
    tree = build_sample_tree(str(tmp_path / "src"), big_file_mib=1, small_files=200)
    vault = Vault.create(str(tmp_path / "vault"))
    vault.protect("files", "tree", {"paths": [tree]})
    vault.backup("tree")
    assert counts == []
    with open(os.path.join(tree, "big.bin"), "ab") as f:
        f.write(os.urandom(70_000))
    with open(os.path.join(tree, "nested", "added.txt"), "wb") as f:
        f.write(b"written after the first backup\n")
    os.unlink(os.path.join(tree, "empty_file"))
    changed = vault.backup("tree")
    assert len(counts) == 1 and counts[0] > 50
    assert changed.stats["files_read"] == 2
    again = vault.backup("tree")
    assert len(counts) == 2
    assert again.stats["files_read"] == 0 and again.stats["files_unchanged"] > 200
    folder, name = os.path.split(tree.lstrip("/"))  # the folders above it are other processes' to change

    def subtree(result):
        return next(e.subtree for e in vault.tree(result).listdir(folder) if e.name == name)

    assert subtree(again) == subtree(changed)
    # last: comparing reads the source's files, which sets their access times
    vault.restore("tree", None, str(tmp_path / "out"))
    assert_trees_equal(tree, os.path.join(str(tmp_path / "out"), tree.lstrip("/")))


def test_the_helper_sends_the_plain_files_of_a_folder_as_runs(tree):
    """Files of one link, of type file, one after the other in one folder, come as one
    run (however many frames it takes, at most a frame each); every other entry alone."""
    helper = _Helper.start(_scanner(tree), "")
    try:
        sent = list(helper.entries(""))
    finally:
        helper.close()
    runs = [s for s in sent if type(s) is FileRun]
    reference = list(_scanner(tree))
    plain = [type(s) is FileSource and s.entry.type == FILE and s.entry.nlink == 1 for s in reference]
    groups = sum(1 for i, p in enumerate(plain) if p and not (  # plain files in a row, of one folder
        i and plain[i - 1] and reference[i - 1].path.rpartition("/")[0] == reference[i].path.rpartition("/")[0]))
    frames = -(-len(reference) // scanprocess.FRAME_ENTRIES)
    assert groups <= len(runs) <= groups + frames and max(len(run.files) for run in runs) > 1
    assert sum(len(run.files) for run in runs) == sum(plain)
    for run in runs:
        assert 0 < len(run.files) <= scanprocess.FRAME_ENTRIES
        for path, abspath, fields in run.files:
            entry = Entry(*fields)
            assert path.rpartition("/")[0] == run.folder and abspath.endswith("/" + entry.name)
            assert entry.type == FILE and entry.nlink == 1
    for src in sent:
        if type(src) is FileSource:
            assert src.entry.type == HARDLINK or src.entry.nlink > 1
    assert [s.path for s in each_source(sent)] == [s.path for s in reference]


def test_what_is_dropped_of_a_frame_with_runs():
    """The entries up to the one handed over go, of a run only its files up to it."""
    fields = (0,)
    frame = [
        (1, "d", "/d", fields),
        (scanprocess._RUN, "d", (("d/a", "/d/a", fields), ("d/b", "/d/b", fields), ("d/c", "/d/c", fields))),
        (1, "e", "/e", fields),
    ]
    assert scanprocess._after_in_frame(frame, walk_key("d")) == frame[1:]
    assert scanprocess._after_in_frame(frame, walk_key("d/a")) == [
        (scanprocess._RUN, "d", (("d/b", "/d/b", fields), ("d/c", "/d/c", fields))), frame[2]]
    assert scanprocess._after_in_frame(frame, walk_key("d/c")) == frame[2:]
    assert scanprocess._after_in_frame(frame, walk_key("e")) == []


def test_a_run_handed_over_in_part_and_the_last_path():
    """A run of the helper that starts before the last entry yielded here is cut after it;
    the last path yielded is then the run's last file's."""
    emitted = _Emitted()
    emitted.last = "d/b"
    entry = Entry(name="x", type=FILE)
    fields = attrs.astuple(entry, recurse=False)
    run = FileRun("d", tuple((f"d/{n}", f"/d/{n}", fields) for n in "abcd"))
    got = list(emitted.after(iter([run, FileRun("d", (("d/e", "/d/e", fields),))])))
    assert [[path for path, _, _ in r.files] for r in got] == [["d/c", "d/d"], ["d/e"]]
    assert emitted.last == "d/e"
    emitted.last = "d/z"
    assert list(emitted.after(iter([run]))) == []
