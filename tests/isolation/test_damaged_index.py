"""A damaged index file does not take the vault down (issue 12: one bad object never
takes down the rest).

Restore and browse skip it and find the packs it named from the packs' own trailers
(a warning says so, exit 1); a backup skips it too, indexes those packs anew and warns;
verify keeps reporting it until ``vault repair --apply`` sets it aside.
"""

from __future__ import annotations

import json
import os

import pytest

from damagekit import DAMAGE, read_tree, write_tree
from vaultkit import first_backup


@pytest.fixture
def backed_up(cli, source, tmp_path):
    """Item 'data' backed up once; returns the names of the index files that backup wrote."""
    first_backup(cli, source)
    return sorted(os.listdir(os.path.join(cli.vault_url, "index")))


@pytest.mark.parametrize("how", DAMAGE)
class TestDamagedIndexFile:
    def test_restore_reads_the_packs_it_named(self, cli, source, backed_up, tmp_path, how):
        """With every index file damaged, a restore still writes every file byte for byte,
        warns naming the index file, and exits 1 (completed with warnings)."""
        for name in backed_up:
            DAMAGE[how](os.path.join(cli.vault_url, "index", name))
        target = tmp_path / "restored"
        done = cli("restore", "data", "--target", str(target), expect=1)
        assert backed_up[0] in done.stderr and "repair" in done.stderr
        assert read_tree(target / source.lstrip("/")) == read_tree(source)
        browsed = cli("browse", "data", source.lstrip("/") + "/b")
        assert "deep" in browsed.stdout

    def test_backup_goes_on_and_heals_the_index(self, cli, source, backed_up, tmp_path, how):
        """A backup skips the damaged file with a warning and indexes its packs anew; after
        repair sets the file aside, verify is clean and every point restores."""
        for name in backed_up:
            DAMAGE[how](os.path.join(cli.vault_url, "index", name))
        write_tree(source, {"new.txt": b"added after the damage\n"})
        backup = cli("backup", "data", "--json", expect=1)
        point = json.loads(backup.stdout)
        assert any(backed_up[0] in w for w in point["warnings"])
        cli("vault", "verify", expect=51)
        cli("vault", "repair", "--apply")
        cli("vault", "verify", "--read-data")
        for ref in [p["point_id"] for p in json.loads(cli("points", "data", "--json").stdout)]:
            target = tmp_path / f"r-{ref}"
            cli("restore", f"data@{ref}", "--target", str(target))
        assert read_tree(target / source.lstrip("/")) == read_tree(source)
