"""Files smaller than the minimum chunk size, read with one system call: a file whose size
changed since it was listed is stored as read, with a warning, as a large one is."""

from __future__ import annotations

import os

import pytest

from strongroom import FILE, Entry, FileSource, FolderSource, Workload
from strongroom.vault import Vault
from vaultkit import workload_host

LISTED: dict[str, int] = {}  # name -> the size the workload claims
ROOT: list[str] = []


class ListedSizeWorkload(Workload):
    """Yields the files of one folder with the sizes in LISTED, whatever they hold now
    (as a scan that ran just before the files changed would)."""

    name = "listedsize"

    def backup(self, ctx):
        yield FolderSource.named("d")
        for name in sorted(LISTED):
            path = os.path.join(ROOT[0], name)
            st = os.lstat(path)
            entry = Entry(name=name, type=FILE, mode=0o644, size=LISTED[name], mtime_ns=st.st_mtime_ns,
                          ctime_ns=st.st_ctime_ns, ino=st.st_ino, dev=st.st_dev)
            yield FileSource(f"d/{name}", path, entry)


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    return Vault.create(str(tmp_path / "vault"), plugins=workload_host(listedsize=ListedSizeWorkload))


def test_small_files_store_what_they_hold_when_read(vault, tmp_path):
    """A small file as listed, one that shrank, one that grew past the minimum chunk size
    and an empty one: each restores with the bytes it held when read; the two changed
    files are named in the point's warnings, the others not."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {"same": b"s" * 700, "shrank": b"k" * 100, "grew": os.urandom(3 * 1024 * 1024), "empty": b""}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    ROOT[:] = [str(src)]
    LISTED.clear()
    LISTED.update({"same": 700, "shrank": 900, "grew": 50, "empty": 0})
    vault.protect("listedsize", "small", {})
    result = vault.backup("small")
    for name, data in contents.items():
        assert vault.open_file("small", None, f"d/{name}").read() == data, name
    assert {e.name: e.size for e in vault.tree(result).listdir("d")} == {
        name: len(data) for name, data in contents.items()}
    changed = [w for w in result.warnings if "changed while being backed up" in w]
    assert sorted(w.split(":")[0] for w in changed) == ["d/grew", "d/shrank"]
    assert result.stats["files_read"] == 4 and result.stats["bytes_read"] == sum(map(len, contents.values()))
