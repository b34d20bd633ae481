"""``verify --read-data`` of a local vault reads its packs in forked worker processes
(:mod:`strongroom.engine.packforks`) and finds exactly what reading them in threads finds;
a worker that dies or fails ends the verify with a clear error, never a hang."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from strongroom.engine.packforks import can_fork
from strongroom.errors import IntegrityError, ItemNotFound, StorageError
from strongroom.repository.pack import pack_name
from strongroom.vault import Vault

from repairkit import copies, damage, make_source, two_backups_at_once

MIB = 1 << 20

#: Run in a child process (one thread, as the command line): verify the vault at argv[2]
#: with packs read by processes or threads (argv[1]), optionally with a worker that dies
#: or fails at pack argv[3]; prints the report, the workers' pids and this process's pid.
SCRIPT = r"""
import json, os, signal, sys
import strongroom.engine.packforks as packforks
import strongroom.engine.verify as verify
from strongroom.errors import StorageError, StrongroomError
from strongroom.vault import Vault

mode, url = sys.argv[1], sys.argv[2]
victim = sys.argv[3] if len(sys.argv) > 3 else None
verify.FORK_FROM_BYTES = 0 if mode != "threads" else 1 << 62
pids = []
entered = packforks.PackCheckers.__enter__

def enter(self):
    entered(self)
    pids.extend(self.pids)
    return self

packforks.PackCheckers.__enter__ = enter
checked = packforks.check_pack

def check_pack(repo, pack_id, *args, **kwargs):
    if pack_id == victim and mode == "dies":
        os.kill(os.getpid(), signal.SIGKILL)
    if pack_id == victim and mode == "fails":
        raise StorageError(message=f"reading {pack_id} failed: disk on fire", where="test")
    return checked(repo, pack_id, *args, **kwargs)

packforks.check_pack = check_pack
try:
    report = Vault.open(url).verify(read_data=True, from_secondary=False).to_dict()
except StrongroomError as exc:
    report = {"error": type(exc).__name__, "message": str(exc), "fields": exc.fields, "code": exc.exit_code}
print(json.dumps({"report": report, "pids": pids, "me": os.getpid()}))
"""


def _verify(mode: str, url: str, victim: str | None = None) -> dict:
    argv = [sys.executable, "-c", SCRIPT, mode, url] + ([victim] if victim else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def damaged_vault(tmp_path_factory) -> tuple[str, list[str]]:
    """A local vault of a few packs: extra copies of every blob (two backups at once), one
    blob damaged in its only copy, a pack cut short, a pack deleted; and the ids of its
    packs still on storage."""
    tmp = tmp_path_factory.mktemp("forks")
    home = tmp / "home"
    with pytest.MonkeyPatch.context() as patch:  # the key store of the vault, for this module
        patch.setenv("STRONGROOM_HOME", str(home))
        source = make_source(tmp / "src")
        for i in range(4):
            (source / f"more-{i}.bin").write_bytes(os.urandom(3 * MIB + i))
        url = str(tmp / "vault")
        vault = Vault.create(url, name="forks")
        vault.protect("files", "src", {"paths": [str(source)]})
        two_backups_at_once(url, "src")
        (source / "late.bin").write_bytes(os.urandom(2 * MIB))
        Vault.open(url).backup("src")
        vault = Vault.open(url)
        vault.index.load()
        packs = sorted(vault.repo.pack_ids_on_storage())
        assert len(packs) >= 6, packs
        lone = sorted((c[0] for c in copies(vault).values() if len(c) == 1 and c[0].length > 4096),
                      key=lambda e: (e.pack_id, e.offset))
        victim = lone[0]  # of the last backup: its only copy
        damage(vault.store, victim)
        others = [p for p in packs if p != victim.pack_id]
        cut = Path(url) / pack_name(others[0])
        cut.write_bytes(cut.read_bytes()[:-300])
        os.unlink(Path(url) / pack_name(others[1]))
        yield url, [p for p in packs if p != others[1]]


@pytest.fixture
def home_of(damaged_vault, monkeypatch):
    monkeypatch.setenv("STRONGROOM_HOME", str(Path(damaged_vault[0]).parent / "home"))


def test_processes_find_what_threads_find(damaged_vault, home_of):
    url, _ = damaged_vault
    forked, threaded = _verify("processes", url), _verify("threads", url)
    assert threaded["pids"] == []
    assert len(forked["pids"]) >= 2 and forked["me"] not in forked["pids"]
    assert forked["report"] == threaded["report"]
    report = forked["report"]
    assert not report["ok"]
    text = "\n".join(report["problems"])
    assert "missing from storage" in text  # the deleted pack
    assert "no intact copy" in text  # the damaged blob of the last backup
    assert any("extra copies" in note for note in report["notes"])  # the two backups at once
    assert report["bytes_read"] > 10 * MIB


def test_a_worker_that_dies_ends_the_verify_with_a_storage_error(damaged_vault, home_of):
    url, packs = damaged_vault
    got = _verify("dies", url, packs[-1])
    assert got["report"]["error"] == "StorageError", got
    assert got["report"]["code"] == StorageError.exit_code
    assert "ended abruptly" in got["report"]["message"]


def test_a_worker_error_is_raised_as_it_was(damaged_vault, home_of):
    url, packs = damaged_vault
    got = _verify("fails", url, packs[3])
    assert got["report"]["error"] == "StorageError", got
    assert "disk on fire" in got["report"]["message"]
    assert got["report"]["fields"]["where"] == "test"


def test_no_fork_while_another_thread_runs(vault):
    """A process running other threads (a server) checks packs in threads instead."""
    assert can_fork(vault.repo) is (threading.active_count() == 1)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork(vault.repo)
    finally:
        release.set()
        other.join()


@pytest.mark.parametrize("error", [StorageError(message="gone", where="x"), ItemNotFound(item="web"),
                                   IntegrityError(what="pack p", reason="cut short")])
def test_errors_cross_processes_whole(error):
    """An error pickled in a worker comes back with its class, fields, text and exit code."""
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), back.fields, str(back), back.exit_code) == (type(error), error.fields, str(error),
                                                                   error.exit_code)
