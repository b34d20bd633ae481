"""Documents, index files and packs read whole are bounded before they are read (issue 21,
finding 2 but for pack trailers).

A fake index file or settings document of 1 GiB took a command to 1,076 MiB: the whole
object was read, and (with a plausible envelope header) decrypted, before anything was
authenticated.  Now each kind of object has a largest size (``repository/names.py``), an
object is asked for with one ranged read of at most 16 MiB and a byte, and only a larger
one of a kind that may be larger has its size asked for: a planted giant is an integrity
error naming it, skipped where the vault can do without it, and costs no allocation of
its size.  Each command runs as a child process whose own peak RSS is read with
``os.wait4``; the bound asserted is a generous 200 MB (a command needs about 90 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

GIB = 1 << 30
MIB = 1 << 20
RSS_BOUND = 200 * MIB
LATER = "20991231T235959999999Z-ffffffff"  # a time id after every real one: the newest version


#: Runs argv[2:] and writes its exit code and peak RSS (KiB) to argv[1].  On Linux a child
#: spawned by this test process starts with the test process's own peak RSS as its
#: ru_maxrss, so a small Python starts the command and reads the command's alone.
_MEASURE = ("import os, subprocess, sys\n"
            "proc = subprocess.Popen(sys.argv[2:])\n"
            "_, status, usage = os.wait4(proc.pid, 0)\n"
            "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n")


def run_measured(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``strongroom ARGS`` in a child process: its result and its own peak RSS in bytes."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    with tempfile.TemporaryDirectory() as tmp:
        out, err, measured = (Path(tmp) / n for n in ("out", "err", "measured"))
        with open(out, "wb") as fo, open(err, "wb") as fe:
            subprocess.run([sys.executable, "-c", _MEASURE, str(measured), exe, *args], stdout=fo, stderr=fe,
                           stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, check=True)
        code, peak = measured.read_text().split()
        return subprocess.CompletedProcess(args, int(code), out.read_text(), err.read_text()), int(peak) * 1024


def plant_giant(vault: Path, name: str, like: Path, size: int = GIB) -> None:
    """A sparse object of ``size`` bytes at ``name`` that starts with the envelope header
    of a real object of its kind (``like``): magic, version, kind, key id, so only
    authentication could refuse it."""
    path = vault / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(like.read_bytes()[:22])
        f.truncate(size)


@pytest.fixture
def vault(cli, tmp_path) -> Path:
    """A local vault with item 'data' backed up once."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        (source / f"f{i}.txt").write_bytes(f"file {i}\n".encode() * 500)
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", "data", "--path", str(source))
    cli("backup", "data")
    return Path(cli.vault_url)


def first(folder: Path) -> Path:
    return next(p for p in sorted(folder.rglob("*")) if p.is_file())


def ids(vault: Path) -> tuple[str, str]:
    item = os.listdir(vault / "items")[0]
    return item, os.listdir(vault / "points" / item)[0]


#: kind -> (where the giant goes, the real object whose header it copies, [(command, exit)]).
#: Restores and backups go on without an object they can do without (a warning, exit 1,
#: where they say so); what cannot be done without it stops with one integrity line (50);
#: verify reports it (51).
CASES = {
    "index file": (lambda v, item, point: f"index/{LATER}", "index",
                   [(("restore", "data", "--target", "{tmp}/out"), 1), (("backup", "data"), 1),
                    (("vault", "verify"), 51), (("prune",), 50)]),
    "settings document": (lambda v, item, point: f"settings/{LATER}", "settings",
                          [(("backup", "data"), 0), (("vault", "verify"), 51)]),
    "point header": (lambda v, item, point: f"points/{item}/ffffffffffffffff", "points",
                     [(("points", "data"), 0), (("backup", "data"), 0), (("vault", "verify"), 51)]),
    "point status": (lambda v, item, point: f"point-status/{item}/{point}/{LATER}", "points",
                     [(("points", "data"), 0), (("vault", "verify"), 51)]),
    "job record": (lambda v, item, point: f"jobs/{LATER}/{LATER}", "jobs", [(("jobs",), 0)]),
    "prune mark": (lambda v, item, point: f"prune/{LATER}/mark", "settings",
                   [(("backup", "data"), 50), (("prune",), 50)]),
}


