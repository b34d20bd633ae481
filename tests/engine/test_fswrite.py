"""Writing restored trees: path safety, content, sparse files, overwrites and metadata."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from strongroom.catalog.entry import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK, Entry
from strongroom.engine.fswrite import TreeWriter
from strongroom.errors import PathInTheWay, UnsafePath
from strongroom.testing import assert_trees_equal, build_sample_tree, xattrs_supported
from strongroom.testing.sampletree import MIB
from strongroom_files.scan import Scanner

OLD_NS = 1_400_000_000_000_000_001


def entry(relpath: str, kind: str = FILE, **fields) -> Entry:
    fields.setdefault("mtime_ns", OLD_NS)
    fields.setdefault("atime_ns", OLD_NS)
    return Entry(name=relpath.rsplit("/", 1)[-1], type=kind, **fields)


def put_file(writer: TreeWriter, relpath: str, data: bytes, **fields) -> Entry:
    e = entry(relpath, size=len(data), **fields)
    writer.create_file(relpath, e)
    writer.write(relpath, 0, data)
    writer.finish_file(relpath, e)
    return e


def restore_through_scan(source: str, dest: str, *, reverse_blocks: bool = False) -> str:
    """Scan ``source`` and recreate it under ``dest`` with a TreeWriter; the copy's path."""
    with TreeWriter(dest) as writer:
        for scanned in Scanner([source]):
            _restore_one(writer, scanned.path, scanned.abspath, scanned.entry, reverse_blocks)
        assert writer.warnings == []
    return os.path.join(dest, source.lstrip("/"))


def _restore_one(writer: TreeWriter, relpath: str, abspath: str, e: Entry, reverse_blocks: bool) -> None:
    if e.type == DIR:
        writer.make_dir(relpath, e)
    elif e.type == FILE:
        writer.create_file(relpath, e)
        with open(abspath, "rb") as f:
            blocks = [(offset, f.read(MIB)) for offset in range(0, e.size, MIB)]
        for offset, block in reversed(blocks) if reverse_blocks else blocks:
            writer.write(relpath, offset, block, sparse=e.sparse)
        writer.finish_file(relpath, e)
    elif e.type == HARDLINK:
        writer.make_hardlink(relpath, e, e.target)
    elif e.type == SYMLINK:
        writer.make_symlink(relpath, e)
    else:
        writer.make_special(relpath, e)


@pytest.fixture
def outside(tmp_path) -> str:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "precious").write_bytes(b"keep me")
    return str(path)


@pytest.fixture
def writer(tmp_path) -> TreeWriter:
    w = TreeWriter(str(tmp_path / "target"))
    yield w
    w.close()


def assert_untouched(outside: str) -> None:
    assert sorted(os.listdir(outside)) == ["precious"]
    with open(os.path.join(outside, "precious"), "rb") as f:
        assert f.read() == b"keep me"


class TestPathFor:
    @pytest.mark.parametrize(
        "relpath",
        ["", "/etc/passwd", "..", "../evil", "a/../../evil", "a/..", ".", "./a", "a/./b", "a//b", "a/", "a\0b"],
    )
    def test_rejects_unsafe_forms(self, writer: TreeWriter, relpath: str) -> None:
        """Empty, absolute, '.', '..', empty components and NUL are refused."""
        with pytest.raises(UnsafePath):
            writer.path_for(relpath)

    def test_accepts_plain_paths_under_root(self, writer: TreeWriter) -> None:
        """A plain relative path maps below the (resolved) root."""
        assert writer.path_for("a/b c/..d") == os.path.join(writer.root, "a/b c/..d")

    def test_root_created_and_resolved(self, tmp_path) -> None:
        """A missing root is created; a root reached through a symlink is resolved."""
        (tmp_path / "real").mkdir()
        os.symlink(tmp_path / "real", tmp_path / "alias")
        assert TreeWriter(str(tmp_path / "alias" / "new")).root == str(tmp_path / "real" / "new")
        assert (tmp_path / "real" / "new").is_dir()

    def test_rejects_symlinked_parent_in_target(self, writer: TreeWriter, outside: str) -> None:
        """A symlink already in the target is not a usable parent, even pointing inside."""
        os.symlink(outside, os.path.join(writer.root, "out"))
        os.symlink(".", os.path.join(writer.root, "here"))
        for relpath in ("out/evil", "here/evil"):
            with pytest.raises(UnsafePath, match="symbolic link"):
                writer.path_for(relpath)

    def test_rejects_file_as_parent(self, writer: TreeWriter) -> None:
        """A parent component that is a regular file is refused with a clear reason."""
        put_file(writer, "f", b"x")
        with pytest.raises(UnsafePath, match="'f' is not a directory"):
            writer.path_for("f/g")

    def test_message_names_path_and_reason(self, writer: TreeWriter) -> None:
        """The error message says which path was refused and why."""
        with pytest.raises(UnsafePath, match=r"Refusing to restore '\.\./x': '\.\.' component"):
            writer.path_for("../x")


