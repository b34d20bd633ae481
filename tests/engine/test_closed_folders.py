"""Folders closed behind a folder whose file is still being read become tree nodes
without waiting for it (their parent's rows and entries are not held meanwhile), never
before their own subfolders, and the point is the same."""

from __future__ import annotations

import io
import threading

import pytest

from strongroom import FolderSource, StreamSource, Workload
from strongroom.engine import backup as backup_engine
from strongroom.vault import Vault
from vaultkit import workload_host

FOLDERS = 60
RELEASE = threading.Event()
FINALIZED: list[str] = []


def slow_open():
    released = RELEASE.wait(timeout=20)
    FINALIZED.append("slow file read" if released else "slow file timed out")
    return io.BytesIO(b"slow" * 1000)


class SlowFirstWorkload(Workload):
    name = "slowfirst"

    def backup(self, ctx):
        yield FolderSource.named("a")
        yield StreamSource("a/slow", StreamSource.from_bytes("a/slow", b"").entry, slow_open)
        for n in range(FOLDERS):
            yield FolderSource.named(f"b{n:02}")
            yield FolderSource.named(f"b{n:02}/sub")
            yield StreamSource.from_bytes(f"b{n:02}/sub/f", f"sub {n}".encode())
            for k in range(2):
                yield StreamSource.from_bytes(f"b{n:02}/f{k}", f"{n} {k}".encode() * 100)


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    return Vault.create(str(tmp_path / "vault"), plugins=workload_host(slowfirst=SlowFirstWorkload))


def test_folders_behind_a_slow_one_are_written_first_and_in_order(vault, monkeypatch):
    RELEASE.clear()
    FINALIZED.clear()
    original = backup_engine.BackupEngine._finalize

    def recording(self, directory):
        FINALIZED.append(directory.path)
        if directory.path.startswith("b"):
            RELEASE.set()  # a folder behind the slow one became a tree node first
        return original(self, directory)

    monkeypatch.setattr(backup_engine.BackupEngine, "_finalize", recording)
    vault.protect("slowfirst", "slow", {})
    vault.backup("slow")
    assert "slow file read" in FINALIZED, "no folder behind the slow one was written while it was read"
    assert FINALIZED.index("slow file read") < FINALIZED.index("a")
    for n in range(FOLDERS):
        assert FINALIZED.index(f"b{n:02}/sub") < FINALIZED.index(f"b{n:02}")
    assert FINALIZED[-1] == ""  # the root last
    assert vault.open_file("slow", None, "a/slow").read() == b"slow" * 1000
    for n in range(FOLDERS):
        assert vault.open_file("slow", None, f"b{n:02}/sub/f").read() == f"sub {n}".encode()
        assert vault.open_file("slow", None, f"b{n:02}/f1").read() == f"{n} 1".encode() * 100


READ_ENDED = threading.Event()
WALK: list[str] = []


class ReadEndsMidWalkWorkload(Workload):
    """A folder whose one file is read only once the walk has left it; the walk goes on
    once that read has ended."""

    name = "readendsmidwalk"

    def backup(self, ctx):
        yield FolderSource.named("a")
        yield StreamSource("a/slow", StreamSource.from_bytes("a/slow", b"").entry, slow_open)
        yield FolderSource.named("b")  # the walk leaves "a": closed, its file not read yet
        RELEASE.set()
        WALK.append("read ended" if READ_ENDED.wait(timeout=20) else "read timed out")
        yield StreamSource.from_bytes("b/f0", b"after the read")
        WALK.append("walked on")  # the walk has taken b/f0 and asks for the next entry
        yield StreamSource.from_bytes("b/f1", b"last")


def test_a_folder_becomes_a_node_at_the_next_entry_after_its_read_ends(tmp_path, strongroom_isolated_home,
                                                                        monkeypatch):
    """The walk asks again whether its first closed folder is ready only when a read has
    ended since it last asked, and then at the very next entry."""
    RELEASE.clear()
    READ_ENDED.clear()
    WALK.clear()
    FINALIZED.clear()
    original_finalize = backup_engine.BackupEngine._finalize
    original_ended = backup_engine.BackupEngine._read_ended

    def finalize(self, directory):
        WALK.append(f"node {directory.path}")
        return original_finalize(self, directory)

    def read_ended(self, future):
        original_ended(self, future)
        READ_ENDED.set()

    monkeypatch.setattr(backup_engine.BackupEngine, "_finalize", finalize)
    monkeypatch.setattr(backup_engine.BackupEngine, "_read_ended", read_ended)
    vault = Vault.create(str(tmp_path / "vault"), plugins=workload_host(readendsmidwalk=ReadEndsMidWalkWorkload))
    vault.protect("readendsmidwalk", "item", {})
    vault.backup("item")
    assert WALK[0] == "read ended"
    assert WALK.index("node a") < WALK.index("walked on")
    assert WALK[-1] == "node "  # the root last
    assert vault.open_file("item", None, "a/slow").read() == b"slow" * 1000
    assert vault.open_file("item", None, "b/f0").read() == b"after the read"
