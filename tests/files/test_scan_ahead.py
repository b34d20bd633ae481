"""The scan lists the folders it enters next in a second thread: what it yields, and the
folders it lists, are those of a scan that lists each folder when it enters it."""

from __future__ import annotations

import os

import attrs
import pytest

from strongroom.testing import build_sample_tree
from strongroom_files import scan as scan_module
from strongroom_files.scan import CACHEDIR_SIGNATURE, Scanner


_SCANDIR = os.scandir


def _tree(root: str) -> None:
    """Folders three deep, five to a folder, with files, a cache folder, an excluded one
    and names that are not ASCII."""
    for a in range(5):
        for b in range(5):
            for c in range(3):
                folder = os.path.join(root, f"a{a}", f"b{b}" if b else "é", f"c{c}")
                os.makedirs(folder)
                for f in range(3):
                    with open(os.path.join(folder, f"f{f}.txt"), "w") as out:
                        out.write(f"{a}{b}{c}{f}" * (f + 1))
    with open(os.path.join(root, "a1", "b2", "CACHEDIR.TAG"), "wb") as out:
        out.write(CACHEDIR_SIGNATURE + b"\n")
    os.makedirs(os.path.join(root, "a3", "skip", "deep"))


def _scan(root: str, monkeypatch: pytest.MonkeyPatch, ahead: int) -> tuple[list, list[str]]:
    listed: list[str] = []
    real = _SCANDIR
    monkeypatch.setattr(os, "scandir", lambda p: listed.append(p) or real(p))
    monkeypatch.setattr(scan_module, "LIST_AHEAD", ahead)
    scanner = Scanner([root], excludes=["skip"], exclude_caches=True)
    # listing a folder sets its atime: not compared; nor are the folders above the
    # tree (/tmp and the like), whose times other processes change meanwhile
    inside = root.lstrip("/")
    found = [(s.path, attrs.evolve(s.entry, atime_ns=0)) for s in scanner
             if s.path == inside or s.path.startswith(inside + "/")]
    return found, listed


@pytest.mark.parametrize("build", [_tree, lambda root: build_sample_tree(root)], ids=["folders", "sample"])
def test_listing_ahead_changes_nothing(tmp_path, monkeypatch, build):
    """Listed ahead (4 at a time, or 1) or not at all: the same entries in the same
    order, and the same folders listed (a cache folder and an excluded one never)."""
    root = str(tmp_path / "src")
    os.makedirs(root)
    build(root)
    plain, plain_listed = _scan(root, monkeypatch, 0)
    for ahead in (1, 4):
        found, listed = _scan(root, monkeypatch, ahead)
        assert found == plain
        assert sorted(listed) == sorted(plain_listed)
    assert len(plain) > 100 or build is not _tree
    assert not any("/skip" in p or p.endswith("a1/b2") for p in plain_listed)

