"""The comparison benchmark (``python -m bench``) runs end to end in its quick mode.

It needs restic and BorgBackup (``scripts/apt/bench.txt``); the benchmark installs them
itself when run as root.  Only the shape of the results is checked, never a timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.compare import _Timer
from bench.measure import Measurement
from bench.pagecache import evict, resident_pages
from bench.tools import make_session

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("strongroom", "restic", "borg")
OPERATIONS = ("first backup", "unchanged backup", "backup after mutation", "full restore",
              "single-file restore", "verify (read all data)")
SCALE_OPERATIONS = ("first backup", "unchanged backup")


def _tools_available() -> bool:
    """restic and borg are installed, or the benchmark can install them (root with apt-get)."""
    installed = all(shutil.which(tool) for tool in ("restic", "borg"))
    return installed or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    """One ``python -m bench --quick`` run: the process and the results file's text."""
    tmp = tmp_path_factory.mktemp("bench")
    output = tmp / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--work", str(tmp / "w"), "--corpus",
         str(tmp / "corpus"), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc, output.read_text() if output.exists() else ""


@pytest.mark.slow
@pytest.mark.skipif(not _tools_available(),
                    reason="restic and borg are not installed and cannot be (not root, or no apt-get): "
                           "apt-get install restic borgbackup (scripts/apt/bench.txt)")
class TestQuickBench:
    def test_exits_with_zero(self, results):
        """The quick run finishes without error and writes the results file."""
        proc, text = results
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert text.startswith("# strongroom, restic and BorgBackup")

    @pytest.mark.parametrize("tool", TOOLS)
    def test_every_operation_of_every_tool_is_reported(self, results, tool):
        """Each tool has a row for each corpus operation and, in the appendix, each scale operation."""
        _, text = results
        for label in OPERATIONS:
            assert f"| {label} | {tool} |" in text, f"no row for {tool} {label}"
        for label in SCALE_OPERATIONS:
            assert f"| {tool} | scale: {label} |" in text, f"no scale row for {tool} {label}"

    def test_the_results_say_where_the_restores_wrote(self, results):
        """The method names the restores' file system: their own (as root, where a loop
        device can be had) or the work folder, with why."""
        _, text = results
        assert "Restores write onto a file system of their own, made fresh for this benchmark: ext4 with a journal" \
            in text or "Restores write onto the work folder, " in text

    def test_targets_table_is_present(self, results):
        """The targets section has its table, with the index and start-up targets measured."""
        _, text = results
        assert "## Targets" in text and "| target | measured | result |" in text
        targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
        assert "| index < 64 B per chunk |" in targets
        assert "| CLI start-up (`strongroom --help`) < 0.3 s |" in targets


def _cached_file(path: Path, size: int = 1 << 20) -> Path:
    """A file of ``size`` bytes written through the page cache and not synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _why_no_page_cache(folder: Path) -> str | None:
    """Why files written in ``folder`` cannot be dropped from the page cache, or None: a
    filesystem held in memory (nothing to drop), or one whose files' pages the page cache
    does not hold (FUSE with direct I/O, some network filesystems)."""
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(folder)], capture_output=True, text=True).stdout.strip()
    if kind in ("tmpfs", "ramfs"):
        return f"{folder} is on {kind}, which holds files in memory: there is no page cache to drop them from"
    if not resident_pages(str(_cached_file(folder / "probe", 4096)))[0]:
        return f"{folder} is on {kind or 'a filesystem'} whose files' pages the page cache does not hold"
    return None


class TestColdRepositories:
    @pytest.fixture(autouse=True)
    def _needs_a_page_cache(self, tmp_path):
        why = _why_no_page_cache(tmp_path)
        if why:
            pytest.skip(why)

    def test_evict_drops_every_file_of_a_tree_even_unsynced(self, tmp_path):
        """Files just written (dirty pages) under nested folders are no longer in the page cache."""
        files = [_cached_file(tmp_path / "repo" / rel) for rel in ("a", "data/00/b", "data/ff/c/d")]
        assert all(resident_pages(str(f))[0] > 0 for f in files)
        assert evict(str(tmp_path / "repo")) == 3
        assert [resident_pages(str(f))[0] for f in files] == [0, 0, 0]

    def test_reads_start_with_the_repository_out_of_the_cache_and_backups_do_not(self, tmp_path):
        """The timer drops the repository before a restore and a verify, and leaves it before a backup."""
        session = make_session("restic", str(tmp_path / "home"), str(tmp_path / "src"))
        pack = Path(session.repo) / "data" / "pack"
        seen = {}

        class Recorder:
            def run(self, argv, env, log, cwd=None):
                seen[argv[0]] = resident_pages(str(pack))[0]
                return Measurement(0.0, 0.0, 0)

        for cold in (True, False):
            timer = _Timer(Recorder(), session, "t", 1, 1, str(tmp_path / "logs"), cold)
            for op in ("first", "restore", "verify"):
                _cached_file(pack)
                timer.timed(op, [f"{op}-{cold}"])
        assert seen["first-True"] > 0 and seen["first-False"] > 0
        assert seen["restore-True"] == seen["verify-True"] == 0
        assert seen["restore-False"] > 0 and seen["verify-False"] > 0


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,discard
30 22 0:5 / /srv/back\\040up rw,relatime - xfs /dev/sdb1 rw
31 22 0:6 / /srv rw,relatime - tmpfs tmpfs rw
40 22 0:7 / /srv rw,relatime - nfs server:/export rw
"""


