"""`strongroom drill`: a point restored into a scratch folder, checked against the point,
the folder removed, a `drill` job with its report; a damaged pack fails the drill."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository.pack import pack_name
from strongroom.services.drill import DrillService
from strongroom.testing import Cli
from strongroom.vault import Vault
from strongroom.workload import DrillResult, Workload, compare_restored

REPORT_KEYS = {"item", "point", "workload", "method", "files", "bytes", "mismatches", "seconds", "scratch",
               "scratch_removed", "source", "ok"}


def make_source(root: Path) -> Path:
    """A file of several chunks, a few small ones in a folder, a symbolic link."""
    rng = random.Random(15)
    (root / "docs").mkdir(parents=True)
    (root / "big.bin").write_bytes(rng.randbytes(3 * (1 << 20) + 777))
    for i in range(4):
        (root / "docs" / f"note-{i}.txt").write_text(f"note {i}\n" * (20 + 30 * i))
    (root / "docs" / "latest").symlink_to("note-3.txt")
    return root


def point_path(path: Path) -> str:
    return str(path).lstrip("/")


def damage_chunk(vault_url: str, vault: Vault, path: str) -> str:
    """Flip bytes in the middle of the first chunk of ``path`` in its pack file under data/;
    the pack's storage name."""
    fresh = vault.reopen()
    fresh.index.load()
    blob = fresh.point_view("data").lookup(path).chunks[0]
    entry = fresh.repo.index.lookup(blob)
    name = pack_name(entry.pack_id)
    pack = Path(vault_url) / name
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    middle = entry.offset + entry.length // 2
    data[middle:middle + 4] = bytes(b ^ 0xA5 for b in data[middle:middle + 4])
    pack.write_bytes(bytes(data))
    return name


@pytest.fixture
def backed_up(tmp_path, vault_url):
    """A vault with item 'data' (files) backed up once, and an empty scratch root."""
    source = make_source(tmp_path / "src")
    vault = Vault.create(vault_url, name="drills")
    vault.protect("files", "data", {"paths": [str(source)]})
    point = vault.backup("data")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return vault, source, point, scratch


def drill_jobs(vault_url: str) -> list[dict]:
    return json.loads(Cli(vault_url)("jobs", "--type", "drill", "--json").stdout)


class TestGoodPoint:
    def test_drill_passes_checks_every_file_and_removes_the_scratch_folder(self, backed_up):
        """Every file is restored and compared (count and bytes as in the source), and the scratch folder is gone."""
        vault, source, point, scratch = backed_up
        report = vault.drill("data", scratch_root=str(scratch))
        files = [p for p in source.rglob("*") if p.is_file() and not p.is_symlink()]
        assert report.ok and report.mismatches == ()
        assert (report.item, report.point, report.workload) == ("data", point.point_id, "files")
        assert report.files == len(files) == 5
        assert report.bytes == sum(p.stat().st_size for p in files)
        assert report.scratch_removed and not os.path.exists(report.scratch)
        assert Path(report.scratch).parent == scratch and list(scratch.iterdir()) == []

    def test_progress_is_reported_while_the_point_is_restored(self, backed_up):
        """The progress callback sees the restore into the scratch folder, up to every byte of the point."""
        vault, source, _, scratch = backed_up
        seen = []
        vault.drill("data", scratch_root=str(scratch), progress=lambda stats: seen.append(stats.bytes_written))
        assert seen and max(seen) == sum(p.stat().st_size for p in source.rglob("*") if p.is_file()
                                         and not p.is_symlink())

    def test_the_job_records_the_report(self, backed_up, vault_url):
        """`jobs --json` shows a completed drill job of the item and point, with the report in its details."""
        vault, _, point, scratch = backed_up
        Cli(vault_url)("drill", "data", "--scratch", str(scratch))
        [job] = drill_jobs(vault_url)
        assert (job["type"], job["item"], job["state"], job["point"]) == ("drill", "data", "completed", point.point_id)
        report = job["details"]["report"]
        assert set(report) == REPORT_KEYS
        assert report["files"] == 5 and report["mismatches"] == [] and report["scratch_removed"] is True
        assert job["bytes"] == report["bytes"] > 3 << 20

    def test_json_shape(self, backed_up, vault_url):
        """`drill --json` prints the report: its keys, the point drilled, ok and the scratch removed."""
        _, _, point, scratch = backed_up
        doc = json.loads(Cli(vault_url)("drill", "data", "--json", "--scratch", str(scratch)).stdout)
        assert set(doc) == REPORT_KEYS | {"schema"} and doc["schema"] == 1  # docs/json.md
        assert doc["ok"] is True and doc["point"] == point.point_id and doc["source"] == "primary"
        assert doc["scratch_removed"] is True and not os.path.exists(doc["scratch"])
        assert "SHA-256" in doc["method"] and "file-level check only" not in doc["method"]

    def test_point_option_drills_an_older_point(self, backed_up, vault_url):
        """--point drills the point it names, not the latest."""
        vault, source, first, scratch = backed_up
        (source / "docs" / "note-0.txt").write_text("changed\n")
        second = vault.backup("data")
        assert second.point_id != first.point_id
        doc = json.loads(Cli(vault_url)("drill", "data", "--point", first.short_id, "--json").stdout)
        assert doc["point"] == first.point_id and doc["ok"] is True

    def test_human_output_says_passed(self, backed_up, vault_url):
        """Without --json one line says the drill passed, how many files, and that the scratch folder was removed."""
        _, _, point, scratch = backed_up
        out = Cli(vault_url)("drill", "data", "--scratch", str(scratch)).stdout
        assert f"data@{point.short_id}" in out and "passed; 5 files" in out and "removed: yes" in out


