"""Back up a folder with everything a file system can hold and get it back exactly."""

from __future__ import annotations

import os

import pytest

from strongroom.testing import assert_trees_equal, build_sample_tree, snapshot_tree


def _rel(path: str) -> str:
    """Where an absolute source path lives inside a point (and inside a restore target)."""
    return os.path.abspath(path).lstrip("/")


@pytest.fixture(scope="module")
def sample_tree(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("src") / "tree")
    build_sample_tree(root, big_file_mib=200, small_files=5000)
    return root


@pytest.fixture
def backed_up(vault, sample_tree):
    vault.protect("files", "tree", {"paths": [sample_tree]})
    point = vault.backup("tree")
    return vault, point, sample_tree


class TestRoundTrip:
    def test_whole_tree_restores_byte_for_byte_with_metadata(self, backed_up, tmp_path):
        """Every file, dir, link, special file, name, owner, mode, time and xattr comes back."""
        vault, point, source = backed_up
        target = tmp_path / "restore"
        vault.restore("tree", None, str(target))
        assert_trees_equal(source, str(target / _rel(source)))
        assert point.stats["files"] > 5000
        assert not point.warnings

    def test_a_restore_of_paths_gives_freed_memory_back(self, backed_up, tmp_path, monkeypatch):
        """A restore of some paths fixes the allocator's threshold first; a whole restore
        does not (its reads would be mapped anew each time)."""
        import strongroom.allocator

        vault, _, source = backed_up
        calls: list[str] = []
        monkeypatch.setattr(strongroom.allocator, "limit_retained_memory", lambda: calls.append("set"))
        vault.restore("tree", None, str(tmp_path / "one"), [_rel(source) + "/big.bin"])
        assert calls == ["set"]
        vault.restore("tree", None, str(tmp_path / "all"))
        assert calls == ["set"]

    def test_restore_of_one_file_restores_only_that_file(self, backed_up, tmp_path):
        """Item-level restore of one file writes that file and its parent folders only."""
        vault, point, source = backed_up
        wanted = _rel(source) + "/big.bin"
        target = tmp_path / "one"
        vault.restore("tree", point.point_id[:6], str(target), [wanted])
        written = {str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir()}
        assert written == {wanted}
        with open(os.path.join(source, "big.bin"), "rb") as a, open(target / wanted, "rb") as b:
            assert a.read() == b.read()

    def test_restore_of_one_folder_restores_exactly_that_folder(self, backed_up, tmp_path):
        """Item-level restore of a folder brings back that subtree and nothing beside it."""
        vault, _, source = backed_up
        folder = _rel(source) + "/names"
        target = tmp_path / "sub"
        vault.restore("tree", None, str(target), ["/" + folder])
        assert_trees_equal(os.path.join(source, "names"), str(target / folder))
        top_level = {p.name for p in (target / _rel(source)).iterdir()}
        assert top_level == {"names"}

    def test_browse_lists_the_folder_contents(self, backed_up):
        """browse lists the names of a folder of the point with their types."""
        vault, _, source = backed_up
        listing = {row.name: row.type for row in vault.browse("tree", None, _rel(source))}
        assert listing["big.bin"] == "file"
        assert listing["names"] == "dir"
        expected = sorted(os.listdir(source))
        assert sorted(listing) == expected


