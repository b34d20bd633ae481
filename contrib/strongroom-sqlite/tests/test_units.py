"""Names of databases in a point, the source document and the manifest, without a vault."""

from __future__ import annotations

import pytest
from strongroom import InvalidSource

from sqlitedbs import make_shop
from strongroom_sqlite.errors import BadDatabaseFile, PointUnreadable
from strongroom_sqlite.layout import DatabaseRecord, Manifest, TableRecord, database_names
from strongroom_sqlite.source import from_options, validate


class TestDatabaseNames:
    def test_names_come_from_file_names_and_are_unique(self):
        """Each name is the file's stem made safe; a stem seen before gets -2, -3..."""
        paths = ["/a/shop.db", "/b/shop.sqlite3", "/c/shop", "/d/my app.v2.db", "/e/.hidden", "/f/shop-2.db"]
        assert database_names(paths) == ["shop", "shop-2", "shop-3", "my_app_v2", "_hidden", "shop-2-2"]

    def test_names_never_hold_a_dot_or_a_slash(self):
        """No name can be taken for the manifest or split as DB/TABLE."""
        for name in database_names(["/x/manifest.json.db", "/x/a.b.c", "/x/..db", "/x/ü.db"]):
            assert "." not in name and "/" not in name and name


class TestSource:
    def test_options_become_absolute_paths_in_order(self, tmp_path, monkeypatch):
        """--database values become absolute paths, in the order given."""
        monkeypatch.chdir(tmp_path)
        make_shop(tmp_path / "b.db", customers=1)
        make_shop(tmp_path / "a.db", customers=1)
        source = validate(from_options({"databases": ("b.db", "a.db")}))
        assert source == {"databases": [str(tmp_path / "b.db"), str(tmp_path / "a.db")]}

    def test_bad_files_are_invalid_sources_with_their_own_exit_code(self, tmp_path):
        """A file that is not a database is an InvalidSource (exit 101) naming the file."""
        (tmp_path / "x.db").write_bytes(b"SQLite format 2\x00" + bytes(100))
        with pytest.raises(BadDatabaseFile) as info:
            validate({"databases": [str(tmp_path / "x.db")]})
        assert isinstance(info.value, InvalidSource) and info.value.exit_code == 101
        assert str(info.value) == f"Invalid source for sqlite item: {tmp_path / 'x.db'} is not a SQLite database" \
                                  " (no SQLite header)."


class TestManifest:
    def test_round_trip(self):
        """A manifest read back from its bytes equals the one written."""
        record = DatabaseRecord(name="shop", entry="databases/shop.sqlite", source="/srv/shop.db", size=8192,
                                page_size=4096, encoding="UTF-8", journal="wal", sqlite_version="3.40.1",
                                tables=(TableRecord("orders", 3), TableRecord("fts", None)))
        manifest = Manifest("2026-01-01T00:00:00+00:00", (record,))
        assert Manifest.from_bytes(manifest.to_bytes(), "p") == manifest

    @pytest.mark.parametrize("data", [b"not json", b"[]", b'{"format": 99, "databases": []}', b'{"format": 1}'])
    def test_a_malformed_manifest_is_one_line(self, data):
        """A manifest that cannot be read is PointUnreadable naming the point, in one line."""
        with pytest.raises(PointUnreadable) as info:
            Manifest.from_bytes(data, "abcd1234")
        assert "abcd1234" in str(info.value) and "\n" not in str(info.value)