class TestDamagedPack:
    def test_a_damaged_pack_fails_the_drill_naming_the_file(self, backed_up, vault_url):
        """Bytes flipped in a pack: exit 50, one error line naming the damaged file, the scratch folder removed."""
        vault, source, _, scratch = backed_up
        big = point_path(source / "big.bin")
        damage_chunk(vault_url, vault, big)
        res = Cli(vault_url)("drill", "data", "--scratch", str(scratch), expect=50)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), res.stderr
        assert "restore drill: 1 mismatch(es)" in lines[0] and big in lines[0]
        assert "Traceback" not in res.output
        assert list(scratch.iterdir()) == []

    def test_the_failed_job_keeps_the_report_and_raises_a_drill_failed_alert(self, backed_up, vault_url):
        """The drill job ends failed with the mismatch in its report and problems, and a drill.failed alert names it."""
        vault, source, _, scratch = backed_up
        big = point_path(source / "big.bin")
        pack = damage_chunk(vault_url, vault, big)
        doc = json.loads(Cli(vault_url)("drill", "data", "--json", "--scratch", str(scratch), expect=50).stdout)
        assert doc["ok"] is False and doc["scratch_removed"] is True
        [mismatch] = doc["mismatches"]
        assert mismatch.startswith(f"{big}: ") and pack in mismatch
        [job] = drill_jobs(vault_url)
        assert job["state"] == "failed" and big in job["error"]
        assert job["details"]["report"]["mismatches"] == [mismatch]
        assert job["details"]["problems"] == [mismatch]
        alerts = [a for a in vault.reopen().alerts.list() if a.kind == "drill.failed"]
        assert len(alerts) == 1 and alerts[0].item == "data" and big in alerts[0].summary

    def test_the_other_files_are_still_checked(self, backed_up, vault_url):
        """Only the damaged file is a mismatch: the four others are compared and pass."""
        vault, source, _, scratch = backed_up
        damage_chunk(vault_url, vault, point_path(source / "big.bin"))
        with pytest.raises(IntegrityError) as caught:
            vault.reopen().drill("data", scratch_root=str(scratch))
        report = caught.value.report
        assert len(report.mismatches) == 1 and report.files == 4
        assert report.bytes == sum((source / "docs" / f"note-{i}.txt").stat().st_size for i in range(4))