class TestGiantObjects:
    @pytest.mark.parametrize("kind", sorted(CASES))
    def test_a_1_gib_object_costs_little(self, vault, tmp_path, kind):
        """A planted 1 GiB object of each kind read whole: every command ends as it should
        (skipping it, or with one line naming it), names it, and stays under 200 MB of
        memory (the old code read the whole GiB, and more)."""
        place, like, runs = CASES[kind]
        item, point = ids(vault)
        name = place(vault, item, point)
        plant_giant(vault, name, first(vault / like))
        for args, code in runs:
            args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
            done, peak = run_measured(*args, env={"STRONGROOM_VAULT": str(vault)})
            said = done.stdout + done.stderr
            assert done.returncode == code, f"strongroom {' '.join(args)}: {said}"
            assert "Traceback" not in said and "internal error" not in said
            if code:  # a command that went on without it may say nothing (settings: the one before is used)
                assert name in said, f"strongroom {' '.join(args)} does not name {name}: {said}"
            assert peak < RSS_BOUND, f"strongroom {' '.join(args)} peaked at {peak // MIB} MiB"
            if code == 50:
                assert said.strip().splitlines()[-1].startswith("strongroom: error: Integrity error: " + name)

    def test_a_giant_pack_is_not_read_whole(self, vault, cli):
        """verify --read-data does not read a 1 GiB object named like a pack: it is a
        problem (larger than any pack), named, and the command stays under 200 MB."""
        pack_id = "ab" + "5e" * 15
        plant_giant(vault, f"data/ab/{pack_id}", first(vault / "data"))
        done, peak = run_measured("vault", "verify", "--read-data", "--json", env={"STRONGROOM_VAULT": str(vault)})
        assert done.returncode == 51, done.stderr
        problems = json.loads(done.stdout)["problems"]
        assert any(p.startswith(f"data/ab/{pack_id}: larger than 128 MiB") for p in problems), problems
        assert peak < RSS_BOUND, f"verify --read-data peaked at {peak // MIB} MiB"

    def test_objects_just_within_the_limit_are_read(self, vault, cli):
        """A settings document of exactly 16 MiB is read (and fails authentication, as a
        forgery must); one of a byte more is refused without being read whole."""
        like = first(vault / "settings")
        plant_giant(vault, f"settings/{LATER}", like, 16 * MIB)
        plant_giant(vault, "settings/20991231T235959999998Z-ffffffff", like, 16 * MIB + 1)
        problems = json.loads(cli("vault", "verify", "--json", expect=51).stdout)["problems"]
        assert any(f"settings/{LATER}" in p and "authentication failed" in p for p in problems), problems
        assert any("99998Z-ffffffff" in p and "larger than 16 MiB" in p for p in problems), problems


class CountingStore:
    """A store of objects of given sizes (zeros), counting the requests made."""

    url = "counting:"

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.calls: list[tuple[str, str, int]] = []

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        self.calls.append(("get_range", name, length))
        return bytes(max(0, min(length, self.sizes[name] - offset)))

    def size(self, name: str) -> int:
        self.calls.append(("size", name, 0))
        return self.sizes[name]

    def get(self, name: str) -> bytes:
        self.calls.append(("get", name, 0))
        return bytes(self.sizes[name])

    def list(self, prefix: str = ""):
        return iter(sorted(n for n in self.sizes if n.startswith(prefix)))


