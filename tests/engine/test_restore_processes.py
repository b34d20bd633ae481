"""A restore's packs of small files written by worker processes (engine/restoreprocs.py,
engine/restoreworker.py): the same files, metadata, damage handling and target errors
as a restore by threads, on a real local store and real file systems."""

from __future__ import annotations

import os
import signal

import pytest

import strongroom.engine.restore as restore_module
from strongroom.engine.restore import Restorer
from strongroom.engine.restoreprocs import PackWriters
from strongroom.errors import TargetFull
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.pack import pack_name
from strongroom.repository.repository import Repository
from strongroom.engine.restoreworker import read_pack
from strongroom.storage import open_store
from strongroom.storage.ratelimit import RateLimitedStore

from test_restore_engine import CHUNK, OLD_NS, Point, read

pytestmark = pytest.mark.skipif(not restore_module.can_start(), reason="no Python executable to start workers")


class LocalPoint(Point):
    """A :class:`Point` whose packs are in a folder on disk."""

    def __init__(self, folder) -> None:
        super().__init__()
        self.repo = Repository(open_store(str(folder)), MasterKey.generate())


@pytest.fixture
def tasks(monkeypatch):
    """Workers from the first batch with a pack of small files on; the answers they gave,
    as (files of the task, answer, the task's pack file, the task's payload size)."""
    monkeypatch.setattr(restore_module, "PROCESSES_FROM_PACKS", 1)
    answers: list[tuple[list, tuple, tuple | None, int]] = []
    real = PackWriters.write

    def recording(self, keys, files, blobs, payload, pack_file=None):
        answer = real(self, keys, files, blobs, payload, pack_file)
        if answer is not None:
            answers.append((files, answer, pack_file, len(payload)))
        return answer

    monkeypatch.setattr(PackWriters, "write", recording)
    return answers


def _written_by_workers(tasks) -> set[str]:
    return {files[number][0] for files, answer, _, _ in tasks for number in answer[2]}


def _small_files(point: Point, count: int, prefix: str = "s") -> None:
    for i in range(count):
        point.file(f"{prefix}{i % 5}/f{i:03d}", os.urandom(2000 + 97 * i), mode=(0o600, 0o640, 0o755, 0o444)[i % 4])


def test_small_files_come_back_exactly_with_their_metadata(tmp_path, tasks):
    """Small files in many packs, written by two workers: every byte, mode and time is
    the point's, as are copies sharing a blob, empty files, a sparse one, a file spread
    over packs (written by a thread beside them) and a hard link to a worker's file."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 60)
    shared = os.urandom(3000)
    point.file("c/copy1", shared)
    point.file("c/copy2", shared)
    point.file("c/empty", b"")
    point.file("c/sparse", bytes(CHUNK) + b"y" * 100, sparse=True)
    point.file("c/spread", os.urandom(8 * CHUNK + 5))
    point.hardlink("z/link", "s0/f000")
    target = tmp_path / "t"
    result = Restorer(point.repo, point.tree(), str(target), threads=2, processes=2).run()
    assert result.errors == () and result.damaged == () and result.warnings == ()
    by_workers = _written_by_workers(tasks)
    assert len(by_workers) >= 40 and "c/spread" not in by_workers
    for relpath, data in point.content.items():
        st = os.lstat(target / relpath)
        assert st.st_mtime_ns == OLD_NS and st.st_atime_ns == OLD_NS, relpath
        assert read(target / relpath) == data, relpath
    for i in range(60):
        relpath = f"s{i % 5}/f{i:03d}"
        assert os.lstat(target / relpath).st_mode & 0o7777 == (0o600, 0o640, 0o755, 0o444)[i % 4], relpath
    assert os.lstat(target / "z/link").st_ino == os.lstat(target / "s0/f000").st_ino
    assert os.lstat(target / "c/sparse").st_size == CHUNK + 100
    assert os.lstat(target / "c/sparse").st_blocks * 512 < CHUNK
    assert result.stats.files == len(point.content)
    assert result.stats.bytes_written == sum(len(d) for d in point.content.values()) - CHUNK
    # from a local folder, each worker read its pack's file itself: nothing came through the pipe
    assert all(pack is not None and os.path.isfile(pack[0]) and size == 0 for _, _, pack, size in tasks)


def test_xattrs_and_a_setuid_mode_are_set_by_the_workers(tmp_path, tasks):
    """Files whose mode cannot be given at creation (setuid) or that carry xattrs get
    them from the worker, after the content."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 20)
    point.file("x/setuid", b"#!/bin/true\n", mode=0o4755)
    point.file("x/tagged", b"tagged", mode=0o644, xattrs=(("user.note", b"kept"),))
    target = tmp_path / "t"
    result = Restorer(point.repo, point.tree(), str(target), threads=2, processes=2).run()
    assert result.errors == () and result.warnings == ()
    assert {"x/setuid", "x/tagged"} <= _written_by_workers(tasks)
    assert os.lstat(target / "x/setuid").st_mode & 0o7777 == 0o4755
    assert os.getxattr(target / "x/tagged", "user.note") == b"kept"
    assert os.lstat(target / "x/tagged").st_mode & 0o7777 == 0o644
    assert read(target / "x/tagged") == b"tagged" and read(target / "x/setuid") == b"#!/bin/true\n"


