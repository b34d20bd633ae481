"""Fixtures of the isolation tests: a small source tree to back up."""

from __future__ import annotations

import pytest

from damagekit import write_tree


@pytest.fixture
def source(tmp_path) -> str:
    """Three folders of small files, one nested, and a file at the top."""
    root = tmp_path / "src"
    write_tree(root, {
        f"{folder}/f{i}.txt": f"{folder} file {i}\n".encode() * 200
        for folder in ("a", "b", "b/deep", "c") for i in range(3)
    } | {"top.txt": b"at the top\n"})
    return str(root)
