"""The file-tree tools of strongroom.testing: the sample trees, snapshots, tree comparison."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from strongroom.testing import (
    BAD_NAME,
    LONG_NAME,
    NEWLINE_NAME,
    OWNER_UID,
    UNICODE_NAME,
    assert_trees_equal,
    build_sample_tree,
    snapshot_tree,
    xattrs_supported,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("fstree") / "sample")
    build_sample_tree(root, big_file_mib=4, small_files=200)
    return root


@pytest.fixture(scope="module")
def snap(sample: str) -> dict[str, dict]:
    return snapshot_tree(sample)


class TestBuildSampleTree:
    def test_has_deep_nesting_and_empty_entries(self, snap: dict[str, dict]) -> None:
        """The tree nests at least four levels and has empty directories and files."""
        assert snap["nested/l1/l2/l3/l4/deep.txt"]["type"] == "file"
        assert snap["empty_dir"]["type"] == "dir"
        assert not any(p.startswith("empty_dir/") for p in snap)
        assert snap["empty_file"]["size"] == 0

    def test_big_file_has_requested_size(self, snap: dict[str, dict]) -> None:
        """The big file is exactly big_file_mib MiB."""
        assert snap["big.bin"]["size"] == 4 << 20

    def test_small_files_spread_over_fifty_dirs(self, snap: dict[str, dict]) -> None:
        """The small files are all there, spread over 50 directories, sizes up to 20 KiB."""
        small = {p: r for p, r in snap.items() if p.startswith("small/") and r["type"] == "file"}
        assert len(small) == 200
        assert len({os.path.dirname(p) for p in small}) == 50
        assert max(r["size"] for r in small.values()) <= 20 * 1024

    def test_symlinks_of_every_kind(self, snap: dict[str, dict]) -> None:
        """Relative, absolute, dangling and directory symlinks are present with their text."""
        assert snap["links/relative"]["target"] == "../nested/l1/l2/mid.txt"
        assert snap["links/absolute"]["target"].startswith("/")
        assert snap["links/dangling"]["target"] == "does/not/exist"
        assert snap["links/to_dir"]["target"] == "../nested/l1"

    def test_hardlink_group_of_three(self, snap: dict[str, dict]) -> None:
        """Three names across directories share one inode and one group label."""
        group = [p for p, r in snap.items() if r["hardlink_group"] == "hard/a"]
        assert sorted(group) == ["hard/a", "hard/sub/b", "nested/l1/c"]
        assert all(snap[p]["nlink"] == 3 for p in group)

    def test_sparse_file_allocates_little(self, snap: dict[str, dict]) -> None:
        """The sparse file is 64 MiB long but allocates less than 1 MiB."""
        record = snap["sparse.img"]
        assert record["size"] == 64 << 20
        assert record["blocks"] * 512 < 1 << 20

    def test_unusual_names(self, snap: dict[str, dict]) -> None:
        """Names with spaces, unicode, a newline, undecodable bytes, a dash and 200 chars exist."""
        for name in ("with space.txt", UNICODE_NAME, NEWLINE_NAME, BAD_NAME, "-leading-dash", LONG_NAME):
            assert snap[f"names/{name}"]["type"] == "file"
        assert len(LONG_NAME) == 200

    def test_special_modes_and_owners(self, snap: dict[str, dict]) -> None:
        """A fifo, modes 0o600/0o000/setgid/setuid and a foreign owner are recorded."""
        assert snap["special/fifo"]["type"] == "fifo"
        assert snap["modes/private"]["mode"] == 0o600
        assert snap["modes/none"]["mode"] == 0o000
        assert snap["modes/setgid_dir"]["mode"] == 0o2775
        assert snap["owners/setuid"]["mode"] == 0o4755
        if os.geteuid() == 0:
            assert snap["owners/u1234"]["uid"] == OWNER_UID
            assert snap["owners/link"]["uid"] == OWNER_UID

    def test_xattrs_on_file_and_dir(self, sample: str, snap: dict[str, dict]) -> None:
        """User xattrs are set on a file and a directory where the file system has them."""
        if not xattrs_supported(sample):
            pytest.skip("the temporary file system does not store user xattrs")
        assert dict(snap["nested/l1/l2/mid.txt"]["xattrs"])["user.comment"] == b"hello xattr"
        assert dict(snap["nested/l1"]["xattrs"]) == {"user.tag": b"a directory"}

    def test_mtimes_fixed_in_the_past(self, snap: dict[str, dict]) -> None:
        """Every entry, links and directories included, has an mtime from the fixed past range."""
        assert all(r["mtime_ns"] < 1_600_000_000 * 10**9 for r in snap.values())

    def test_same_seed_builds_equal_trees(self, sample: str, tmp_path) -> None:
        """Two builds with the same arguments compare equal, content and metadata."""
        again = str(tmp_path / "again")
        build_sample_tree(again, big_file_mib=4, small_files=200)
        assert_trees_equal(sample, again)

    def test_other_seed_builds_other_content(self, sample: str, tmp_path) -> None:
        """Another seed changes the content of the generated files."""
        other = str(tmp_path / "other")
        build_sample_tree(other, big_file_mib=4, small_files=200, seed=2)
        with pytest.raises(AssertionError, match="sha256"):
            assert_trees_equal(sample, other)

    @pytest.mark.slow
    def test_default_tree_has_its_documented_size(self, tmp_path) -> None:
        """The default tree has a 200 MiB big file and 5000 small files."""
        snap = snapshot_tree(build_sample_tree(str(tmp_path / "default")), hash_content=False)
        assert snap["big.bin"]["size"] == 200 << 20
        assert sum(1 for p, r in snap.items() if p.startswith("small/") and r["type"] == "file") == 5000


class TestSnapshotTree:
    def test_root_is_not_recorded(self, snap: dict[str, dict]) -> None:
        """Paths are relative to the root, which itself is not part of the snapshot."""
        assert "" not in snap and "." not in snap
        assert not any(p.startswith("/") for p in snap)

    def test_without_hashing(self, sample: str) -> None:
        """hash_content=False leaves sha256 empty but keeps the rest."""
        quick = snapshot_tree(sample, hash_content=False)
        assert quick["big.bin"]["sha256"] is None
        assert quick["big.bin"]["size"] == 4 << 20

    def test_symlink_records_link_not_target(self, snap: dict[str, dict]) -> None:
        """A symlink to a directory is recorded as a symlink and not descended."""
        assert snap["links/to_dir"]["type"] == "symlink"
        assert not any(p.startswith("links/to_dir/") for p in snap)


@pytest.fixture
def copy(sample: str, tmp_path) -> str:
    """An exact copy of the sample tree (``cp -a`` keeps owners, links, xattrs, holes)."""
    dest = str(tmp_path / "copy")
    subprocess.run(["cp", "-a", sample, dest], check=True)
    return dest


class TestAssertTreesEqual:
    def test_snapshot_equals_its_tree(self, sample: str, snap: dict[str, dict]) -> None:
        """A tree compares equal to its own snapshot, in either argument form."""
        assert_trees_equal(sample, snap)
        assert_trees_equal(snap, sample)

    def test_reports_changed_content(self, snap: dict[str, dict]) -> None:
        """A different content hash is reported with the path and field."""
        changed = {p: dict(r) for p, r in snap.items()}
        changed["empty_file"]["sha256"] = "0" * 64
        with pytest.raises(AssertionError, match=r"'empty_file': sha256"):
            assert_trees_equal(snap, changed)

    def test_reports_missing_and_unexpected(self, snap: dict[str, dict]) -> None:
        """Paths only on one side are reported as missing or unexpected."""
        changed = {p: r for p, r in snap.items() if p != "big.bin"}
        changed["surprise"] = snap["empty_file"]
        with pytest.raises(AssertionError) as info:
            assert_trees_equal(snap, changed)
        assert "missing: 'big.bin'" in str(info.value)
        assert "unexpected: 'surprise'" in str(info.value)

    def test_reports_mode_in_octal(self, snap: dict[str, dict]) -> None:
        """A mode difference is reported in octal."""
        changed = {p: dict(r) for p, r in snap.items()}
        changed["modes/private"]["mode"] = 0o644
        with pytest.raises(AssertionError, match=r"mode expected 0o600, got 0o644"):
            assert_trees_equal(snap, changed)

    def test_lists_at_most_twenty(self, snap: dict[str, dict]) -> None:
        """With many differences the message lists twenty and counts the rest."""
        changed = {p: dict(r, mtime_ns=1) for p, r in snap.items()}
        with pytest.raises(AssertionError) as info:
            assert_trees_equal(snap, changed)
        message = str(info.value)
        assert message.count("mtime_ns expected") == 20
        assert f"and {len(snap) - 20} more" in message

    def test_detects_broken_hardlink_group(self, sample: str, copy: str) -> None:
        """Replacing one name of a hardlink group by an equal copy is a difference."""
        path = os.path.join(copy, "hard", "sub", "b")
        st = os.stat(path)
        os.unlink(path)
        shutil.copy2(os.path.join(copy, "hard", "a"), path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(AssertionError, match="hardlink_group"):
            assert_trees_equal(sample, copy)

    def test_detects_lost_sparseness(self, sample: str, copy: str) -> None:
        """A sparse file rewritten with all its zeros fails check_sparse, passes without it."""
        path = os.path.join(copy, "sparse.img")
        st = os.stat(path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        with pytest.raises(AssertionError, match="not sparse"):
            assert_trees_equal(sample, copy)
        assert_trees_equal(sample, copy, check_sparse=False)

    def test_copy_compares_equal(self, sample: str, copy: str) -> None:
        """An exact copy made by another tool compares equal, sparseness included."""
        assert_trees_equal(sample, copy)

    def test_detects_symlink_mtime(self, sample: str, copy: str) -> None:
        """Symlink mtimes take part in the comparison."""
        os.utime(os.path.join(copy, "links", "dangling"), ns=(1, 1), follow_symlinks=False)
        with pytest.raises(AssertionError, match=r"'links/dangling': mtime_ns"):
            assert_trees_equal(sample, copy)
