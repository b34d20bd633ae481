"""How the engine treats what a workload yields: streams are always read, and a workload
that returns a context manager keeps it entered until every entry has been read."""

from __future__ import annotations

import contextlib
import io

import pytest

from strongroom import FILE, FolderSource, StreamSource, Workload
from strongroom.vault import Vault
from vaultkit import workload_host

CONTENT = {"data": b"first version\n" * 1000}
EVENTS: list[str] = []
FIXED_MTIME = 1_600_000_000_000_000_000


class CopyWorkload(Workload):
    """A workload whose stream is a file-typed entry with the same metadata every time
    (a copy of a database, say): only its content changes."""

    name = "copytest"

    def backup(self, ctx):
        yield FolderSource.named("copies", mtime_ns=FIXED_MTIME)
        data = CONTENT["data"]
        yield StreamSource.from_bytes("copies/db", data, type=FILE, mtime_ns=FIXED_MTIME)


class SnapshotWorkload(Workload):
    """A workload that holds a snapshot open while the engine reads its streams."""

    name = "snaptest"

    @contextlib.contextmanager
    def backup(self, ctx):
        EVENTS.append("enter")

        def opener(n: int):
            def open_stream():
                EVENTS.append(f"open {n}")
                return io.BytesIO(bytes([n]) * 300_000)
            return open_stream

        entries = [FolderSource.named("s")]
        entries += [StreamSource(f"s/{n}", StreamSource.from_bytes(f"s/{n}", b"").entry, opener(n)) for n in range(8)]
        try:
            yield entries
        finally:
            EVENTS.append("exit")


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home):
    return Vault.create(str(tmp_path / "vault"), plugins=workload_host(copytest=CopyWorkload, snaptest=SnapshotWorkload))


class TestStreams:
    def test_a_stream_with_unchanged_metadata_is_read_again(self, vault, tmp_path):
        """A file-typed stream whose size and times equal the parent point's is still read:
        only files read from the file system are taken as unchanged by their metadata."""
        vault.protect("copytest", "copy", {})
        CONTENT["data"] = b"first version\n" * 1000
        vault.backup("copy")
        CONTENT["data"] = b"other version\n" * 1000  # same size, same metadata
        second = vault.backup("copy")
        assert second.stats["files_unchanged"] == 0 and second.stats["bytes_read"] == len(CONTENT["data"])
        assert vault.open_file("copy", None, "copies/db").read() == CONTENT["data"]
        assert vault.open_file("copy", vault.points("copy")[0].point_id, "copies/db").read() == b"first version\n" * 1000


class TestContextManagerWorkloads:
    def test_the_context_is_exited_after_every_entry_is_read(self, vault, tmp_path):
        """A workload's context manager is entered before the walk and exited only once
        every stream has been opened and read."""
        EVENTS.clear()
        vault.protect("snaptest", "snap", {})
        vault.backup("snap")
        assert EVENTS[0] == "enter" and EVENTS[-1] == "exit"
        assert sorted(EVENTS[1:-1]) == sorted(f"open {n}" for n in range(8))
        for n in range(8):
            assert vault.open_file("snap", None, f"s/{n}").read() == bytes([n]) * 300_000