class TestAttacks:
    def _link_out(self, writer: TreeWriter, outside: str, relpath: str = "a") -> None:
        writer.make_symlink(relpath, entry(relpath, SYMLINK, target=outside))

    def test_file_through_restored_symlink(self, writer: TreeWriter, outside: str) -> None:
        """A file entry below a symlink created by the same restore is refused."""
        self._link_out(writer, outside)
        with pytest.raises(UnsafePath):
            writer.create_file("a/evil", entry("a/evil", size=4))
        assert_untouched(outside)

    def test_dir_symlink_special_through_restored_symlink(self, writer: TreeWriter, outside: str) -> None:
        """Directories, symlinks and fifos below a restored symlink are refused."""
        self._link_out(writer, outside)
        calls = [
            lambda: writer.make_dir("a/d", entry("a/d", DIR)),
            lambda: writer.make_dir("a/d/e", entry("a/d/e", DIR)),
            lambda: writer.make_symlink("a/l", entry("a/l", SYMLINK, target="/etc")),
            lambda: writer.make_special("a/p", entry("a/p", FIFO)),
            lambda: writer.make_hardlink("a/h", entry("a/h", HARDLINK), "a"),
        ]
        for call in calls:
            with pytest.raises(UnsafePath):
                call()
        assert_untouched(outside)

    def test_deep_symlink_chain(self, writer: TreeWriter, outside: str) -> None:
        """A symlink deeper in the tree is caught as well as one at the top."""
        writer.make_dir("d1", entry("d1", DIR))
        writer.make_dir("d1/d2", entry("d1/d2", DIR))
        self._link_out(writer, outside, "d1/d2/a")
        with pytest.raises(UnsafePath, match="'d1/d2/a' is a symbolic link"):
            writer.create_file("d1/d2/a/x", entry("x"))
        assert_untouched(outside)

    def test_dir_replaced_by_symlink_then_used(self, writer: TreeWriter, outside: str) -> None:
        """A directory the writer made, later replaced by a symlink entry, is no longer trusted."""
        writer.make_dir("a", entry("a", DIR))
        self._link_out(writer, outside)
        assert os.path.islink(os.path.join(writer.root, "a"))
        with pytest.raises(UnsafePath):
            writer.create_file("a/evil", entry("evil"))
        with pytest.raises(UnsafePath):
            writer.write("a/inside", 0, b"x")
        assert_untouched(outside)

    def test_full_dir_is_not_replaced_by_a_symlink(self, writer: TreeWriter, outside: str) -> None:
        """A symlink entry where a folder with files stands is refused for that path; the
        folder stays a folder and its files are still written inside the target."""
        writer.make_dir("a", entry("a", DIR))
        put_file(writer, "a/inside", b"1")
        with pytest.raises(PathInTheWay, match="not empty"):
            self._link_out(writer, outside)
        put_file(writer, "a/more", b"2")
        assert sorted(os.listdir(os.path.join(writer.root, "a"))) == ["inside", "more"]
        assert_untouched(outside)

    def test_hardlink_from_outside_through_symlink(self, writer: TreeWriter, outside: str) -> None:
        """A hardlink whose existing path goes through a symlink cannot pull a file in."""
        self._link_out(writer, outside)
        with pytest.raises(UnsafePath):
            writer.make_hardlink("stolen", entry("stolen", HARDLINK), "a/precious")
        assert not os.path.lexists(os.path.join(writer.root, "stolen"))

    def test_hardlink_to_symlink_links_the_link(self, writer: TreeWriter, outside: str) -> None:
        """A hardlink to a restored symlink links the symlink itself, not its target."""
        precious = os.path.join(outside, "precious")
        writer.make_symlink("s", entry("s", SYMLINK, target=precious))
        writer.make_hardlink("h", entry("h", HARDLINK), "s")
        h = os.path.join(writer.root, "h")
        assert os.path.islink(h) and os.readlink(h) == precious
        assert os.stat(precious).st_nlink == 1

    def test_existing_symlink_at_file_path_replaced(self, writer: TreeWriter, outside: str) -> None:
        """A symlink in the target where a file is restored is replaced, not written through."""
        os.symlink(os.path.join(outside, "precious"), os.path.join(writer.root, "f"))
        put_file(writer, "f", b"restored")
        assert not os.path.islink(os.path.join(writer.root, "f"))
        assert_untouched(outside)

    def test_existing_symlink_at_dir_path_replaced(self, writer: TreeWriter, outside: str) -> None:
        """A symlink in the target where a directory is restored becomes a real directory."""
        os.symlink(outside, os.path.join(writer.root, "d"))
        writer.make_dir("d", entry("d", DIR, mode=0o700))
        put_file(writer, "d/new", b"x")
        writer.close()
        assert stat.S_ISDIR(os.lstat(os.path.join(writer.root, "d")).st_mode)
        assert_untouched(outside)

    def test_metadata_not_applied_through_symlinks(self, writer: TreeWriter, outside: str) -> None:
        """Symlink metadata (owner, times) lands on the link, the target keeps its own."""
        precious = os.path.join(outside, "precious")
        before = os.stat(precious)
        writer.make_symlink("s", entry("s", SYMLINK, target=precious, uid=1234, gid=5678))
        after = os.stat(precious)
        assert (after.st_mtime_ns, after.st_uid, after.st_mode) == (before.st_mtime_ns, before.st_uid, before.st_mode)
        assert os.lstat(os.path.join(writer.root, "s")).st_mtime_ns == OLD_NS

    def test_dir_metadata_not_applied_through_late_symlink(self, writer: TreeWriter, outside: str) -> None:
        """A directory turned into a symlink before close() gets no metadata through it."""
        writer.make_dir("d", entry("d", DIR, mode=0o700))
        self._link_out(writer, outside, "d")
        before = os.stat(outside)
        writer.close()
        assert os.stat(outside).st_mode == before.st_mode
        assert os.stat(outside).st_mtime_ns == before.st_mtime_ns

    def test_absolute_and_dotdot_entries(self, writer: TreeWriter, outside: str) -> None:
        """Absolute and '..' paths are refused for every kind of entry."""
        for relpath in (os.path.join(outside, "evil"), "../outside/evil", "x/../../outside/evil"):
            with pytest.raises(UnsafePath):
                writer.create_file(relpath, entry("evil"))
            with pytest.raises(UnsafePath):
                writer.make_dir(relpath, entry("evil", DIR))
        assert_untouched(outside)
        assert os.listdir(writer.root) == []

    def test_symlink_target_with_nul(self, writer: TreeWriter) -> None:
        """A link text with a NUL byte is refused."""
        with pytest.raises(UnsafePath, match="NUL"):
            writer.make_symlink("s", entry("s", SYMLINK, target="a\0b"))

    def test_symlink_text_kept_exactly(self, writer: TreeWriter) -> None:
        """Link text pointing anywhere is stored as data, unchanged."""
        for i, target in enumerate(["/etc/shadow", "../../../../x", "a/../b", "dangling"]):
            writer.make_symlink(f"s{i}", entry(f"s{i}", SYMLINK, target=target))
            assert os.readlink(os.path.join(writer.root, f"s{i}")) == target


