"""Batches of small files read and sealed in worker processes (engine/sealprocs.py,
engine/sealworker.py): the same vault as with threads, files that change or vanish
handled as before, workers that die replaced by threads, no secret in a worker's
arguments or environment."""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import threading
import time

import pytest

from strongroom import FILE, Entry, FileSource, FolderSource, Workload
from strongroom.engine import backup as backup_module
from strongroom.engine import sealprocs
from strongroom.engine.sealprocs import SmallFileSealers
from strongroom.engine.sealworker import receive, send
from strongroom.repository.blobwriter import BlobWriter
from strongroom.repository.envelope import KIND_DATA, Envelope
from strongroom.vault import Vault
from vaultkit import workload_host

FILES: list[tuple[str, str, int]] = []  # (name, path, listed size)


class ListedFilesWorkload(Workload):
    """Yields the files of FILES with their listed sizes, whatever they hold now (as a
    scan that ran just before they changed would)."""

    name = "listedfiles"

    def backup(self, ctx):
        yield FolderSource.named("d")
        for name, path, size in FILES:
            st = os.lstat(path) if os.path.lexists(path) else None
            entry = Entry(name=name, type=FILE, mode=0o644, size=size, mtime_ns=st.st_mtime_ns if st else 0,
                          ctime_ns=st.st_ctime_ns if st else 0, ino=st.st_ino if st else 0,
                          dev=st.st_dev if st else 0)
            yield FileSource(f"d/{name}", path, entry)


@pytest.fixture
def vault(tmp_path, strongroom_isolated_home, monkeypatch):
    monkeypatch.setattr(backup_module, "BATCH_FILES", 16)
    monkeypatch.setattr(backup_module, "PROCESSES_FROM_BATCH", 1)
    monkeypatch.setattr(backup_module, "cpus", lambda: 2)  # workers even on a machine of one CPU
    return Vault.create(str(tmp_path / "vault"), plugins=workload_host(listedfiles=ListedFilesWorkload))


@pytest.fixture
def sealed_batches(monkeypatch):
    """The batches workers sealed (their file counts), whichever backup asked."""
    counts: list[int] = []
    real = SmallFileSealers.seal

    def counting(self, files):
        result = real(self, files)
        if result is not None:
            counts.append(len(result))
        return result

    monkeypatch.setattr(SmallFileSealers, "seal", counting)
    return counts