def test_blobs_sealed_with_a_later_data_key_are_opened_by_the_workers(tmp_path, tasks):
    """Half the files sealed with a second data key: the workers are given it and
    restore them all."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 20, "first")
    point.tree()
    point.repo.envelope = point.repo.envelope.with_key(os.urandom(32), b"\x07\x07\x07\x07")
    point._pending.clear()
    _small_files(point, 20, "second")
    for relpath in [p for p in point.content if p.startswith("first")]:
        point._pending.append((relpath, {"data": point.content[relpath]}))
    tree = point.tree()
    target = tmp_path / "t"
    result = Restorer(point.repo, tree, str(target), threads=2, processes=2).run()
    assert result.errors == ()
    assert {p for p in point.content if p.startswith("second")} <= _written_by_workers(tasks)
    for relpath, data in point.content.items():
        assert read(target / relpath) == data, relpath


def test_a_damaged_blob_in_a_workers_pack(tmp_path, tasks):
    """A blob of a small file that fails authentication: that file is named and not
    left in the target, the other files of its pack and of the point are restored."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    tree = point.tree()
    victim = "s2/f017"
    entry = point.repo.lookup(tree.lookup(victim).chunks[0])
    name = pack_name(entry.pack_id)
    raw = bytearray(point.repo.store.get(name))
    raw[entry.offset + 20] ^= 1
    point.repo.store.put(name, bytes(raw))
    target = tmp_path / "t"
    result = Restorer(point.repo, tree, str(target), threads=2, processes=2).run()
    assert result.damaged == (victim,)
    assert victim in result.errors[0] and "authentication failed" in result.errors[0]
    assert not (target / victim).exists()
    assert any(victim in {f[0] for f in files} for files, _, _, _ in tasks)  # a worker met it
    for relpath, data in point.content.items():
        if relpath != victim:
            assert read(target / relpath) == data, relpath


