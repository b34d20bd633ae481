"""Files smaller than the minimum chunk size, read with one system call: a file whose size
changed since it was listed is stored as read, with a warning, as a large one is."""

from __future__ import annotations

import os
import threading
import time

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


def _tree_of(src, sizes: list[int]) -> dict[str, bytes]:
    contents = {f"f{i:04d}": os.urandom(size) for i, size in enumerate(sizes)}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    ROOT[:] = [str(src)]
    LISTED.clear()
    LISTED.update({name: len(data) for name, data in contents.items()})
    return contents


@pytest.mark.parametrize("size, most_at_once", [(1000, 1), (20_000, 2)])
def test_batches_of_tiny_files_are_read_one_at_a_time(vault, tmp_path, monkeypatch, size, most_at_once):
    """Batches of files averaging under TINY_FILE_BYTES are read by one thread at a time
    (two handing the GIL to each other were slower); batches of larger small files by
    both.  Every file restores as it was either way."""
    from strongroom.engine import backup as backup_module

    monkeypatch.setattr(backup_module, "BATCH_FILES", 8)
    # the threads' way, the one this test is about: no batch goes to worker processes
    monkeypatch.setattr(backup_module, "PROCESSES_FROM_BATCH", 10**9)
    src = tmp_path / "src"
    src.mkdir()
    contents = _tree_of(src, [size] * 96)
    real = backup_module.BackupEngine._read_small_files
    active, most = [0], [0]
    lock = threading.Lock()

    def counting(self, sources):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.02)  # long enough for the other thread to start one
            return real(self, sources)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(backup_module.BackupEngine, "_read_small_files", counting)
    vault.protect("listedsize", "small", {})
    result = vault.backup("small")
    assert most[0] == most_at_once
    for name, data in contents.items():
        assert vault.open_file("small", None, f"d/{name}").read() == data, name
    assert result.stats["files_read"] == 96


class FoldersWorkload(Workload):
    """Yields the files of ROOT[0]'s folders, one small file each."""

    name = "folders"

    def backup(self, ctx):
        for folder in sorted(os.listdir(ROOT[0])):
            yield FolderSource.named(folder)
            path = os.path.join(ROOT[0], folder, "f")
            st = os.lstat(path)
            yield FileSource(f"{folder}/f", path, Entry(
                name="f", type=FILE, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
                ino=st.st_ino, dev=st.st_dev))


@pytest.mark.parametrize("batch_rows, batches", [(4, 10), (10**9, 1)])
def test_a_batch_is_sent_once_enough_entries_wait_for_it(tmp_path, strongroom_isolated_home, monkeypatch,
                                                         batch_rows, batches):
    """A batch of small files is sent once the folders closed while it was filled hold
    BATCH_ROWS entries (each waits for it with its rows), not only when it is full: 40
    folders of one file each make 10 batches of 4 files with 4, one of 40 without."""
    from strongroom.engine import backup as backup_module

    monkeypatch.setattr(backup_module, "BATCH_ROWS", batch_rows)
    sizes: list[int] = []
    real = backup_module.BackupEngine._read_batch
    monkeypatch.setattr(backup_module.BackupEngine, "_read_batch",
                        lambda self, sources: sizes.append(len(sources)) or real(self, sources))
    src = tmp_path / "src"
    contents = {}
    for n in range(40):
        (src / f"d{n:02d}").mkdir(parents=True)
        contents[f"d{n:02d}/f"] = os.urandom(200 + n)
        (src / f"d{n:02d}" / "f").write_bytes(contents[f"d{n:02d}/f"])
    ROOT[:] = [str(src)]
    vault = Vault.create(str(tmp_path / "vault"), plugins=workload_host(folders=FoldersWorkload))
    vault.protect("folders", "many", {})
    vault.backup("many")
    assert len(sizes) == batches and sum(sizes) == 40
    for path, data in contents.items():
        assert vault.open_file("many", None, path).read() == data, path
