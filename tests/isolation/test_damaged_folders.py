"""A damaged folder node loses that folder only (issue 12, case 3), and a damaged folder
of the parent point does not stop a backup (case 8, "a backup whose parent point's tree
node is damaged").
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from damagekit import damage_blob, flip, folder_node, read_tree, rel, truncate, write_tree
from strongroom.vault import Vault
from vaultkit import first_backup


@pytest.fixture
def backed_up(cli, source):
    first_backup(cli, source)
    vault = Vault.open(cli.vault_url)
    return vault, vault.point("data")


def _without(files: dict[str, bytes], folder: str) -> dict[str, bytes]:
    return {path: data for path, data in files.items() if not path.startswith(folder + "/")}


class TestRestoreAroundADamagedFolder:
    def test_whole_restore_writes_everything_else_and_names_the_folder(self, cli, backed_up, source, tmp_path):
        """Every other file and folder is written, with its metadata; the damaged folder
        is not created; one line names its point path; exit 50."""
        vault, point = backed_up
        damage_blob(vault, folder_node(vault, point, rel(source) + "/b"))
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=50)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
        assert f"{rel(source)}/b: folder not restored" in res.stderr
        out = tmp_path / "out" / rel(source)
        assert read_tree(out) == _without(read_tree(source), "b")
        assert not (out / "b").exists()
        for folder in ("a", "c", ""):
            assert stat.S_IMODE(os.stat(out / folder).st_mode) == stat.S_IMODE(os.stat(os.path.join(source, folder)).st_mode)

    def test_restore_of_paths_inside_and_beside_it(self, cli, backed_up, source, tmp_path):
        """Restoring a path below the damaged folder names the folder; paths beside it
        are restored in the same run."""
        vault, point = backed_up
        damage_blob(vault, folder_node(vault, point, rel(source) + "/b"))
        res = cli("restore", "data", "--target", str(tmp_path / "out"),
                  f"{rel(source)}/b/deep", f"{rel(source)}/c", expect=50)
        assert f"{rel(source)}/b: folder not restored" in res.stderr
        assert read_tree(tmp_path / "out" / rel(source)) == {
            f"c/f{i}.txt": f"c file {i}\n".encode() * 200 for i in range(3)}

    def test_browse_names_the_folder(self, cli, backed_up, source):
        """Browsing into the damaged folder names it (exit 50); browsing beside it works."""
        vault, point = backed_up
        damage_blob(vault, folder_node(vault, point, rel(source) + "/b"))
        res = cli("browse", "data", f"{rel(source)}/b/deep", expect=50)
        assert f"folder '{rel(source)}/b'" in res.stderr and res.stderr.count("\n") == 1
        assert "f0.txt" in cli("browse", "data", f"{rel(source)}/c").stdout

    @pytest.mark.parametrize("how", [flip, truncate], ids=["bit flip", "truncation"])
    def test_a_damaged_top_node_writes_nothing_and_says_so(self, cli, backed_up, tmp_path, how):
        """With the point's top node damaged (or its pack cut short), nothing can be
        written: exit 50 naming '/'."""
        vault, point = backed_up
        damage_blob(vault, bytes.fromhex(point.root), how)
        res = cli("restore", "data", "--target", str(tmp_path / "out"), expect=50)
        assert "/: folder not restored" in res.stderr
        assert list((tmp_path / "out").iterdir()) == []


class TestBackupWithADamagedParent:
    def test_changed_folder_is_stored_from_the_source(self, cli, backed_up, source, tmp_path):
        """A folder of the parent whose node is damaged is backed up as if new: the point
        warns, names it, and restores exactly what the source has."""
        vault, point = backed_up
        damage_blob(vault, folder_node(vault, point, rel(source) + "/b"))
        write_tree(source, {"b/f0.txt": b"changed since the parent\n"})
        res = cli("backup", "data", expect=1)
        assert f"{rel(source)}/b: this folder of the parent point is damaged" in res.stderr
        made = json.loads(cli("points", "data", "--json").stdout)[-1]
        assert made["parent"] == point.point_id
        assert any("parent point is damaged" in w for w in made["warnings"])
        cli("restore", f"data@{made['point_id']}", "--target", str(tmp_path / "out"))
        assert read_tree(tmp_path / "out" / rel(source)) == read_tree(source)

    def test_unchanged_folder_says_to_repair(self, cli, backed_up, source):
        """An unchanged folder whose node is damaged makes the same node again: the
        backup says so and points to `vault repair`."""
        vault, point = backed_up
        damage_blob(vault, folder_node(vault, point, rel(source) + "/b/deep"))
        res = cli("backup", "data", expect=1)
        assert f"{rel(source)}/b/deep: this folder is unchanged" in res.stderr and "vault repair" in res.stderr

    def test_a_damaged_parent_top_means_no_parent(self, cli, backed_up, source, tmp_path):
        """With the parent's top node damaged, the backup runs without a parent: every
        file read again, a warning, no parent in the header."""
        vault, point = backed_up
        damage_blob(vault, bytes.fromhex(point.root))
        write_tree(source, {"new.txt": b"new file\n"})
        res = cli("backup", "data", expect=1)
        assert f"parent point {point.short_id} cannot be read" in res.stderr
        made = json.loads(cli("points", "data", "--json").stdout)[-1]
        assert made["parent"] is None and made["stats"]["files_unchanged"] == 0
        cli("restore", f"data@{made['point_id']}", "--target", str(tmp_path / "out"))
        assert read_tree(tmp_path / "out" / rel(source)) == read_tree(source)
