"""The files workload's scanner: layout, order, metadata, hardlinks, filters and errors."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator

import pytest

from strongroom.catalog.entry import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK
from strongroom.errors import SourceError
from strongroom.testing import BAD_NAME, NEWLINE_NAME, build_sample_tree, xattrs_supported
from strongroom_files.patterns import compile_patterns
from strongroom_files.scan import ScannedEntry, Scanner


def point_path(abspath: str) -> str:
    """The point-relative path under which a scan records ``abspath``."""
    return abspath.lstrip("/")


def scan_below(root: str, **options) -> dict[str, ScannedEntry]:
    """Scan ``root`` and key the entries below it by their path relative to ``root``."""
    prefix = point_path(root) + "/"
    return {s.path[len(prefix) :]: s for s in Scanner([root], **options) if s.path.startswith(prefix)}


def order_key(path: str) -> tuple[bytes, ...]:
    return tuple(os.fsencode(part) for part in path.split("/"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("scan") / "sample")
    build_sample_tree(root, big_file_mib=1, small_files=300)
    return root


@pytest.fixture(scope="module")
def scanned(sample: str) -> list[ScannedEntry]:
    return list(Scanner([sample]))


@pytest.fixture
def src(tmp_path) -> str:
    """A small tree: ``a/`` (with ``x``, ``sub/y``), ``b.txt``, ``c.tmp``."""
    root = tmp_path / "src"
    (root / "a" / "sub").mkdir(parents=True)
    (root / "a" / "x").write_bytes(b"x")
    (root / "a" / "sub" / "y").write_bytes(b"y")
    (root / "b.txt").write_bytes(b"b")
    (root / "c.tmp").write_bytes(b"c")
    return str(root)


class _Listing:
    """A finished directory listing that behaves like the object os.scandir returns."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self._entries = entries

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __iter__(self) -> Iterator[os.DirEntry[str]]:
        return iter(self._entries)


class TestComparePatterns:
    def test_no_pattern_never_matches(self) -> None:
        """An empty pattern list matches nothing."""
        assert not compile_patterns([])("/a/b", "b")

    def test_basename_pattern_matches_at_any_depth(self) -> None:
        """A pattern without '/' matches the basename wherever it is."""
        match = compile_patterns(["*.tmp", "node_modules"])
        assert match("/x/y/z.tmp", "z.tmp")
        assert match("/srv/app/node_modules", "node_modules")
        assert not match("/x/z.tmp/inner", "inner")
        assert not match("/x/node_modules2", "node_modules2")

    def test_star_does_not_cross_slash(self) -> None:
        """A single '*' stops at a '/' in an absolute pattern."""
        match = compile_patterns(["/a/*"])
        assert match("/a/b", "b")
        assert not match("/a/b/c", "c")

    def test_double_star_crosses_slash(self) -> None:
        """'**' matches across directories, and '**/' also matches none."""
        match = compile_patterns(["/a/**/c"])
        assert match("/a/c", "c")
        assert match("/a/b/d/c", "c")
        assert not match("/a/bc", "bc")
        assert compile_patterns(["/a/**"])("/a/b/c", "c")

    def test_absolute_pattern_is_anchored(self) -> None:
        """A pattern starting with '/' matches the whole absolute path only."""
        match = compile_patterns(["/home/*/cache"])
        assert match("/home/alice/cache", "cache")
        assert not match("/srv/home/alice/cache", "cache")
        assert not match("/home/alice/cache/x", "x")

    def test_relative_pattern_with_slash_matches_a_tail(self) -> None:
        """A pattern with an inner '/' matches the end of the path from a component start."""
        match = compile_patterns(["cache/*.bin"])
        assert match("/home/x/cache/a.bin", "a.bin")
        assert not match("/home/xcache/a.bin", "a.bin")
        assert not match("/home/cache/sub/a.bin", "a.bin")

    def test_question_mark_and_classes(self) -> None:
        """'?' is one character, '[...]' and '[!...]' are classes."""
        assert compile_patterns(["file?.[ch]"])("/p/file1.c", "file1.c")
        assert not compile_patterns(["file?.[ch]"])("/p/file12.c", "file12.c")
        assert not compile_patterns(["file?.[ch]"])("/p/file1.o", "file1.o")
        assert compile_patterns(["[!a]*"])("/p/b", "b")
        assert not compile_patterns(["[!a]*"])("/p/abc", "abc")

    def test_regex_characters_are_literal(self) -> None:
        """Characters special to regular expressions match themselves, so does a lone '['."""
        match = compile_patterns(["a+b(1).txt", "x[y"])
        assert match("/p/a+b(1).txt", "a+b(1).txt")
        assert not match("/p/aab(1)xtxt", "aab(1)xtxt")
        assert match("/p/x[y", "x[y")

    def test_star_matches_newlines_in_names(self) -> None:
        """A '*' matches a name containing a newline."""
        assert compile_patterns(["*.log"])("/p/a\nb.log", "a\nb.log")

    def test_trailing_slash_ignored_and_empty_rejected(self) -> None:
        """'cache/' means 'cache'; an empty pattern is a ValueError."""
        assert compile_patterns(["cache/"])("/p/cache", "cache")
        with pytest.raises(ValueError):
            compile_patterns([""])


