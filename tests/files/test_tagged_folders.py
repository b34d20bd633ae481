"""--exclude-if-present NAME and --exclude-caches: folders holding a marker file are left out whole."""

from __future__ import annotations

import json
import os

import pytest

from strongroom_files.scan import CACHEDIR_SIGNATURE, Scanner
from vaultkit import assert_one_line_error

TAG = CACHEDIR_SIGNATURE + b"\n# This file is a cache directory tag.\n"


@pytest.fixture
def tree(tmp_path) -> str:
    """src/ with keep/a, nobackup/ (holding .nobackup), cache/ (a real CACHEDIR.TAG),
    fake/ (a CACHEDIR.TAG without the signature) and deep/x/ (holding .nobackup)."""
    root = tmp_path / "src"
    for folder in ("keep", "nobackup", "cache/sub", "fake", "deep/x"):
        (root / folder).mkdir(parents=True)
    (root / "keep" / "a").write_text("a")
    (root / "nobackup" / ".nobackup").write_text("")
    (root / "nobackup" / "data").write_text("d")
    (root / "cache" / "CACHEDIR.TAG").write_bytes(TAG)
    (root / "cache" / "sub" / "blob").write_text("b")
    (root / "fake" / "CACHEDIR.TAG").write_bytes(b"Signature: not the right one")
    (root / "deep" / "x" / ".nobackup").write_text("")
    (root / "deep" / "y").write_text("y")
    return str(root)


def below(root: str, **options) -> set[str]:
    prefix = root.lstrip("/") + "/"
    return {s.path[len(prefix):] for s in Scanner([root], **options) if s.path.startswith(prefix)}


class TestScanner:
    def test_exclude_if_present_leaves_the_folder_out_whole(self, tree):
        """A folder holding the named file is neither emitted nor descended, at any depth."""
        paths = below(tree, exclude_if_present=[".nobackup"])
        assert not [p for p in paths if p.startswith(("nobackup", "deep/x"))]
        assert {"keep/a", "deep", "deep/y", "cache/sub/blob", "fake/CACHEDIR.TAG"} <= paths

    def test_a_symbolic_link_counts_as_present(self, tree):
        """The marker is looked for by name: a (dangling) symbolic link of that name counts."""
        os.symlink("/nowhere", os.path.join(tree, "keep", ".nobackup"))
        assert not [p for p in below(tree, exclude_if_present=[".nobackup"]) if p.startswith("keep")]

    def test_exclude_caches_needs_the_signature(self, tree):
        """A CACHEDIR.TAG with the standard signature leaves its folder out; one without does not."""
        paths = below(tree, exclude_caches=True)
        assert not [p for p in paths if p.startswith("cache")]
        assert {"fake", "fake/CACHEDIR.TAG", "nobackup/data"} <= paths

    def test_a_tag_that_is_a_folder_does_not_count(self, tree):
        """CACHEDIR.TAG must be a regular file."""
        os.mkdir(os.path.join(tree, "keep", "CACHEDIR.TAG"))
        assert "keep/a" in below(tree, exclude_caches=True)

    def test_without_options_everything_is_kept(self, tree):
        """No option: the marked folders are backed up like any other."""
        paths = below(tree)
        assert {"nobackup/data", "cache/sub/blob", "deep/x/.nobackup"} <= paths

    def test_a_tagged_source_path_is_left_out(self, tree):
        """A source path that is itself a tagged folder yields nothing."""
        assert list(Scanner([os.path.join(tree, "cache")], exclude_caches=True)) == []


def names(cli, item: str, folder: str) -> set[str]:
    return {row["name"] for row in json.loads(cli("browse", item, folder.lstrip("/"), "--json").stdout)}


class TestCommands:
    def test_protect_and_backup(self, tree, cli, vault_url):
        """protect --exclude-if-present/--exclude-caches stores the options; the backup follows them."""
        cli("vault", "create", vault_url)
        cli("protect", "files", "src", "--path", tree, "--exclude-if-present", ".nobackup", "--exclude-caches")
        source = json.loads(cli("items", "--json").stdout)[0]["source"]
        assert source["exclude_if_present"] == [".nobackup"] and source["exclude_caches"] is True
        cli("backup", "src")
        assert names(cli, "src", tree) == {"keep", "fake", "deep"}
        assert names(cli, "src", tree + "/deep") == {"y"}

    def test_items_update_turns_them_on_and_off(self, tree, cli, vault_url):
        """items update --exclude-caches takes effect at the next backup; --no-exclude-caches undoes it."""
        cli("vault", "create", vault_url)
        cli("protect", "files", "src", "--path", tree)
        cli("items", "update", "src", "--exclude-caches", "--exclude-if-present", ".nobackup")
        cli("backup", "src")
        assert names(cli, "src", tree) == {"keep", "fake", "deep"}
        cli("items", "update", "src", "--no-exclude-caches")
        cli("backup", "src")
        assert "cache" in names(cli, "src", tree) and "nobackup" not in names(cli, "src", tree)

    def test_an_item_protected_before_these_options(self, tree, cli, vault_url):
        """An item whose source has neither key (protected by an earlier version) takes them
        through items update."""
        from strongroom.vault import Vault

        vault = Vault.create(vault_url)
        vault.protect("files", "old", {"paths": [tree], "excludes": [], "includes": [], "one_file_system": False})
        cli("items", "update", "old", "--exclude-caches")
        cli("backup", "old")
        assert "cache" not in names(cli, "old", tree) and "nobackup" in names(cli, "old", tree)

    def test_a_path_is_not_a_name(self, tree, cli, vault_url):
        """--exclude-if-present takes a file name: a path is the workload's InvalidSource (47)."""
        cli("vault", "create", vault_url)
        done = cli("protect", "files", "src", "--path", tree, "--exclude-if-present", "a/b", expect=None)
        assert_one_line_error(done, 47, "file name")