class TestCompareRestored:
    def test_every_kind_of_difference_is_named_by_its_path(self, backed_up, tmp_path):
        """A file missing, one of another size, one of the same size with other bytes, a link pointing elsewhere:
        each is one mismatch naming its point path; what is unchanged passes."""
        vault, source, _, _ = backed_up
        ctx = vault.point_view("data")
        out = tmp_path / "out"
        restored = ctx.restore_paths(str(out))
        assert compare_restored(ctx, str(out), restored).mismatches == ()
        base, top = out / point_path(source), point_path(source)
        (base / "big.bin").unlink()
        (base / "docs" / "note-1.txt").write_text("short")
        note = base / "docs" / "note-0.txt"
        data = note.read_bytes()
        note.write_bytes(bytes([data[0] ^ 1]) + data[1:])
        (base / "docs" / "latest").unlink()
        (base / "docs" / "latest").symlink_to("note-0.txt")
        found = compare_restored(ctx, str(out), restored)
        named = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in found.mismatches}
        assert set(named) == {f"{top}/big.bin", f"{top}/docs/note-1.txt", f"{top}/docs/note-0.txt",
                              f"{top}/docs/latest"}
        assert named[f"{top}/big.bin"].startswith("not restored")
        assert named[f"{top}/docs/note-1.txt"].startswith("5 bytes restored, the point holds")
        assert named[f"{top}/docs/note-0.txt"].startswith("content differs from the point")
        assert named[f"{top}/docs/latest"] == "symbolic link not restored as 'note-3.txt'"
        assert found.files == 5 and found.bytes == sum(
            (source / "docs" / f"note-{i}.txt").stat().st_size for i in (2, 3))


class Wrecker(Workload):
    """A workload whose drill writes a read-only tree into the scratch folder and then fails."""

    name = "wrecker"

    def drill(self, ctx, scratch):
        folder = Path(scratch) / "locked"
        folder.mkdir()
        (folder / "file").write_text("x")
        folder.chmod(0o500)
        raise RuntimeError("the drill broke")


class Custom(Workload):
    """A workload that drills its own way and reports one mismatch."""

    name = "custom"

    def drill(self, ctx, scratch):
        return DrillResult(files=7, bytes=70, mismatches=["table t: 3 rows, the dump says 4"], method="own way")


class Plain(Workload):
    """A workload without a drill of its own."""

    name = "plain"


class TestWorkloadHook:
    def test_a_workload_without_its_own_drill_gets_the_file_level_check_and_the_report_says_so(self, backed_up):
        """The default drill restores and compares the files, and the method names it a file-level check only."""
        vault, _, _, scratch = backed_up
        report = DrillService(vault.point_view, vault.jobs, lambda name: Plain(), str(scratch)).drill("data")
        assert report.ok and report.files == 5 and report.workload == "plain"
        assert "a file-level check only: the plain workload has no drill of its own" in report.method

    def test_the_workloads_own_drill_is_used(self, backed_up):
        """The service hands the point and the scratch folder to the workload's drill and reports what it returns."""
        vault, _, _, scratch = backed_up
        service = DrillService(vault.point_view, vault.jobs, lambda name: Custom(), str(scratch))
        with pytest.raises(IntegrityError, match="3 rows, the dump says 4") as caught:
            service.drill("data")
        report = caught.value.report
        assert (report.workload, report.method, report.files, report.bytes) == ("custom", "own way", 7, 70)
        assert report.scratch_removed and list(scratch.iterdir()) == []

    def test_the_scratch_folder_is_removed_when_the_drill_raises(self, backed_up):
        """A drill that raises still leaves no scratch folder (read-only entries included), and its job fails."""
        vault, _, _, scratch = backed_up
        service = DrillService(vault.point_view, vault.jobs, lambda name: Wrecker(), str(scratch))
        with pytest.raises(RuntimeError):
            service.drill("data")
        assert list(scratch.iterdir()) == []
        [job] = [j for j in vault.jobs.list(type_="drill")]
        assert job.state == "failed" and "the drill broke" in job.error


class TestFromSecondary:
    def test_a_drill_reads_the_geo_secondary_with_the_primary_gone(self, tmp_path):
        """--from-secondary drills the replicated point from the secondary (the primary's folder moved away):
        it passes and the report says the secondary was read."""
        primary, secondary = str(tmp_path / "primary"), str(tmp_path / "secondary")
        source = make_source(tmp_path / "src")
        Cli(None)("vault", "create", primary, "--name", "geo", "--redundancy", "geo", "--secondary", secondary)
        cli = Cli(primary)
        cli("protect", "files", "data", "--path", str(source))
        cli("backup", "data")
        cli("vault", "replicate", "--wait")
        point = Vault.open(primary).point("data")
        os.rename(primary, str(tmp_path / "primary-gone"))
        doc = json.loads(cli("drill", "data", "--from-secondary", "--json").stdout)
        assert doc["ok"] is True and doc["source"] == "secondary"
        assert doc["point"] == point.point_id and doc["files"] == 5
        assert doc["scratch_removed"] is True