class TestMachineDescription:
    def test_names_the_file_system_a_folder_is_on(self, tmp_path):
        """The type and mount point are those ``findmnt`` gives for the folder."""
        from bench.machine import describe_file_system, describe_machine

        found = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,TARGET", "--target", str(tmp_path)],
                               capture_output=True, text=True)
        if found.returncode != 0:
            pytest.skip("no findmnt here")
        fstype, target = found.stdout.split(None, 1)
        text = describe_file_system(str(tmp_path))
        assert text.startswith(fstype) and text.endswith(f" at {target.strip()})")
        assert describe_machine(str(tmp_path)).endswith(f"; the work folder on {text}")

    def test_the_innermost_and_latest_mount_counts(self):
        """A path is on the longest mount point holding it, the later of two at one point;
        escaped spaces are decoded."""
        from bench.machine import describe_file_system

        assert describe_file_system("/srv/back up/x", MOUNTINFO) == "xfs (/dev/sdb1 at /srv/back up)"
        assert describe_file_system("/srv/other", MOUNTINFO) == "nfs (server:/export at /srv)"
        assert describe_file_system("/srvx", MOUNTINFO).endswith("(/dev/sda1 at /)")

    def test_an_ext4_says_whether_it_has_a_journal(self, tmp_path, monkeypatch):
        """``/proc/fs/jbd2`` lists a folder per journal, named after its device (here a
        folder laid out the same way)."""
        import bench.machine as machine

        monkeypatch.setattr(machine, "JOURNALS", str(tmp_path))
        (tmp_path / "sda1-8").mkdir()
        assert machine.describe_file_system("/home", MOUNTINFO) == "ext4 with a journal (/dev/sda1 at /)"
        (tmp_path / "sda1-8").rename(tmp_path / "vdb-8")
        assert machine.describe_file_system("/home", MOUNTINFO) == "ext4 without a journal (/dev/sda1 at /)"


class TestRestoreFileSystem:
    def test_a_fresh_ext4_with_a_journal_is_made_and_taken_away(self, tmp_path):
        """As root, the restores' own file system is an empty ext4 with a journal mounted
        in the work folder, written to like any folder; at the end it is unmounted and its
        image removed.  Elsewhere it says why it could not be made."""
        from bench.machine import describe_file_system
        from bench.restorefs import RestoreFileSystem

        fs = RestoreFileSystem(str(tmp_path), 256 << 20)
        with fs as folder:
            if folder is None:
                assert fs.why_not
                pytest.skip(f"no file system of their own here: {fs.why_not}")
            assert describe_file_system(folder).startswith("ext4 with a journal (/dev/loop")
            assert describe_file_system(folder).endswith(f" at {folder})")
            assert sorted(os.listdir(folder)) == ["lost+found"]
            with open(os.path.join(folder, "f"), "wb") as f:
                f.write(b"x" * 4096)
        assert not os.path.exists(fs.folder) and not os.path.exists(fs.image)
        with open("/proc/self/mountinfo") as f:
            assert f" {fs.folder} " not in f.read()