class TestLayout:
    def test_parents_emitted_first_with_their_metadata(self, src: str) -> None:
        """The parents of a source come first, one per component, with their own metadata."""
        entries = list(Scanner([os.path.join(src, "a")]))
        parts = point_path(src).split("/") + ["a"]
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        assert [s.path for s in entries[: len(parts)]] == prefixes
        for s in entries[: len(parts)]:
            assert s.entry.type == DIR
            assert s.entry.name == s.path.rsplit("/", 1)[-1]
            assert s.entry.ino == os.stat("/" + s.path).st_ino
            assert s.abspath == "/" + s.path

    def test_overlapping_sources_scanned_once(self, src: str) -> None:
        """A source inside another one, or given twice, does not duplicate entries."""
        paths = [s.path for s in Scanner([src, os.path.join(src, "a"), src + "/", os.path.join(src, "a/sub/y")])]
        assert len(paths) == len(set(paths))
        assert set(paths) == {s.path for s in Scanner([src])}

    def test_several_sources_share_parents_in_order(self, src: str) -> None:
        """Sources given in any order come out in point order with shared parents once."""
        paths = [s.path for s in Scanner([os.path.join(src, "b.txt"), os.path.join(src, "a")])]
        base = point_path(src)
        assert paths[-6:] == [base, f"{base}/a", f"{base}/a/sub", f"{base}/a/sub/y", f"{base}/a/x", f"{base}/b.txt"]
        assert len(paths) == len(set(paths))

    def test_file_source(self, src: str) -> None:
        """A file as source yields its parent directories and then the file."""
        entries = list(Scanner([os.path.join(src, "b.txt")]))
        assert [s.entry.type for s in entries] == [DIR] * (len(entries) - 1) + [FILE]
        assert entries[-1].path == point_path(src) + "/b.txt"

    def test_relative_and_unnormalised_sources(self, src: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Relative paths and '..' are made absolute and normalised."""
        monkeypatch.chdir(os.path.dirname(src))
        relative = [s.path for s in Scanner(["src/a/../a"])]
        assert relative == [s.path for s in Scanner([os.path.join(src, "a")])]

    def test_symlink_source_not_followed(self, src: str) -> None:
        """A source that is a symlink is backed up as the link, not the directory."""
        link = os.path.join(os.path.dirname(src), "link")
        os.symlink(src, link)
        last = list(Scanner([link]))[-1]
        assert (last.path, last.entry.type, last.entry.target) == (point_path(link), SYMLINK, src)

    def test_filesystem_root_as_source(self) -> None:
        """'/' as source puts its children at the top; other sources below it merge in."""
        assert list(Scanner(["/", "/tmp"], excludes=["/*"])) == []
        top = next(iter(Scanner(["/"], excludes=["/*/*"])))
        assert "/" not in top.path and top.abspath == "/" + top.path


class TestOrder:
    def test_paths_strictly_increase_by_components(self, scanned: list[ScannedEntry]) -> None:
        """Pre-order with byte-sorted children: split paths are in strictly increasing order."""
        keys = [order_key(s.path) for s in scanned]
        assert all(a < b for a, b in zip(keys, keys[1:]))

    def test_directory_before_contents(self, scanned: list[ScannedEntry]) -> None:
        """Every entry's parent directory was yielded before it."""
        seen: set[str] = set()
        for s in scanned:
            parent = s.path.rpartition("/")[0]
            assert not parent or parent in seen, s.path
            if s.entry.type == DIR:
                seen.add(s.path)

    def test_everything_found(self, sample: str, scanned: list[ScannedEntry]) -> None:
        """The scan yields exactly the entries os.walk finds."""
        found = {point_path(os.path.join(d, n)) for d, ds, fs in os.walk(sample) for n in ds + fs}
        assert {s.path for s in scanned} == found | {point_path(sample)} | {
            point_path(sample).rsplit("/", i)[0] for i in range(1, sample.count("/"))
        }

    def test_subtree_before_next_sibling(self, tmp_path) -> None:
        """'a/x' comes before 'a b' although ' ' sorts before '/' in whole-path order."""
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "x").write_bytes(b"")
        (tmp_path / "a b").write_bytes(b"")
        (tmp_path / "a.b").write_bytes(b"")
        assert list(scan_below(str(tmp_path))) == ["a", "a/x", "a b", "a.b"]

    def test_sorted_by_bytes_not_code_points(self, tmp_path) -> None:
        """An undecodable byte 0xff sorts after U+E000 (0xee...), as the bytes do."""
        for name in (os.fsdecode(b"\xff"), "\ue000", "z"):
            (tmp_path / name).write_bytes(b"")
        assert list(scan_below(str(tmp_path))) == ["z", "\ue000", os.fsdecode(b"\xff")]