def test_workers_killed_during_the_restore_lose_nothing(tmp_path, tasks, monkeypatch):
    """Both workers killed with SIGKILL after the first pack: the threads write the rest
    (and the pack a worker was writing), and every file comes back exactly."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 80)
    killed: list[int] = []
    recording = PackWriters.write

    def killing(self, keys, files, blobs, payload, pack_file=None):
        if tasks and not killed:
            killed.extend(self.pids)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        return recording(self, keys, files, blobs, payload, pack_file)

    monkeypatch.setattr(PackWriters, "write", killing)
    target = tmp_path / "t"
    result = Restorer(point.repo, point.tree(), str(target), threads=2, processes=2).run()
    assert len(killed) == 2 and result.errors == ()
    assert 0 < len(_written_by_workers(tasks)) < 80
    for relpath, data in point.content.items():
        assert read(target / relpath) == data, relpath
        assert os.lstat(target / relpath).st_mtime_ns == OLD_NS


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files away")
def test_owners_set_by_the_workers(tmp_path, tasks):
    """As root, the workers give each file its owner, the restoring user's or another."""
    point = LocalPoint(tmp_path / "vault")
    owners = {}
    for i in range(30):
        owner = ((0, 0), (1234, 5678), (0, 5678))[i % 3]
        point.file(f"o/f{i:02d}", os.urandom(300), uid=owner[0], gid=owner[1])
        owners[f"o/f{i:02d}"] = owner
    target = tmp_path / "t"
    Restorer(point.repo, point.tree(), str(target), restore_owner=True, processes=2).run()
    assert set(owners) <= _written_by_workers(tasks)
    assert {p: (os.lstat(target / p).st_uid, os.lstat(target / p).st_gid) for p in owners} == owners


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_target_stops_the_restore_and_leaves_no_partial_file(tmp_path, tasks):
    """Small files written by workers into a tmpfs too small for them: the restore stops
    with TargetFull naming a file, and every file left in the target is whole."""
    import subprocess

    point = LocalPoint(tmp_path / "vault")
    for i in range(120):
        point.file(f"f{i % 4}/x{i:03d}", os.urandom(28_000))
    small = tmp_path / "small"
    small.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(TargetFull, match="No space left on device"):
            Restorer(point.repo, point.tree(), str(small), threads=2, processes=2).run()
        assert tasks  # the workers wrote before the target was full
        left = [os.path.join(folder, name)[len(str(small)) + 1:]
                for folder, _, names in os.walk(small) for name in names]
        assert left
        for relpath in left:
            assert read(small / relpath) == point.content[relpath], f"{relpath} is not whole"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_a_restore_of_few_packs_starts_no_worker(tmp_path, monkeypatch):
    """A restore with fewer packs of small files than PROCESSES_FROM_PACKS uses its
    threads only (no process start for a few files)."""
    started: list[int] = []
    monkeypatch.setattr(PackWriters, "start", lambda self: started.append(1))
    point = LocalPoint(tmp_path / "vault")
    point.file("one/file", b"content")
    Restorer(point.repo, point.tree(), str(tmp_path / "t"), processes=2).run()
    assert started == [] and read(tmp_path / "t" / "one/file") == b"content"


def test_behind_a_store_that_changes_reads_the_packs_are_sent_to_the_workers(tmp_path, tasks):
    """A local folder behind a rate limit (a decorator every read must go through): the
    threads read the packs through the store and send their blobs to the workers."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    tree = point.tree()
    point.repo.store = RateLimitedStore(point.repo.store)
    target = tmp_path / "t"
    result = Restorer(point.repo, tree, str(target), threads=2, processes=2).run()
    assert result.errors == ()
    assert len(_written_by_workers(tasks)) == 40
    assert all(pack is None and size > 0 for _, _, pack, size in tasks)
    for relpath, data in point.content.items():
        assert read(target / relpath) == data, relpath


def _damaged_by_threads_and_workers(tmp_path, point, tree, tasks, name):
    """The restore's result by threads only, then with the workers (reading the pack files)."""
    by_threads = Restorer(point.repo, tree, str(tmp_path / "threads"), threads=2, processes=0).run()
    assert tasks == []
    by_workers = Restorer(point.repo, tree, str(tmp_path / "workers"), threads=2, processes=2).run()
    path = os.path.join(str(tmp_path / "vault"), name)
    assert any(pack is not None and pack[0] == path for _, _, pack, _ in tasks)  # a worker met the pack
    return by_threads, by_workers


