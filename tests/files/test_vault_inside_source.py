"""A vault that lies inside the folder it backs up is left out of the backup, with a warning."""

from __future__ import annotations

import os

from strongroom.vault import Vault
from strongroom_files.scan import Scanner


def _source(tmp_path):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("a")
    (src / "z.txt").write_text("z")
    return src


def _paths(vault: Vault, item: str) -> list[str]:
    return [path for path, _ in vault.point_view(item).walk()]


class TestVaultInsideItsSource:
    def test_the_vault_folder_is_left_out_with_one_warning(self, tmp_path):
        """Backing up a folder that holds the vault stores everything but the vault, and the
        point has one warning naming the vault's folder."""
        src = _source(tmp_path)
        vault = Vault.create(str(src / "backups" / "vault"))
        vault.protect("files", "src", {"paths": [str(src)]})
        point = vault.backup("src")
        top = str(src).lstrip("/")
        paths = _paths(vault, "src")
        assert f"{top}/docs/a.txt" in paths and f"{top}/z.txt" in paths and f"{top}/backups" in paths
        assert not [p for p in paths if p.startswith(f"{top}/backups/vault")]
        assert point.warnings == (f"{src}/backups/vault: the vault itself is stored here: left out of the backup",)
        again = vault.backup("src")  # and so on every backup: the vault never grows into itself
        assert len(again.warnings) == 1 and again.stats["files_read"] == 0

    def test_found_through_another_path(self, tmp_path):
        """A source named through a symbolic link still leaves the vault out (matched by
        device and inode, not by spelling)."""
        src = _source(tmp_path)
        os.symlink(src, tmp_path / "link")
        vault = Vault.create(str(src / "vault"))
        vault.protect("files", "src", {"paths": [str(tmp_path / "link") + "/docs", str(src)]})
        point = vault.backup("src")
        assert not [p for p in _paths(vault, "src") if p.endswith("/vault") or "/vault/" in p]
        assert len(point.warnings) == 1 and point.warnings[0].startswith(f"{src}/vault:")

    def test_the_vault_as_the_source_itself(self, tmp_path):
        """Protecting the vault's own folder (or a folder inside it) backs up nothing of it."""
        vault = Vault.create(str(tmp_path / "vault"))
        vault.protect("files", "self", {"paths": [str(tmp_path / "vault"), str(tmp_path / "vault" / "keys")]})
        point = vault.backup("self")
        assert not [p for p in _paths(vault, "self") if "vault/" in p or p.endswith("vault")]
        assert point.warnings and all("the vault itself is stored here" in w for w in point.warnings)

    def test_a_vault_elsewhere_changes_nothing(self, tmp_path):
        """A vault outside the source leaves the backup as it was: no warning, every file."""
        src = _source(tmp_path)
        vault = Vault.create(str(tmp_path / "vault"))
        vault.protect("files", "src", {"paths": [str(src)]})
        assert vault.backup("src").warnings == ()
        assert f"{str(src).lstrip('/')}/docs/a.txt" in _paths(vault, "src")


class TestScannerLeaveOut:
    def test_a_left_out_folder_is_neither_yielded_nor_descended(self, tmp_path):
        """Scanner(leave_out=...) skips the folder wherever the walk meets it, with one warning."""
        src = _source(tmp_path)
        scanner = Scanner([str(src)], leave_out=[str(src / "docs")])
        paths = [e.path for e in scanner]
        assert not [p for p in paths if "/docs" in p]
        assert [(w.path, w.reason) for w in scanner.warnings] == [
            (str(src / "docs"), "the vault itself is stored here: left out of the backup")]

    def test_a_missing_folder_to_leave_out_is_ignored(self, tmp_path):
        """Leaving out a folder that does not exist changes nothing."""
        src = _source(tmp_path)
        scanner = Scanner([str(src)], leave_out=[str(tmp_path / "nowhere")])
        assert len(list(scanner)) == len(list(Scanner([str(src)]))) and scanner.warnings == []