class TestMetadata:
    def test_fields_match_lstat(self, sample: str, scanned: list[ScannedEntry]) -> None:
        """Mode, owner, times, size, inode, device and link count equal os.lstat."""
        below = [s for s in scanned if s.abspath.startswith(sample + "/")]
        assert len(below) > 300
        for s in below:
            st, e = os.lstat(s.abspath), s.entry
            assert e.mode == stat.S_IMODE(st.st_mode), s.path
            assert (e.uid, e.gid, e.ino, e.dev, e.nlink) == (st.st_uid, st.st_gid, st.st_ino, st.st_dev, st.st_nlink)
            assert (e.mtime_ns, e.ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)
            assert e.size == (st.st_size if stat.S_ISREG(st.st_mode) else 0)
            assert e.chunks == () and e.subtree is None

    def test_types(self, sample: str) -> None:
        """Files, directories, symlinks and fifos get their entry type."""
        entries = scan_below(sample)
        assert entries["big.bin"].entry.type == FILE
        assert entries["nested"].entry.type == DIR
        assert entries["links/to_dir"].entry.type == SYMLINK
        assert entries["special/fifo"].entry.type == FIFO

    def test_devices_and_sockets(self, tmp_path) -> None:
        """Character and block devices keep their rdev; a socket is typed as such."""
        try:
            os.mknod(tmp_path / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
            os.mknod(tmp_path / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
        except PermissionError:
            pytest.skip("creating device nodes is not permitted here")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / "sock"))
            entries = scan_below(str(tmp_path))
        assert (entries["chr"].entry.type, entries["chr"].entry.rdev) == (CHARDEV, os.makedev(1, 3))
        assert (entries["blk"].entry.type, entries["blk"].entry.rdev) == (BLOCKDEV, os.makedev(7, 0))
        assert entries["sock"].entry.type == SOCKET

    def test_modes_keep_special_bits(self, sample: str) -> None:
        """setuid, setgid and 0o000 modes are recorded exactly."""
        entries = scan_below(sample)
        assert entries["owners/setuid"].entry.mode == 0o4755
        assert entries["modes/setgid_dir"].entry.mode == 0o2775
        assert entries["modes/none"].entry.mode == 0o000

    def test_user_and_group_names(self, sample: str) -> None:
        """Owner names are looked up; an owner unknown to this system has an empty name."""
        entries = scan_below(sample)
        root_entry = entries["big.bin"].entry
        assert (root_entry.user, root_entry.group) == ("root", "root")
        if os.geteuid() == 0:
            assert (entries["owners/u1234"].entry.user, entries["owners/u1234"].entry.group) == ("", "")

    def test_symlink_target_text(self, sample: str) -> None:
        """A symlink's target is its exact text, dangling or absolute alike."""
        entries = scan_below(sample)
        assert entries["links/dangling"].entry.target == "does/not/exist"
        assert entries["links/relative"].entry.target == "../nested/l1/l2/mid.txt"

    def test_xattrs(self, sample: str) -> None:
        """xattrs of files and directories are read in sorted order."""
        if not xattrs_supported(sample):
            pytest.skip("the temporary file system does not store user xattrs")
        entries = scan_below(sample)
        keys = [k for k, _ in entries["nested/l1/l2/mid.txt"].entry.xattrs]
        assert keys == sorted(keys) and "user.comment" in keys
        assert dict(entries["nested/l1/l2/mid.txt"].entry.xattrs)["user.binary"] == bytes(range(256))
        assert dict(entries["nested/l1"].entry.xattrs)["user.tag"] == b"a directory"

    def test_sparse_flag(self, sample: str) -> None:
        """Only files with fewer allocated bytes than their size are sparse."""
        entries = scan_below(sample)
        sparse = {p for p, s in entries.items() if s.entry.sparse}
        assert sparse == {"sparse.img"}