def test_a_pack_file_gone_is_damage_named_as_the_threads_name_it(tmp_path, tasks):
    """A pack file deleted from the vault's folder: the worker that was to read it names
    its files damaged with the threads' words, and the other files are restored."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    tree = point.tree()
    entry = point.repo.lookup(tree.lookup("s3/f008").chunks[0])
    name = pack_name(entry.pack_id)
    point.repo.store.delete(name)
    lost = {p for p in point.content if point.repo.lookup(tree.lookup(p).chunks[0]).pack_id == entry.pack_id}
    by_threads, by_workers = _damaged_by_threads_and_workers(tmp_path, point, tree, tasks, name)
    assert set(by_workers.damaged) == set(by_threads.damaged) == lost
    assert sorted(by_workers.errors) == sorted(by_threads.errors)
    assert all("pack is missing from storage" in error for error in by_workers.errors)
    for relpath, data in point.content.items():
        assert (tmp_path / "workers" / relpath).exists() == (relpath not in lost), relpath
        if relpath not in lost:
            assert read(tmp_path / "workers" / relpath) == data, relpath


def test_a_pack_file_cut_short_is_damage_named_as_the_threads_name_it(tmp_path, tasks):
    """A pack file cut in the middle of a blob: that blob and those after it are named
    truncated, as the threads name them, and the blobs before the cut are restored."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    tree = point.tree()
    entry = point.repo.lookup(tree.lookup("s1/f021").chunks[0])
    name = pack_name(entry.pack_id)
    path = os.path.join(str(tmp_path / "vault"), name)
    os.truncate(path, entry.offset + entry.length // 2)
    by_threads, by_workers = _damaged_by_threads_and_workers(tmp_path, point, tree, tasks, name)
    assert "s1/f021" in by_workers.damaged
    assert set(by_workers.damaged) == set(by_threads.damaged)
    assert sorted(by_workers.errors) == sorted(by_threads.errors)
    assert any("truncated" in error for error in by_workers.errors)
    before = [p for p in point.content if point.repo.lookup(tree.lookup(p).chunks[0]).pack_id == entry.pack_id
              and point.repo.lookup(tree.lookup(p).chunks[0]).offset < entry.offset]
    for relpath in before:
        assert read(tmp_path / "workers" / relpath) == point.content[relpath], relpath


def test_a_pack_file_that_cannot_be_read_is_an_oserror(tmp_path):
    """read_pack raises OSError for a file that is there but cannot be read (the worker
    then hands the pack back to the restore's thread, which reads it through the store)."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 3)
    tree = point.tree()
    entry = point.repo.lookup(tree.lookup("s0/f000").chunks[0])
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(OSError):
        read_pack(str(folder), None, [(entry, entry.offset, [(0, 0)])])
    placed, payload = read_pack(point.repo.pack_file(entry.pack_id), None,
                                [(entry, entry.offset, [(0, 0)])])
    assert placed == [(entry, 0, [(0, 0)])]
    assert bytes(payload) == point.repo.store.get_range(pack_name(entry.pack_id), entry.offset, entry.length)


def test_a_pack_file_a_worker_cannot_read_is_handed_back_and_written_by_a_thread(tmp_path, tasks, monkeypatch):
    """Each worker is told its pack's file is a folder, which it cannot read (EISDIR, not
    a missing file): it hands every pack back alive, and the threads remove what it had
    created and write the packs through the store; every file comes back exactly."""
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    tree = point.tree()
    handed: list[int] = []
    recording = PackWriters.write

    def counting(self, keys, files, blobs, payload, pack_file=None):
        answer = recording(self, keys, files, blobs, payload, pack_file)
        if answer is None and len(self.pids) == 2:
            handed.append(len(files))
        return answer

    monkeypatch.setattr(PackWriters, "write", counting)
    monkeypatch.setattr(point.repo, "pack_file", lambda pack_id: str(tmp_path))
    target = tmp_path / "t"
    result = Restorer(point.repo, tree, str(target), threads=2, processes=2).run()
    assert result.errors == () and result.damaged == () and result.warnings == ()
    assert handed and tasks == []  # handed back by live workers; none written by one
    for relpath, data in point.content.items():
        assert read(target / relpath) == data, relpath


def test_after_a_command_interrupted_in_this_process_handed_back_packs_are_still_written(tmp_path, tasks,
                                                                                       monkeypatch):
    """Ctrl-C stops a command run in this process (its children ended); a restore after
    it whose workers hand their packs back has its threads write them, as ever: no pack is
    taken for one of the stopped job and left out, and every file comes back exactly."""
    from strongroom import processes
    from strongroom.cli import interrupts_end_jobs

    with interrupts_end_jobs(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):  # the handler runs between instructions of the main thread
            pass
    point = LocalPoint(tmp_path / "vault")
    _small_files(point, 40)
    monkeypatch.setattr(point.repo, "pack_file", lambda pack_id: str(tmp_path))  # the workers hand packs back
    target = tmp_path / "t"
    result = Restorer(point.repo, point.tree(), str(target), threads=2, processes=2).run()
    assert result.errors == () and result.damaged == ()
    for relpath, data in point.content.items():
        assert read(target / relpath) == data, relpath
    assert not processes.children_ended()