class TestReadWhole:
    """How many requests, and how many bytes, reading an object whole costs."""

    def test_the_limits_hold_what_writers_make(self):
        """Every index file, prune mark and pack a writer can make is within its kind's
        limit: the largest sealed index file or document, the largest pack."""
        from strongroom.repository.envelope import KIND_DOCUMENT, KIND_INDEX, max_sealed
        from strongroom.repository.names import LARGE_MAX, PACK_MAX, kind_of
        from strongroom.repository.pack import MAX_PACK_SIZE

        assert LARGE_MAX >= max(max_sealed(KIND_INDEX), max_sealed(KIND_DOCUMENT))
        assert PACK_MAX >= MAX_PACK_SIZE
        assert kind_of(f"index/{LATER}").max_size == kind_of(f"prune/{LATER}/mark").max_size == LARGE_MAX

    @pytest.fixture
    def repo_over(self):
        from strongroom.repository.masterkey import MasterKey
        from strongroom.repository.repository import Repository

        def make(sizes: dict[str, int]):
            store = CountingStore(sizes)
            return Repository(store, MasterKey.generate(), io_threads=1), store

        return make

    def test_the_common_path_is_one_ranged_request(self, repo_over):
        """A document and an index file of ordinary size: one ranged read each, no size request."""
        repo, store = repo_over({f"points/{'1' * 16}/{'2' * 16}": 900, f"index/{LATER}": 5000})
        assert len(repo.read_whole(f"points/{'1' * 16}/{'2' * 16}", "document")) == 900
        assert len(repo.read_whole(f"index/{LATER}", "index file")) == 5000
        assert [c[0] for c in store.calls] == ["get_range", "get_range"]
        assert all(length == 16 * MIB + 1 for _, _, length in store.calls)

    def test_a_large_index_file_costs_a_size_request(self, repo_over):
        """An index file over 16 MiB (a big vault's) is read whole after a size request."""
        repo, store = repo_over({f"index/{LATER}": 40 * MIB})
        assert len(repo.read_whole(f"index/{LATER}", "index file")) == 40 * MIB
        assert [(c[0], c[2]) for c in store.calls] == [("get_range", 16 * MIB + 1), ("size", 0),
                                                      ("get_range", 40 * MIB + 1)]

    def test_a_giant_is_refused_after_its_first_16_mib(self, repo_over):
        """An index file over its limit, and a document over 16 MiB, are refused naming
        them; no read asks for more than 16 MiB and a byte."""
        from strongroom.errors import IntegrityError

        repo, store = repo_over({f"index/{LATER}": 4 * GIB, f"settings/{LATER}": GIB})
        with pytest.raises(IntegrityError, match=f"index/{LATER} is damaged .larger than 257 MiB"):
            repo.read_whole(f"index/{LATER}", "index file")
        with pytest.raises(IntegrityError, match=f"settings/{LATER} is damaged .larger than 16 MiB"):
            repo.get_document(f"settings/{LATER}")
        assert [(c[0], c[2]) for c in store.calls] == [("get_range", 16 * MIB + 1), ("size", 0),
                                                      ("get_range", 16 * MIB + 1)]

    def test_a_foreign_name_is_not_read_at_all(self, repo_over):
        """A name that is not a document's (or not of the kind expected) is refused
        without a request."""
        from strongroom.errors import IntegrityError

        repo, store = repo_over({"points/desktop.ini": 10, f"index/{LATER}": 10, "data/zz/x y": 10})
        for name, expect in (("points/desktop.ini", "document"), (f"index/{LATER}", "document"),
                             ("data/zz/x y", "pack"), (f"index/{LATER}", "pack")):
            with pytest.raises(IntegrityError, match="foreign object"):
                repo.read_whole(name, expect)
        assert store.calls == []


class TestOnS3:
    def test_a_giant_index_file_on_s3_costs_little(self, strongroom_s3_location, tmp_path):
        """On S3, a planted 300 MiB index file is refused after a 16 MiB ranged read and a
        size request: restore warns and restores, verify names it, each under 200 MB
        (the old code fetched all 300 MiB and tried to decrypt it)."""
        from strongroom.storage import open_store
        from strongroom.testing import Cli

        cli = Cli(location=strongroom_s3_location)
        source = tmp_path / "src"
        source.mkdir()
        (source / "a.txt").write_bytes(b"on s3\n" * 1000)
        cli("vault", "create", strongroom_s3_location.url)
        cli("protect", "files", "data", "--path", str(source))
        cli("backup", "data")
        store = open_store(strongroom_s3_location.url, dict(strongroom_s3_location.storage_options))
        real = store.get(min(store.list("index/")))
        name = f"index/{LATER}"
        store.put(name, real[:22] + bytes(300 * MIB))
        env = strongroom_s3_location.env()
        done, peak = run_measured("restore", "data", "--target", str(tmp_path / "out"), env=env)
        assert done.returncode == 1 and name in done.stderr, done.stderr
        assert (tmp_path / "out" / str(source).lstrip("/") / "a.txt").read_bytes() == b"on s3\n" * 1000
        assert peak < RSS_BOUND, f"restore peaked at {peak // MIB} MiB"
        done, peak = run_measured("vault", "verify", env=env)
        assert done.returncode == 51 and name in done.stdout + done.stderr
        assert peak < RSS_BOUND, f"verify peaked at {peak // MIB} MiB"