class TestHardlinks:
    def test_first_name_is_file_others_point_to_it(self, sample: str) -> None:
        """The first name of an inode is a FILE, later names HARDLINKs targeting it."""
        entries = scan_below(sample)
        first = entries["hard/a"]
        assert first.entry.type == FILE
        for name in ("hard/sub/b", "nested/l1/c"):
            assert entries[name].entry.type == HARDLINK
            assert entries[name].entry.target == first.path
            assert entries[name].entry.size == first.entry.size > 0

    def test_single_name_inside_source_is_a_file(self, tmp_path) -> None:
        """A file whose other names are outside the source is a plain FILE."""
        (tmp_path / "src").mkdir()
        (tmp_path / "outside").write_bytes(b"data")
        os.link(tmp_path / "outside", tmp_path / "src" / "inside")
        entry = scan_below(str(tmp_path / "src"))["inside"].entry
        assert (entry.type, entry.nlink) == (FILE, 2)

    def test_excluded_first_name(self, sample: str) -> None:
        """When the first name is excluded, the next name carries the content."""
        entries = scan_below(sample, excludes=[os.path.join(sample, "hard/a")])
        assert "hard/a" not in entries
        assert entries["hard/sub/b"].entry.type == FILE
        assert entries["nested/l1/c"].entry.target == entries["hard/sub/b"].path