class TestContent:
    def test_create_sets_length_with_holes(self, writer: TreeWriter) -> None:
        """create_file sets the final length without allocating it."""
        e = entry("big", size=32 * MIB)
        writer.create_file("big", e)
        writer.finish_file("big", e)
        st = os.stat(os.path.join(writer.root, "big"))
        assert st.st_size == 32 * MIB and st.st_blocks * 512 < MIB

    def test_sparse_zero_writes_stay_holes(self, writer: TreeWriter) -> None:
        """All-zero blocks written with sparse=True leave holes; data blocks are written."""
        e = entry("s", size=16 * MIB, sparse=True)
        writer.create_file("s", e)
        for offset in range(0, 16 * MIB, MIB):
            data = bytes(MIB) if offset != 5 * MIB else b"\1" * MIB
            writer.write("s", offset, memoryview(data), sparse=True)
        writer.finish_file("s", e)
        path = os.path.join(writer.root, "s")
        assert os.stat(path).st_blocks * 512 <= 2 * MIB
        with open(path, "rb") as f:
            f.seek(5 * MIB)
            assert f.read(MIB) == b"\1" * MIB

    def test_zero_blocks_inside_a_chunk_stay_holes(self, writer: TreeWriter) -> None:
        """Zero 4 KiB blocks inside a mostly-zero chunk, at an unaligned offset, stay holes."""
        data = bytearray(8 * MIB)
        for at in (10, 3 * MIB + 5, 8 * MIB - 1):
            data[at] = 1
        e = entry("s", size=9 * MIB, sparse=True)
        writer.create_file("s", e)
        writer.write("s", 777, bytes(data), sparse=True)
        writer.finish_file("s", e)
        path = os.path.join(writer.root, "s")
        assert os.stat(path).st_blocks * 512 <= 64 * 1024
        with open(path, "rb") as f:
            assert f.read() == bytes(777) + bytes(data) + bytes(MIB - 777)

    def test_zero_data_is_written_when_not_sparse(self, writer: TreeWriter) -> None:
        """Without sparse=True, zeros are real data on disk."""
        e = entry("z", size=4 * MIB)
        writer.create_file("z", e)
        writer.write("z", 0, bytes(4 * MIB))
        writer.finish_file("z", e)
        assert os.stat(os.path.join(writer.root, "z")).st_blocks * 512 >= 4 * MIB

    def test_zeros_with_nonzero_middle_are_data(self, writer: TreeWriter) -> None:
        """A block that is zero at both ends but not in the middle is written."""
        data = bytearray(MIB)
        data[MIB // 2] = 7
        e = entry("m", size=MIB, sparse=True)
        writer.create_file("m", e)
        writer.write("m", 0, bytes(data), sparse=True)
        writer.finish_file("m", e)
        with open(os.path.join(writer.root, "m"), "rb") as f:
            assert f.read() == bytes(data)

    def test_many_files_out_of_order_beyond_cache(self, tmp_path) -> None:
        """Interleaved writes to more files than the fd cache holds all land correctly."""
        writer = TreeWriter(str(tmp_path / "t"), max_open=4)
        entries = {f"d/f{i}": entry(f"f{i}", size=30) for i in range(20)}
        for relpath, e in entries.items():
            writer.create_file(relpath, e)
        for offset in (20, 0, 10):
            for relpath in reversed(list(entries)):
                writer.write(relpath, offset, relpath.encode().ljust(10, b"."))
        for relpath, e in entries.items():
            writer.finish_file(relpath, e)
        writer.close()
        for relpath in entries:
            with open(tmp_path / "t" / relpath, "rb") as f:
                assert f.read() == relpath.encode().ljust(10, b".") * 3

    def test_concurrent_writes_from_threads(self, tmp_path) -> None:
        """Many threads writing blocks of many files through a small cache lose nothing."""
        writer = TreeWriter(str(tmp_path / "t"), max_open=3)
        names = [f"f{i}" for i in range(12)]
        for name in names:
            writer.create_file(name, entry(name, size=64 * 1024))

        def work(seed: int) -> None:
            for block in range(16):
                for name in names[seed::4]:
                    writer.write(name, block * 4096 + seed * 1024, bytes([seed + 1]) * 1024)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name in names:
            writer.finish_file(name, entry(name, size=64 * 1024))
        writer.close()
        for i, name in enumerate(names):
            data = (tmp_path / "t" / name).read_bytes()
            seed = i % 4
            expected = bytearray(64 * 1024)
            for block in range(16):
                expected[block * 4096 + seed * 1024 : block * 4096 + (seed + 1) * 1024] = bytes([seed + 1]) * 1024
            assert data == bytes(expected)


class TestOverwrite:
    def test_existing_file_replaced_and_shortened(self, writer: TreeWriter) -> None:
        """A longer file already in the target is replaced by the restored content."""
        with open(os.path.join(writer.root, "f"), "wb") as f:
            f.write(b"old content that is longer")
        put_file(writer, "f", b"new")
        with open(os.path.join(writer.root, "f"), "rb") as f:
            assert f.read() == b"new"

    def test_other_names_of_an_existing_file_untouched(self, writer: TreeWriter) -> None:
        """Restoring over one name of a hardlinked file leaves the other name's data alone."""
        with open(os.path.join(writer.root, "f"), "wb") as f:
            f.write(b"shared")
        os.link(os.path.join(writer.root, "f"), os.path.join(writer.root, "other"))
        put_file(writer, "f", b"new")
        with open(os.path.join(writer.root, "other"), "rb") as f:
            assert f.read() == b"shared"

    def test_existing_directory_where_a_file_goes(self, writer: TreeWriter) -> None:
        """A folder that is not empty where a file is restored is kept, and named; an
        empty one is replaced."""
        os.makedirs(os.path.join(writer.root, "x", "y"))
        with pytest.raises(PathInTheWay, match="'.*/x' in the restore target: a folder that is not empty"):
            put_file(writer, "x", b"now a file")
        assert os.path.isdir(os.path.join(writer.root, "x", "y"))
        put_file(writer, "x/y", b"the empty folder was replaced")
        assert os.path.isfile(os.path.join(writer.root, "x", "y"))

    def test_existing_fifo_where_a_file_goes(self, writer: TreeWriter) -> None:
        """A fifo in the way is replaced without being opened (which would block)."""
        os.mkfifo(os.path.join(writer.root, "p"))
        put_file(writer, "p", b"data")
        assert os.path.isfile(os.path.join(writer.root, "p"))

    def test_existing_file_where_a_dir_goes(self, writer: TreeWriter) -> None:
        """A file in the way of a directory entry is replaced by the directory."""
        put_file(writer, "d", b"x")
        writer.make_dir("d", entry("d", DIR))
        put_file(writer, "d/inner", b"y")
        assert os.path.isdir(os.path.join(writer.root, "d"))

    def test_existing_directory_kept_and_merged(self, writer: TreeWriter) -> None:
        """Restoring a directory that exists keeps the files already in it."""
        os.makedirs(os.path.join(writer.root, "d"))
        with open(os.path.join(writer.root, "d", "keep"), "wb") as f:
            f.write(b"k")
        writer.make_dir("d", entry("d", DIR))
        put_file(writer, "d/new", b"n")
        assert sorted(os.listdir(os.path.join(writer.root, "d"))) == ["keep", "new"]

    def test_same_file_restored_twice(self, writer: TreeWriter) -> None:
        """A path created twice ends with the second content and no leaked open file."""
        e = entry("f", size=5)
        writer.create_file("f", e)
        writer.write("f", 0, b"first")
        put_file(writer, "f", b"2nd")
        writer.close()
        with open(os.path.join(writer.root, "f"), "rb") as f:
            assert f.read() == b"2nd"


class TestMetadata:
    def test_mode_owner_times_on_file(self, writer: TreeWriter) -> None:
        """Mode, owner and both times are set on a file."""
        put_file(writer, "f", b"x", mode=0o640, uid=1234, gid=5678, atime_ns=OLD_NS + 5)
        st = os.lstat(os.path.join(writer.root, "f"))
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_mtime_ns, st.st_atime_ns) == (OLD_NS, OLD_NS + 5)
        if writer.restore_owner:
            assert (st.st_uid, st.st_gid) == (1234, 5678)

    def test_setuid_survives_chown(self, writer: TreeWriter) -> None:
        """Owner is set before mode, so a setuid bit on a foreign-owned file stays."""
        if not writer.restore_owner:
            pytest.skip("owners are restored only as root")
        put_file(writer, "suid", b"#!", mode=0o4755, uid=1234, gid=5678)
        assert stat.S_IMODE(os.lstat(os.path.join(writer.root, "suid")).st_mode) == 0o4755

    def test_owner_not_restored_when_disabled(self, tmp_path) -> None:
        """restore_owner=False leaves files owned by the restoring user."""
        writer = TreeWriter(str(tmp_path / "t"), restore_owner=False)
        put_file(writer, "f", b"x", uid=1234, gid=5678)
        assert os.lstat(tmp_path / "t" / "f").st_uid == os.geteuid()

    def test_restore_owner_defaults_to_root(self, tmp_path) -> None:
        """Owners are restored by default exactly when running as root."""
        assert TreeWriter(str(tmp_path / "t")).restore_owner == (os.geteuid() == 0)

    def test_directory_metadata_applied_last_and_deepest_first(self, writer: TreeWriter) -> None:
        """Directory times survive later writes inside them; a read-only dir can still be filled."""
        writer.make_dir("a", entry("a", DIR, mode=0o555))
        writer.make_dir("a/b", entry("a/b", DIR, mode=0o750, mtime_ns=OLD_NS + 1))
        put_file(writer, "a/b/f", b"x")
        put_file(writer, "a/g", b"y")
        writer.close()
        a, b = os.lstat(os.path.join(writer.root, "a")), os.lstat(os.path.join(writer.root, "a/b"))
        assert (stat.S_IMODE(a.st_mode), a.st_mtime_ns) == (0o555, OLD_NS)
        assert (stat.S_IMODE(b.st_mode), b.st_mtime_ns) == (0o750, OLD_NS + 1)

    def test_xattrs_on_file_and_dir(self, writer: TreeWriter) -> None:
        """User xattrs are restored on files and directories."""
        if not xattrs_supported(writer.root):
            pytest.skip("the temporary file system does not store user xattrs")
        put_file(writer, "f", b"x", xattrs=(("user.a", b"1"), ("user.b", b"\0\xff")))
        writer.make_dir("d", entry("d", DIR, xattrs=(("user.tag", b"dir"),)))
        writer.close()
        assert os.getxattr(os.path.join(writer.root, "f"), "user.b") == b"\0\xff"
        assert os.getxattr(os.path.join(writer.root, "d"), "user.tag") == b"dir"

    def test_unsettable_xattr_is_a_warning(self, writer: TreeWriter) -> None:
        """An xattr the file system refuses (user.* on a symlink) is a warning, not an error."""
        writer.make_symlink("s", entry("s", SYMLINK, target="x", xattrs=(("user.a", b"1"),)))
        assert any("xattr user.a" in w for w in writer.warnings)

    def test_symlink_owner_and_time(self, writer: TreeWriter) -> None:
        """Symlinks get their own owner and mtime."""
        writer.make_symlink("s", entry("s", SYMLINK, target="nowhere", uid=1234, gid=5678))
        st = os.lstat(os.path.join(writer.root, "s"))
        assert st.st_mtime_ns == OLD_NS
        if writer.restore_owner:
            assert st.st_uid == 1234

    def test_hardlink_shares_inode(self, writer: TreeWriter) -> None:
        """A hardlink entry becomes a further name of the restored file."""
        put_file(writer, "a", b"data")
        writer.make_hardlink("d/b", entry("b", HARDLINK), "a")
        assert os.path.samefile(os.path.join(writer.root, "a"), os.path.join(writer.root, "d/b"))

    def test_fifo_and_devices(self, writer: TreeWriter) -> None:
        """A fifo is created with its metadata; devices keep their numbers when permitted."""
        writer.make_special("p", entry("p", FIFO, mode=0o640))
        st = os.lstat(os.path.join(writer.root, "p"))
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime_ns == OLD_NS
        writer.make_special("c", entry("c", CHARDEV, rdev=os.makedev(1, 3)))
        writer.make_special("b", entry("b", BLOCKDEV, rdev=os.makedev(7, 0)))
        if writer.warnings:
            assert all("device node" in w for w in writer.warnings)
            return
        assert os.lstat(os.path.join(writer.root, "c")).st_rdev == os.makedev(1, 3)
        assert stat.S_ISBLK(os.lstat(os.path.join(writer.root, "b")).st_mode)

    def test_socket_skipped_with_warning(self, writer: TreeWriter) -> None:
        """Sockets are not recreated; a warning says so."""
        writer.make_special("sock", entry("sock", SOCKET))
        assert not os.path.lexists(os.path.join(writer.root, "sock"))
        assert writer.warnings == ["sock: socket not restored"]


