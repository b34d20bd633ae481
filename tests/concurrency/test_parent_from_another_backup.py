"""A backup whose parent point was committed by another backup after this one loaded the
index (between its index load and its listing of points) reads the index files written
since: the parent is used, with no warning."""

from __future__ import annotations

from strongroom.services.points import PointBook
from strongroom.testing import make_tree
from strongroom.vault import Vault


def test_a_parent_committed_after_the_index_was_loaded(tmp_path, strongroom_isolated_home, monkeypatch):
    source = make_tree(str(tmp_path / "source"))
    url = str(tmp_path / "vault")
    Vault.create(url).protect("files", "src", {"paths": [source]})
    late = Vault.open(url)
    other = Vault.open(url)
    first = []
    real_of = PointBook.of

    def of_after_another_backup(self, item):
        if not first:  # the other backup commits its point right after this one loaded the index
            monkeypatch.setattr(PointBook, "of", real_of)
            first.append(other.backup("src"))
        return real_of(self, item)

    monkeypatch.setattr(PointBook, "of", of_after_another_backup)
    (tmp_path / "source" / "added.txt").write_text("after the first backup\n")
    second = late.backup("src")
    assert first and second.warnings == ()
    assert second.parent == first[0].point_id
    assert second.stats["files_unchanged"] >= 1  # the parent's entries were reused