class TestFilters:
    def test_exclude_by_basename(self, sample: str) -> None:
        """Excluded names are left out wherever they are."""
        entries = scan_below(sample, excludes=["*.bin"])
        assert entries and not any(p.endswith(".bin") for p in entries)
        assert any(p.endswith(".txt") for p in entries)

    def test_excluded_directory_not_descended(self, sample: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """An excluded directory is neither yielded nor listed."""
        listed: list[str] = []
        real = os.scandir
        monkeypatch.setattr(os, "scandir", lambda p: listed.append(p) or real(p))
        entries = scan_below(sample, excludes=["l2"])
        assert "nested/l1" in entries and not any(p.startswith("nested/l1/l2") for p in entries)
        assert not any("/l2" in p for p in listed)

    def test_exclude_absolute_path(self, sample: str) -> None:
        """An absolute pattern excludes that path only."""
        entries = scan_below(sample, excludes=[os.path.join(sample, "small/g0[0-4]")])
        assert not any(p.startswith("small/g00") for p in entries)
        assert "small/g05" in entries

    def test_includes_keep_matches_and_their_directories(self, sample: str) -> None:
        """With includes, only matching files and the directories leading to them remain."""
        entries = scan_below(sample, includes=["*.txt"])
        files = {p for p, s in entries.items() if s.entry.type != DIR}
        dirs = {p for p, s in entries.items() if s.entry.type == DIR}
        assert files and all(p.endswith(".txt") for p in files)
        assert "nested/l1/l2/l3/l4/deep.txt" in files
        assert "empty_dir" not in dirs and "special" not in dirs
        assert all(any(f.startswith(d + "/") for f in files) for d in dirs)

    def test_included_directory_keeps_its_subtree(self, sample: str) -> None:
        """A directory matching an include is kept with everything in it."""
        entries = scan_below(sample, includes=["l1"])
        assert "nested" in entries and "nested/l1/empty" in entries
        assert entries["nested/l1/c"].entry.type == FILE
        assert not any(p.startswith("small") for p in entries)

    def test_exclude_wins_over_include(self, sample: str) -> None:
        """An entry both included and excluded is left out."""
        entries = scan_below(sample, includes=["*.txt"], excludes=["deep.txt"])
        assert "nested/l1/l2/mid.txt" in entries
        assert not any(p.startswith("nested/l1/l2/l3") for p in entries)

    def test_excluded_source_yields_nothing(self, src: str) -> None:
        """A source matching an exclude yields nothing, not even its parents."""
        assert list(Scanner([os.path.join(src, "c.tmp")], excludes=["*.tmp"])) == []


@pytest.fixture
def mounted(src: str) -> Iterator[str]:
    """A tmpfs mounted at ``src/mnt`` with one file in it."""
    mnt = os.path.join(src, "mnt")
    os.mkdir(mnt)
    result = subprocess.run(["mount", "-t", "tmpfs", "none", mnt], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        with open(os.path.join(mnt, "inside"), "wb") as f:
            f.write(b"on another device")
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=True)


class TestOneFileSystem:
    def test_mount_point_emitted_but_not_descended(self, src: str, mounted: str) -> None:
        """With one_file_system, the mount point is an empty directory in the point."""
        entries = scan_below(src, one_file_system=True)
        assert entries["mnt"].entry.type == DIR
        assert entries["mnt"].entry.dev != entries["a"].entry.dev
        assert "mnt/inside" not in entries
        assert "a/sub/y" in entries

    def test_without_option_other_devices_are_scanned(self, src: str, mounted: str) -> None:
        """Without one_file_system the scan crosses into the mounted file system."""
        assert "mnt/inside" in scan_below(src)

    def test_source_on_its_own_device_is_scanned(self, mounted: str) -> None:
        """The device of reference is the source path's own, not its parent's."""
        prefix = point_path(mounted) + "/"
        paths = [s.path for s in Scanner([mounted], one_file_system=True)]
        assert prefix + "inside" in paths


class TestErrors:
    def test_missing_source_raises_at_construction(self, tmp_path) -> None:
        """A source path that does not exist is a SourceError naming it."""
        missing = str(tmp_path / "nope")
        with pytest.raises(SourceError, match=f"source path {missing} does not exist"):
            Scanner([str(tmp_path), missing])

    def test_source_below_a_file_does_not_exist(self, src: str) -> None:
        """A source path through a file is reported as not existing."""
        with pytest.raises(SourceError, match="does not exist"):
            Scanner([os.path.join(src, "b.txt", "x")])

    def test_permission_denied_directory_is_a_warning(self, src: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unreadable directory is yielded empty, warned about, and the scan goes on."""
        denied = os.path.join(src, "a")
        real = os.scandir

        def scandir(path: str):
            if path == denied:
                raise PermissionError(13, "Permission denied", path)
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        scanner = Scanner([src])
        entries = {s.path for s in scanner}
        assert point_path(denied) in entries and point_path(denied) + "/x" not in entries
        assert point_path(src) + "/b.txt" in entries
        assert [(w.path, w.reason) for w in scanner.warnings] == [(denied, "permission denied")]

    def test_entry_vanishing_after_listing_is_a_warning(self, src: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file deleted between listing and stat is skipped with a warning."""
        victim = os.path.join(src, "b.txt")
        real = os.scandir

        def scandir(path: str):
            with real(path) as listing:
                entries = list(listing)
            if path == src:
                os.unlink(victim)
            return _Listing(entries)

        monkeypatch.setattr(os, "scandir", scandir)
        scanner = Scanner([src])
        entries = {s.path for s in scanner}
        assert point_path(victim) not in entries and point_path(src) + "/c.tmp" in entries
        assert [(w.path, w.reason) for w in scanner.warnings] == [(victim, "vanished during backup")]

    def test_directory_vanishing_before_listing_is_a_warning(self, src: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A directory removed after it was found is yielded, warned about, and skipped."""
        gone = os.path.join(src, "a", "sub")
        real = os.scandir

        def scandir(path: str):
            if path == gone:
                os.unlink(os.path.join(gone, "y"))
                os.rmdir(gone)
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        scanner = Scanner([src])
        assert point_path(src) + "/b.txt" in {s.path for s in scanner}
        assert [(w.path, w.reason) for w in scanner.warnings] == [(gone, "vanished during backup")]

    def test_warnings_belong_to_the_last_scan(self, src: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Iterating again starts with an empty warning list."""
        scanner = Scanner([src])
        real = os.scandir
        monkeypatch.setattr(os, "scandir", lambda p: (_ for _ in ()).throw(PermissionError(13, "x")))
        list(scanner)
        assert scanner.warnings
        monkeypatch.setattr(os, "scandir", real)
        list(scanner)
        assert scanner.warnings == []


class TestNames:
    def test_undecodable_name_survives(self, sample: str) -> None:
        """A name with a non-UTF-8 byte keeps its bytes and can be opened."""
        entry = scan_below(sample)[f"names/{BAD_NAME}"]
        assert os.fsencode(entry.entry.name) == b"bad\xff name"
        with open(entry.abspath, "rb") as f:
            assert f.read().startswith(b"file named")

    def test_newline_and_unicode_names(self, sample: str) -> None:
        """Names with a newline or non-ASCII characters are yielded intact."""
        entries = scan_below(sample)
        assert entries[f"names/{NEWLINE_NAME}"].entry.name == NEWLINE_NAME
        assert entries["names/ünïcödé ☃"].entry.type == FILE