class TestRoundTrip:
    def test_scan_then_write_reproduces_sample_tree(self, tmp_path) -> None:
        """Scanner + TreeWriter copy the sample tree with all its metadata, holes included."""
        source = str(tmp_path / "src")
        build_sample_tree(source, big_file_mib=8, small_files=300)
        copy = restore_through_scan(source, str(tmp_path / "restored"))
        assert_trees_equal(source, copy)

    def test_out_of_order_blocks(self, tmp_path) -> None:
        """Writing every file's blocks last to first gives the same tree."""
        source = str(tmp_path / "src")
        build_sample_tree(source, big_file_mib=3, small_files=20)
        copy = restore_through_scan(source, str(tmp_path / "restored"), reverse_blocks=True)
        assert_trees_equal(source, copy)

    def test_restore_into_existing_copy(self, tmp_path) -> None:
        """Restoring again over an earlier, modified restore gives the source tree back."""
        source = str(tmp_path / "src")
        build_sample_tree(source, big_file_mib=1, small_files=20)
        copy = restore_through_scan(source, str(tmp_path / "restored"))
        with open(os.path.join(copy, "empty_file"), "wb") as f:
            f.write(b"changed")
        os.unlink(os.path.join(copy, "hard", "sub", "b"))
        os.symlink("/", os.path.join(copy, "hard", "sub", "b"))
        os.chmod(os.path.join(copy, "modes", "private"), 0o666)
        restore_through_scan(source, str(tmp_path / "restored"))
        assert_trees_equal(source, copy)


