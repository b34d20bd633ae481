"""Backup: consistent copies, a manifest, nothing left behind, unchanged databases deduplicated."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile

import pytest
from strongroom import StrongroomError

from sqlitedbs import make_shop, row_counts
from strongroom_sqlite.errors import CopyFailed
from strongroom_sqlite.snapshot import copy_database


class TestCopy:
    @pytest.mark.parametrize("journal", ["wal", "delete"])
    def test_copies_of_an_unchanged_database_are_byte_identical(self, tmp_path, journal):
        """Two copies of a database nobody wrote to in between are the same bytes, in both journal modes."""
        db = make_shop(tmp_path / "shop.db", journal)
        copy_database(str(db), str(tmp_path / "one"))
        copy_database(str(db), str(tmp_path / "two"))
        assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()
        assert row_counts(tmp_path / "one") == row_counts(db)

    def test_a_missing_database_cannot_be_copied(self, tmp_path):
        """Copying a file that is not there raises CopyFailed naming it, and makes no copy."""
        with pytest.raises(CopyFailed, match="gone.db"):
            copy_database(str(tmp_path / "gone.db"), str(tmp_path / "copy"))


class TestBackup:
    def test_point_holds_the_copies_and_a_manifest(self, vault, shop, tmp_path):
        """The point has databases/<name>.sqlite with the file's mode and mtime, and a manifest describing it."""
        os.chmod(shop, 0o640)
        other = tmp_path / "other"
        other.mkdir()
        second = make_shop(other / "shop.db", "delete", customers=10)
        vault.protect("sqlite", "shops", {"databases": [str(shop), str(second)]})
        point = vault.backup("shops")
        assert point.consistency == "application-consistent"
        view = vault.point_view("shops")
        entry = view.lookup("databases/shop.sqlite")
        assert (entry.type, entry.mode, entry.mtime_ns) == ("file", 0o640, os.stat(shop).st_mtime_ns)
        manifest = json.loads(view.read_bytes("manifest.json"))
        records = {r["name"]: r for r in manifest["databases"]}
        assert set(records) == {"shop", "shop-2"}
        assert records["shop-2"]["source"] == str(second)
        assert records["shop-2"]["journal"] == "rollback" and records["shop"]["journal"] == "wal"
        assert records["shop"]["sqlite_version"] == sqlite3.sqlite_version
        assert records["shop"]["page_size"] == 4096
        assert records["shop"]["size"] == view.lookup("databases/shop.sqlite").size
        assert {t["name"]: t["rows"] for t in records["shop-2"]["tables"]} == row_counts(second)

    def test_unchanged_database_stores_almost_nothing_again(self, vault, tmp_path):
        """A second backup of an unchanged database of a few MB stores only the manifest and tree nodes."""
        db = make_shop(tmp_path / "big.db", customers=20000)
        assert os.path.getsize(db) > 2 * 1024 * 1024
        vault.protect("sqlite", "big", {"databases": [str(db)]})
        first = vault.backup("big")
        second = vault.backup("big")
        assert first.stats["new_bytes"] > 2 * 1024 * 1024
        assert second.stats["new_bytes"] < 16 * 1024, second.stats

    def test_changes_still_in_the_wal_are_in_the_next_point(self, vault, shop, tmp_path):
        """Rows committed to the WAL, with the database file itself untouched, are in the next point."""
        vault.protect("sqlite", "shop", {"databases": [str(shop)]})
        vault.backup("shop")
        before = os.stat(shop)
        writer = sqlite3.connect(shop)
        try:
            writer.execute("PRAGMA wal_autocheckpoint = 0")
            writer.execute("INSERT INTO audit VALUES ('later', 'in the wal only')")
            writer.commit()
            after = os.stat(shop)
            assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
            vault.backup("shop")
        finally:
            writer.close()
        target = tmp_path / "restored"
        vault.restore("shop", None, str(target))
        restored = sqlite3.connect(target / "databases" / "shop.sqlite")
        assert restored.execute("SELECT count(*) FROM audit WHERE at = 'later'").fetchone() == (1,)
        restored.close()

    def test_no_copy_is_left_in_the_temporary_folder(self, vault, shop, tmp_path, monkeypatch):
        """After a backup, the temporary folder the copies were made in is gone."""
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        vault.protect("sqlite", "shop", {"databases": [str(shop)]})
        vault.backup("shop")
        assert list(scratch.iterdir()) == []

    def test_a_database_that_vanished_fails_the_backup(self, vault, shop):
        """A protected database that is gone fails the backup with CopyFailed; no point is made."""
        vault.protect("sqlite", "shop", {"databases": [str(shop)]})
        os.remove(shop)
        with pytest.raises(StrongroomError) as info:
            vault.backup("shop")
        assert isinstance(info.value, CopyFailed) and info.value.exit_code == 102
        assert str(shop) in str(info.value)
        assert vault.points("shop") == []
