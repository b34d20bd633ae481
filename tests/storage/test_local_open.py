"""A plain local path opens without fsspec: the same root fsspec's LocalFileSystem
gives, the same refusal of options, and fsspec not imported."""

from __future__ import annotations

import subprocess
import sys

import fsspec
import pytest

from strongroom.errors import UnknownStorageOption
from strongroom.storage import open_store


@pytest.mark.parametrize("path", ["vault", "./vault", ".", "vault/", "a/../vault", "~/vault", "~", "/", "//x//"])
def test_same_root_as_fsspec(path, tmp_path, monkeypatch):
    """Relative, dotted, home-relative and absolute paths get fsspec's root and URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fs, root = fsspec.core.url_to_fs(path)
    store = open_store(path, retry=False)
    assert store.fs is None and store.root == root.rstrip("/")
    assert store.url == (root.rstrip("/") or "")
    assert store.capabilities() == open_store(f"file://{root}", retry=False).capabilities()


def test_options_refused_as_before(tmp_path):
    """A local folder takes no fsspec option: the first, sorted, is named."""
    with pytest.raises(UnknownStorageOption, match="'anon'.*a local folder"):
        open_store(str(tmp_path), {"key": "x", "anon": True})


def test_a_local_vault_opens_without_fsspec(tmp_path):
    """Writing and reading a local folder's objects imports no fsspec."""
    code = f"""
import sys
from strongroom.storage import open_store
store = open_store({str(tmp_path / "v")!r}, create=True)
store.put("a/b", b"data")
assert store.get("a/b") == b"data" and list(store.list()) == ["a/b"]
print("fsspec" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