class TestPreparedFiles:
    """prepare_file() in the thread that lays out, then open_new/write_fd/close_file in any."""

    def _restore(self, writer: TreeWriter, relpath: str, data: bytes, **fields) -> Entry:
        e = entry(relpath, size=len(data), **fields)
        writer.prepare_file(relpath)
        fd = writer.open_new(relpath)
        writer.write_fd(fd, 0, data)
        writer.close_file(relpath, fd, e)
        return e

    def test_content_and_metadata(self, writer: TreeWriter) -> None:
        """A prepared file gets its content, mode and times, in a new parent folder too."""
        self._restore(writer, "new/dir/f", b"content", mode=0o640)
        st = os.lstat(os.path.join(writer.root, "new/dir/f"))
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, OLD_NS)
        with open(os.path.join(writer.root, "new/dir/f"), "rb") as f:
            assert f.read() == b"content"

    def test_length_and_holes(self, writer: TreeWriter) -> None:
        """open_new with a size sets the length; sparse writes leave zero blocks as holes."""
        writer.prepare_file("s")
        fd = writer.open_new("s", 4 * MIB)
        writer.write_fd(fd, MIB, b"\0" * MIB + b"x" * 10, sparse=True)
        writer.close_file("s", fd, entry("s", size=4 * MIB))
        st = os.lstat(os.path.join(writer.root, "s"))
        assert st.st_size == 4 * MIB and st.st_blocks * 512 <= 64 * 1024

    def test_whatever_is_in_the_way_is_cleared(self, writer: TreeWriter, outside: str) -> None:
        """A file, an empty folder, a fifo and a symlink out where files go are removed by
        prepare_file, never written through; a folder with something in it is kept."""
        root = writer.root
        os.makedirs(os.path.join(root, "d", "tree", "deep"))
        os.makedirs(os.path.join(root, "d", "empty"))
        with open(os.path.join(root, "d", "file"), "wb") as f:
            f.write(b"old content, longer")
        os.mkfifo(os.path.join(root, "d", "fifo"))
        os.symlink(os.path.join(outside, "precious"), os.path.join(root, "d", "link"))
        for name in ("empty", "file", "fifo", "link"):
            self._restore(writer, f"d/{name}", b"new")
            with open(os.path.join(root, "d", name), "rb") as f:
                assert f.read() == b"new"
        with pytest.raises(PathInTheWay):
            writer.prepare_file("d/tree")
        assert os.path.isdir(os.path.join(root, "d", "tree", "deep"))
        assert_untouched(outside)

    def test_prepared_path_is_no_directory(self, writer: TreeWriter) -> None:
        """Until created, a prepared file's path cannot be used as a parent folder."""
        writer.prepare_file("f")
        with pytest.raises(UnsafePath, match="'f' is not a directory"):
            writer.prepare_file("f/g")
        with pytest.raises(UnsafePath):
            writer.make_dir("f/d", entry("d", DIR))
        assert os.listdir(writer.root) == []

    def test_new_files_owners(self, writer: TreeWriter) -> None:
        """Each new file ends with its entry's owner when owners are restored: the one new
        files get already, or another."""
        if not writer.restore_owner:
            pytest.skip("owners are restored by root only")
        owners = [(0, 0), (1234, 5678), (0, 0), (0, 42)]
        for i, (uid, gid) in enumerate(owners):
            self._restore(writer, f"o/f{i}", b"x", uid=uid, gid=gid)
        got = [(st.st_uid, st.st_gid) for st in (os.lstat(os.path.join(writer.root, f"o/f{i}")) for i in range(4))]
        assert got == owners

    def test_created_with_final_mode(self, writer: TreeWriter) -> None:
        """In an empty target, a file whose mode the umask leaves whole is created with it
        (no chmod after); a mode the umask would cut, a setuid bit and xattrs are not
        (creation_mode() is None) and are set after, so every file ends with its mode."""
        umask = os.umask(0o022)
        os.umask(umask)
        plain = entry("p", mode=0o640 & ~umask)
        assert writer.creation_mode(plain) == 0o640 & ~umask
        assert writer.creation_mode(entry("w", mode=0o666 | umask)) is None
        assert writer.creation_mode(entry("s", mode=0o4755)) is None
        assert writer.creation_mode(entry("x", mode=0o644, xattrs=(("user.k", b"v"),))) is None
        for relpath, mode in (("p", plain.mode), ("w", 0o666 | umask), ("s", 0o2750)):
            e = entry(relpath, mode=mode)
            given = writer.creation_mode(e)
            writer.prepare_file(relpath)
            fd = writer.open_new(relpath, mode=0o600 if given is None else given)
            writer.close_file(relpath, fd, e, mode_set=given is not None)
            assert stat.S_IMODE(os.lstat(os.path.join(writer.root, relpath)).st_mode) == mode, relpath

    def test_not_empty_target_sets_every_mode(self, tmp_path) -> None:
        """A target that already holds something may have folders whose default ACL new
        files inherit: every mode is then set after creation."""
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "old").write_bytes(b"")
        with TreeWriter(str(tmp_path / "t")) as writer:
            assert writer.creation_mode(entry("f", mode=0o600)) is None

    def test_closed_without_metadata(self, writer: TreeWriter) -> None:
        """close_file with no entry only closes (a damaged file, removed afterwards)."""
        writer.prepare_file("f")
        fd = writer.open_new("f")
        writer.close_file("f", fd, None)
        with pytest.raises(OSError):
            os.fstat(fd)