class TestDeduplication:
    def test_second_backup_of_same_folder_adds_almost_nothing(self, backed_up):
        """An unchanged second backup reads no content and stores only a little metadata."""
        vault, first, source = backed_up
        before = _storage_bytes(vault)
        second = vault.backup("tree")
        added = _storage_bytes(vault) - before
        assert second.stats["bytes_read"] == 0
        assert second.stats["files_read"] == 0
        assert second.stats["files_unchanged"] == first.stats["files_read"]
        assert added < 256 * 1024, f"unchanged backup added {added} bytes"
        rel = _rel(source)
        assert vault.tree(second).lookup(rel).subtree == vault.tree(first).lookup(rel).subtree

    def test_unchanged_file_whose_data_the_vault_lost_is_read_again(self, vault, tmp_path):
        """A file unchanged since the parent point, but whose data the vault no longer
        holds (a pack of it is gone and the index rebuilt), is read and stored again."""
        from strongroom.repository.envelope import KIND_TREE
        from strongroom.repository.maintenance import delete_pack

        src = tmp_path / "lost"
        src.mkdir()
        kept, lost = b"k" * 5000, os.urandom(40_000_000)  # more than two packs
        (src / "kept.txt").write_bytes(kept)
        (src / "lost.bin").write_bytes(lost)
        vault.protect("files", "lost", {"paths": [str(src)]})
        first = vault.backup("lost")
        chunks = vault.tree(first).lookup(_rel(src) + "/lost.bin").chunks
        by_pack = vault.repo.index.entries_by_pack()
        pack = next(  # a pack of the file's data only: the point's tree stays readable
            p for p, entries in by_pack.items()
            if all(e.kind != KIND_TREE for e in entries) and {e.blob_id for e in entries} <= set(chunks)
        )
        gone = {e.blob_id for e in by_pack[pack]}
        delete_pack(vault.repo, pack)
        vault.rebuild_index()
        vault = vault.reopen()
        assert not gone & {c for c in chunks if c in vault.repo.index}
        second = vault.backup("lost")
        assert second.stats["files_read"] == 1 and second.stats["files_unchanged"] == 1
        assert second.stats["bytes_read"] == len(lost)
        target = tmp_path / "out"
        vault.restore("lost", None, target=str(target))
        assert (target / _rel(src) / "lost.bin").read_bytes() == lost
        assert (target / _rel(src) / "kept.txt").read_bytes() == kept

    def test_copy_of_large_file_adds_almost_nothing(self, vault, tmp_path):
        """A second copy of a large file in the folder deduplicates against the first."""
        src = tmp_path / "dup"
        src.mkdir()
        data = os.urandom(32 * 1024 * 1024)
        (src / "a.bin").write_bytes(data)
        vault.protect("files", "dup", {"paths": [str(src)]})
        vault.backup("dup")
        before = _storage_bytes(vault)
        (src / "b.bin").write_bytes(data)
        point = vault.backup("dup")
        assert point.stats["bytes_read"] == len(data)
        assert _storage_bytes(vault) - before < 64 * 1024
        assert point.stats["new_bytes"] < 16 * 1024


class TestNothingInClear:
    def test_no_name_or_content_appears_in_the_vault_storage(self, vault, vault_url, tmp_path):
        """File names, contents, link targets and xattrs never appear in clear in storage."""
        src = tmp_path / "secretsrc"
        (src / "folder-name-zebra").mkdir(parents=True)
        secret_text = b"the-launch-code-is-0451 " * 200
        (src / "folder-name-zebra" / "file-name-giraffe.txt").write_bytes(secret_text)
        (src / "random.bin").write_bytes(b"needle-in-random" + os.urandom(1 << 20))
        os.symlink("/target-of-symlink-okapi", src / "link")
        os.setxattr(src / "random.bin", "user.note", b"xattr-value-narwhal")
        vault.protect("files", "item-name-walrus", {"paths": [str(src)]})
        vault.backup("item-name-walrus")
        needles = [b"zebra", b"giraffe", b"launch-code", b"needle-in-random", b"okapi",
                   b"narwhal", b"walrus", b"secretsrc", str(tmp_path).encode()]
        for root, _, files in os.walk(vault_url):
            for name in files:
                data = open(os.path.join(root, name), "rb").read()
                for needle in needles:
                    assert needle not in data, f"{needle!r} in clear in {name}"
                    object_name = os.path.relpath(os.path.join(root, name), vault_url)
                    assert needle.decode() not in object_name


def _storage_bytes(vault) -> int:
    total = 0
    for root, _, files in os.walk(vault.url):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


class TestRandomAccess:
    def test_open_file_reads_any_range_fetching_few_chunks(self, backed_up):
        """open_file gives a seekable reader whose ranges equal the source, fetching only touched chunks."""
        import random

        vault, _, source = backed_up
        reader = vault.open_file("tree", None, _rel(source) + "/big.bin")
        rng = random.Random(5)
        with open(os.path.join(source, "big.bin"), "rb") as original:
            for _ in range(20):
                offset = rng.randrange(reader.size)
                length = rng.randrange(1, 3 * 1024 * 1024)
                original.seek(offset)
                reader.seek(offset)
                assert reader.read(length) == original.read(length)
        assert reader.chunks_fetched < 100  # 200 MiB is ~200 chunks: random reads touch a few

    def test_open_file_on_a_folder_is_an_error(self, backed_up):
        """A folder has no content to open."""
        from strongroom.errors import PathNotInPoint

        vault, _, source = backed_up
        with pytest.raises(PathNotInPoint):
            vault.open_file("tree", None, _rel(source) + "/names")