def _tree(src, count: int, *, seed: int = 0) -> dict[str, bytes]:
    """``count`` files of 0 to 40,000 bytes, text-like and random, a few of them equal."""
    src.mkdir(exist_ok=True)
    contents: dict[str, bytes] = {}
    for i in range(count):
        size = (i * 7919 + seed) % 40_000 if i % 50 else 0
        data = (b"line %d of a text file\n" % i * (size // 20 + 1))[:size] if i % 3 else os.urandom(size)
        contents[f"f{i:04d}"] = data if i % 97 else b"the same bytes in several files\n" * 10
    for name, data in contents.items():
        (src / name).write_bytes(data)
    FILES[:] = [(name, str(src / name), len(data)) for name, data in contents.items()]
    return contents


def _restored(vault, item: str, names) -> dict[str, bytes]:
    return {name: vault.open_file(item, None, f"d/{name}").read() for name in names}


def test_workers_seal_what_threads_would(vault, tmp_path, sealed_batches):
    """300 small files backed up with workers restore byte for byte, the vault verifies
    reading every blob, and the workers sealed most batches; a second vault item backed up
    with threads only (no workers) stores no new blob: the workers' blobs have the ids
    and contents threads give."""
    contents = _tree(tmp_path / "src", 300)
    vault.protect("listedfiles", "procs", {})
    result = vault.backup("procs")
    assert sum(sealed_batches) >= 200, sealed_batches  # the first batch may go before they are ready
    assert result.stats["files_read"] == 300 and not result.warnings
    assert _restored(vault, "procs", contents) == contents
    report = vault.verify(read_data=True)
    assert not report.problems

    sealed_batches.clear()
    backup_module.PROCESSES_FROM_BATCH = 10**9  # undone by the fixture's monkeypatch
    vault.protect("listedfiles", "threads", {})
    again = vault.backup("threads")
    assert sealed_batches == []
    assert again.stats["new_blobs"] == 0 and again.stats["files_read"] == 300
    assert again.root == result.root  # the same tree nodes: the same entries and blob ids


def test_files_that_changed_or_vanished_go_the_usual_way(vault, tmp_path, sealed_batches):
    """Files the worker cannot read as listed (one grew past its listed size, one is
    gone, one is a folder now) are read in the backup's process, which warns as it does;
    one that shrank is stored as read with a warning; the others are sealed by workers."""
    contents = _tree(tmp_path / "src", 120)
    grew, gone, shrank, folder = "f0011", "f0022", "f0033", "f0044"
    (tmp_path / "src" / grew).write_bytes(contents[grew] + b"more" * 1000)
    contents[grew] += b"more" * 1000
    (tmp_path / "src" / shrank).write_bytes(contents[shrank][:10])
    contents[shrank] = contents[shrank][:10]
    os.unlink(tmp_path / "src" / gone)
    os.unlink(tmp_path / "src" / folder)
    os.mkdir(tmp_path / "src" / folder)
    vault.protect("listedfiles", "changed", {})
    result = vault.backup("changed")
    assert sum(sealed_batches) >= 60
    warned = sorted(w.split(":")[0] for w in result.warnings)
    assert warned == [f"d/{grew}", f"d/{gone}", f"d/{shrank}", f"d/{folder}"], result.warnings
    names = [name for name in contents if name not in (gone, folder)]
    assert _restored(vault, "changed", names) == {name: contents[name] for name in names}
    listed = {e.name for e in vault.tree(result).listdir("d")}
    assert gone not in listed and folder not in listed and grew in listed


def test_a_worker_killed_during_the_backup_loses_nothing(vault, tmp_path, sealed_batches, monkeypatch):
    """Both workers killed with SIGKILL after a few batches: the backup goes on with
    threads, completes, and every file restores as it was."""
    contents = _tree(tmp_path / "src", 400)
    real = SmallFileSealers.seal
    killed: list[int] = []

    def killing(self, files):
        if len(sealed_batches) >= 3 and not killed:
            killed.extend(self.pids)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        return real(self, files)

    monkeypatch.setattr(SmallFileSealers, "seal", killing)
    vault.protect("listedfiles", "killed", {})
    result = vault.backup("killed")
    assert len(killed) == 2
    assert 3 <= len(sealed_batches) < 25  # 400 files in batches of 16: the rest went to threads
    assert result.stats["files_read"] == 400 and not result.warnings
    assert _restored(vault, "killed", contents) == contents
    assert not vault.verify(read_data=True).problems


@pytest.fixture
def envelope():
    return Envelope(os.urandom(32), os.urandom(4), format=3)


@pytest.fixture
def sealers(envelope):
    workers = SmallFileSealers(envelope, b"k" * 32, level=3, workers=2)
    workers.start()
    yield workers
    workers.close()


def test_a_worker_seals_as_the_envelope_does(sealers, envelope, tmp_path):
    """A worker's sealed blob opens with the parent's envelope under its id, and the id
    is the keyed hash the repository gives; an empty file has no blob, a missing one is None."""
    from strongroom.repository.blobid import blob_id

    (tmp_path / "a").write_bytes(b"hello " * 1000)
    (tmp_path / "empty").write_bytes(b"")
    sealed = sealers.seal([(str(tmp_path / "a"), 6000), (str(tmp_path / "empty"), 0), (str(tmp_path / "no"), 5)])
    assert sealed is not None
    (blob, length, data), empty, missing = sealed
    assert blob == blob_id(b"k" * 32, b"hello " * 1000) and length == 6000
    assert envelope.open(data, blob, kind=KIND_DATA) == b"hello " * 1000
    assert len(data) < 6000  # compressed
    assert empty == (b"", 0, b"") and missing is None


def test_workers_get_no_secret_and_ignore_sigint(envelope, monkeypatch):
    """The keys reach a worker through its input only: not in its arguments, not in its
    environment, where strongroom's secret variables are not either.  A SIGINT (the
    terminal's Ctrl-C goes to the whole job) leaves it working."""
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", "a passphrase of the parent")
    data_key = envelope.writing_state()[0]
    workers = SmallFileSealers(envelope, b"i" * 32, level=3, workers=1)
    workers.start()
    try:
        assert workers.seal([]) == []  # started and answering
        (pid,) = workers.pids
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read()
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
        assert b"sealworker" in argv
        for secret in (data_key, data_key.hex().encode(), b"i" * 32, b"a passphrase of the parent"):
            assert secret not in argv and secret not in environ
        assert b"STRONGROOM_PASSPHRASE" not in environ
        os.kill(pid, signal.SIGINT)
        time.sleep(0.2)
        assert workers.seal([]) == [] and workers.pids == [pid]
    finally:
        workers.close()
    assert workers.pids == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_dead_workers_are_no_error_and_a_bug_in_one_is(sealers, tmp_path):
    """A batch given to a worker that was killed comes back as None (the caller reads it
    itself) and the worker is gone; an error a worker raises is raised as it was."""
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(TypeError):
        sealers.seal([(str(tmp_path / "f"), "not a size")])
    assert len(sealers.pids) == 2  # the worker answered with the error and goes on
    for pid in sealers.pids:
        os.kill(pid, signal.SIGKILL)
    assert sealers.seal([]) is None
    assert sealers.seal([]) is None
    assert not sealers.ready and sealers.pids == []


def test_add_sealed_many_stores_each_blob_once_under_the_right_key(tmp_path, envelope):
    """Blobs sealed elsewhere are stored once (a repeat in the batch, or one the index
    holds, is not), read back as they were; sealed with another key they are refused."""
    from strongroom.repository.masterkey import MasterKey
    from strongroom.repository.repository import Repository
    from strongroom.storage import open_store

    repo = Repository(open_store(str(tmp_path / "r")), MasterKey.generate())
    sealing = Envelope.sealing_only(repo.envelope.writing_state())
    blobs = []
    for data in (b"one" * 100, b"two" * 100, b"one" * 100):
        blob = repo.blob_id(data)
        body, compression = sealing.prepare(KIND_DATA, data)
        out = bytearray(sealing.prepared_size(KIND_DATA, len(body)))
        sealing.seal_prepared_into(memoryview(out), KIND_DATA, blob, body, compression)
        blobs.append((blob, len(data), bytes(out)))
    with BlobWriter(repo) as writer:
        ids = writer.add_sealed_many(KIND_DATA, repo.envelope.key_id, blobs)
        with pytest.raises(ValueError, match="sealed with key"):
            writer.add_sealed_many(KIND_DATA, b"\0\0\0\0", blobs)
    assert ids == [blob for blob, _, _ in blobs] and writer.new_blobs == 2
    assert repo.get_blob(ids[0]) == b"one" * 100 and repo.get_blob(ids[1]) == b"two" * 100
    with BlobWriter(repo) as writer:
        writer.add_sealed_many(KIND_DATA, repo.envelope.key_id, blobs)
    assert writer.new_blobs == 0


def test_writing_state_follows_the_writing_key(envelope):
    """An envelope made from :meth:`writing_state` seals what the original opens, after
    a change of writing key too (and for the base envelope)."""
    other_key, other_id = os.urandom(32), os.urandom(4)
    for source in (envelope, envelope.with_key(other_key, other_id), envelope.with_key(other_key, other_id).base()):
        copy = Envelope.sealing_only(source.writing_state())
        assert copy.key_id == source.key_id and copy.format == source.format
        sealed = copy.seal(KIND_DATA, b"n" * 32, b"payload")
        assert source.open(sealed, b"n" * 32, kind=KIND_DATA, key_id=source.key_id) == b"payload"


def test_messages_round_trip_and_a_cut_one_is_eof():
    """What send writes (a message and a raw payload larger than a pipe holds), receive
    reads back, the payload into the buffer it is given; a stream cut inside a message
    or at its start ends with EOFError, not a partial message."""
    r, w = os.pipe()
    message = ("ok", [(b"\x01" * 32, 5, 0, 100_000), None])
    payload = os.urandom(300_000)

    def write() -> None:
        send(w, message, payload)
        send(w, "second")
        os.close(w)

    writer = threading.Thread(target=write)
    buffer = bytearray()
    with os.fdopen(r, "rb", buffering=0) as reader:
        writer.start()
        got, view = receive(reader, buffer)
        assert got == message and view == payload and view.obj is buffer
        view.release()
        got, view = receive(reader, buffer)
        assert got == "second" and view.nbytes == 0
        writer.join()
        with pytest.raises(EOFError):
            receive(reader)
    data = pickle.dumps("cut")
    frame = len(data).to_bytes(8, "little") + (10).to_bytes(8, "little") + data + b"0123456789"
    assert receive(io.BytesIO(frame))[0] == "cut"
    for cut in (3, 17, len(frame) - 1):
        with pytest.raises(EOFError):
            receive(io.BytesIO(frame[:cut]))


def test_workers_cannot_start_without_python(monkeypatch, envelope):
    """Without a Python executable to start, there are no workers, and no error."""
    monkeypatch.setattr(sys, "executable", "")
    assert not sealprocs.can_start()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    workers = SmallFileSealers(envelope, b"k" * 32, level=3, workers=2)
    workers.start()
    assert not workers.ready and workers.seal([]) is None
    workers.close()


def test_a_worker_imports_nothing_from_the_current_folder(envelope, tmp_path, monkeypatch):
    """A backup run from a folder holding modules named like the worker's (a source
    checkout, a user's scripts) starts workers that import the real ones."""
    (tmp_path / "blake3.py").write_text("raise ImportError('the blake3 of the current folder')\n")
    (tmp_path / "strongroom").mkdir()
    (tmp_path / "strongroom" / "__init__.py").write_text("raise ImportError('a strongroom of the current folder')\n")
    (tmp_path / "f").write_bytes(b"content")
    monkeypatch.chdir(tmp_path)
    workers = SmallFileSealers(envelope, b"k" * 32, level=3, workers=1)
    workers.start()
    try:
        sealed = workers.seal([(str(tmp_path / "f"), 7)])
    finally:
        workers.close()
    assert sealed is not None and sealed[0][1] == 7
