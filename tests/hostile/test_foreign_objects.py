"""Foreign objects are classified, never fatal; replaced packs are found by plain verify
(issue 21, findings 1 and, from 7, "plain vault verify compares pack names only").

Whoever can write to a vault's storage without the key - a sync tool dropping
``desktop.ini``, a conflicted copy, another program - can put objects there whose names
are not the vault's.  One such file under ``data/`` made every backup and verify exit 99.
Now every lister leaves them out: backup, restore, verify, prune, items, jobs and
schedules work; verify names each one as a note (20 at most, then a count); a backup
warns once, with their count; nothing reads, changes or deletes them.

A pack whose bytes were swapped with another pack's, replaced by another vault's pack,
cut or grown passed plain ``vault verify`` (it compared names only): now its trailer is
read and opened, and it is a problem without ``--read-data``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from strongroom.repository.envelope import KIND_DATA
from strongroom.repository.pack import pack_name
from strongroom.vault import Vault
from vaultkit import first_backup

#: The issue's reproduction, and what sync tools and people leave under data/.
UNDER_DATA = [
    "data/zz/notapack",
    "data/ab/desktop.ini",
    "data/ab/desktop (1).ini",  # not even a valid object name: the store's check refuses it
    "data/cd/ab" + "0" * 30,  # a pack id in another pack's folder
    "data/notes.txt",
    "data/ef/ef" + "1" * 30 + "/inside",  # a folder where a pack would be
]


def plant(vault: Path, names: list[str]) -> dict[str, bytes]:
    """Put a small file at each name; returns what was written, by name."""
    planted = {}
    for name in names:
        path = vault / name
        path.parent.mkdir(parents=True, exist_ok=True)
        planted[name] = f"not strongroom's: {name}\n".encode()
        path.write_bytes(planted[name])
    return planted


def assert_untouched(vault: Path, planted: dict[str, bytes]) -> None:
    for name, data in planted.items():
        assert (vault / name).read_bytes() == data, f"{name} was changed or removed"


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path) -> Path:
    root = tmp_path / "src"
    for i in range(4):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"f{i}.txt").write_bytes(f"file {i}\n".encode() * 300)
    return root


@pytest.fixture
def backed_up(cli, source) -> Path:
    """A local vault with item 'data' backed up once."""
    first_backup(cli, source)
    return Path(cli.vault_url)


def ids_of(vault: Path) -> tuple[str, str]:
    item = os.listdir(vault / "items")[0]
    point = os.listdir(vault / "points" / item)[0]
    return item, point


class TestNames:
    def test_every_object_a_vault_writes_is_the_vaults(self, backed_up, cli, tmp_path):
        """Every object of a vault that was backed up, pruned, re-policied and repaired has
        a vault name; the issue's planted names do not."""
        from strongroom.repository.names import is_vault_name

        cli("policy", "create", "nightly", "--daily", "02:00", "--keep-daily", "1")
        cli("protect", "files", "other", "--path", str(tmp_path / "src"), "--policy", "nightly")
        cli("backup", "other")
        cli("run-due")
        cli("prune")
        cli("vault", "repair", "--apply")
        names = [str(p.relative_to(backed_up)) for p in backed_up.rglob("*") if p.is_file()]
        assert {n.split("/")[0] for n in names} >= {"data", "index", "items", "points", "jobs", "settings", "keys"}
        assert [n for n in names if not is_vault_name(n)] == []
        assert [n for n in UNDER_DATA if is_vault_name(n)] == []

    def test_kinds_are_told_apart_by_shape(self):
        """A name of the right prefix but the wrong shape is foreign; quarantine keeps
        only names that are the vault's."""
        from strongroom.repository.names import KINDS, kind_of

        item, time = "0123456789abcdef", "20261121T114713744502Z-c5ed86f7"
        assert kind_of(f"points/{item}/{item}").label == "point header"
        assert kind_of(f"point-status/{item}/{item}/{time}").label == "point status"
        assert kind_of(f"index/{time}").label == "index file"
        assert kind_of(f"quarantine/data/ab/ab{'0' * 30}").label == "quarantined object"
        for foreign in (f"points/{item}", f"points/{item}/{item}/x", f"index/{time}.bak", "index/desktop.ini",
                        f"jobs/{time}", f"runs/{item}/2026/{time}", "quarantine/desktop.ini",
                        "quarantine/quarantine/strongroom.json", "strongroom.json.bak", "Strongroom.json"):
            assert kind_of(foreign) is None, foreign
        assert len({k.prefix for k in KINDS}) == len(KINDS)


class TestForeignObjectsUnderData:
    def test_backup_and_verify_work_and_name_them(self, backed_up, cli, source, tmp_path):
        """With the issue's files under data/, a backup completes with one warning that
        counts them, verify passes and names each as a note, a restore is whole, and the
        files are left as they were (the old code exited 99 on both commands)."""
        planted = plant(backed_up, UNDER_DATA)
        (source / "d0" / "new.txt").write_bytes(b"added later\n")
        point = json.loads(cli("backup", "data", "--json", expect=1).stdout)
        foreign = [w for w in point["warnings"] if "foreign object" in w]
        assert len(foreign) == 1 and foreign[0].startswith(f"{len(UNDER_DATA)} foreign object(s)"), point["warnings"]
        assert len(point["warnings"]) == 1
        report = json.loads(cli("vault", "verify", "--json").stdout)
        assert report["ok"] and report["foreign_objects"] == len(UNDER_DATA)
        noted = [n for n in report["notes"] if "not an object of this vault" in n]
        assert sorted(n.split(": ")[0] for n in noted) == sorted(UNDER_DATA)
        plain = cli("vault", "verify")
        assert "data/ab/desktop (1).ini: not an object of this vault" in plain.stdout
        cli("vault", "verify", "--read-data")
        target = tmp_path / "restored"
        cli("restore", "data", "--target", str(target))
        assert read_tree(target / str(source).lstrip("/")) == read_tree(source)
        assert_untouched(backed_up, planted)

    def test_unindexed_packs_are_still_adopted(self, backed_up, cli, source):
        """A pack no index names (a killed backup's) is adopted beside foreign objects."""
        plant(backed_up, UNDER_DATA)
        for name in os.listdir(backed_up / "index"):
            os.unlink(backed_up / "index" / name)
        (source / "d1" / "more.txt").write_bytes(b"more\n")
        point = json.loads(cli("backup", "data", "--json", expect=1).stdout)
        assert point["stats"]["packs_adopted"] >= 1
        cli("vault", "verify", "--read-data")


class TestForeignObjectsElsewhere:
    @pytest.fixture
    def planted(self, backed_up, cli) -> dict[str, bytes]:
        item, point = ids_of(backed_up)
        cli("policy", "create", "nightly", "--daily", "02:00", "--keep-daily", "3")
        cli("protect", "files", "other", "--path", str(backed_up.parent / "src"), "--policy", "nightly")
        return plant(backed_up, [
            "README.txt", ".DS_Store", "strongroom.json.bak",
            "index/desktop.ini", "index/20261204T173130502576Z-510374a3 (conflicted copy)",
            f"items/{item}/Thumbs.db", f"items/{item}.bak",
            f"points/{item}/{point}.conflict", "points/desktop.ini", f"points/{item}/x/y",
            f"point-status/{item}/{point}/copy of status", "point-status/desktop.ini",
            "settings/desktop.ini", "jobs/old jobs.zip", f"jobs/{item}/notes",
            "policies/nightly/readme", "policies/desktop.ini",
            f"runs/{item}/notes", "runs/prune/20260101T020000Z/x", "prune/desktop.ini",
            "leases/stale.lock", "quarantine/desktop.ini",
        ])

    def test_every_command_works_and_leaves_them_alone(self, backed_up, cli, planted, source, tmp_path):
        """points, items, jobs, policies, schedule, backup, restore, prune, run-due and
        verify all work beside foreign objects under every prefix; verify names every one;
        none is changed or deleted, not even by prune."""
        assert "data" in cli("points").stdout
        assert "data" in cli("items").stdout
        assert json.loads(cli("jobs", "--json").stdout)
        assert "nightly" in cli("policy", "list").stdout
        cli("schedule")
        point = json.loads(cli("backup", "data", "--json", expect=1).stdout)
        assert len([w for w in point["warnings"] if "foreign object" in w]) == 1, point["warnings"]
        cli("restore", "data", "--target", str(tmp_path / "out"))
        cli("prune")
        cli("run-due")
        report = json.loads(cli("vault", "verify", "--json").stdout)
        assert report["ok"], report["problems"]
        assert report["foreign_objects"] == len(planted)
        assert_untouched(backed_up, planted)

    def test_many_foreign_objects_are_counted_after_twenty(self, backed_up, cli):
        """Verify names the first 20 foreign objects and counts the rest in one note."""
        plant(backed_up, [f"data/zz/junk{i:02d}" for i in range(45)])
        notes = json.loads(cli("vault", "verify", "--json").stdout)["notes"]
        named = [n for n in notes if "not an object of this vault" in n]
        assert len(named) == 20 and named[0].startswith("data/zz/junk00:")
        assert "... and 25 more foreign object(s), 45 in all" in notes


def data_only_packs(url: str) -> list[str]:
    """The packs that hold file data only (no tree), so the structure check cannot
    notice that they are wrong."""
    vault = Vault.open(url)
    vault.index.load()
    by_pack = vault.repo.index.entries_by_pack()
    return sorted(p for p, entries in by_pack.items() if all(e.kind == KIND_DATA for e in entries))


class TestReplacedPacks:
    @pytest.fixture
    def big(self, cli, tmp_path) -> tuple[Path, list[str]]:
        """A vault whose backup of two 12 MiB random files filled several data-only packs."""
        source = tmp_path / "big"
        source.mkdir()
        for i in range(2):
            (source / f"r{i}.bin").write_bytes(os.urandom(12 << 20))
        first_backup(cli, source, "big")
        packs = data_only_packs(cli.vault_url)
        assert len(packs) >= 2
        return Path(cli.vault_url), packs

    @pytest.mark.parametrize("how", ["swapped", "another vault's", "cut", "grown"])
    def test_plain_verify_finds_them(self, big, cli, tmp_path, how):
        """A data pack swapped with another, replaced by another vault's pack, cut by a
        byte or grown by one is a problem for plain verify, named by its pack (the old
        code compared names only and passed)."""
        vault, packs = big
        first, second = (vault / pack_name(p) for p in packs[:2])
        if how == "swapped":
            a, b = first.read_bytes(), second.read_bytes()
            first.write_bytes(b)
            second.write_bytes(a)
            hit = [packs[0], packs[1]]
        elif how == "another vault's":
            shutil.copyfile(_a_pack_of_another_vault(tmp_path), first)
            hit = [packs[0]]
        elif how == "cut":
            os.truncate(first, first.stat().st_size - 1)
            hit = [packs[0]]
        else:
            with open(first, "ab") as f:
                f.write(b"\0")
            hit = [packs[0]]
        report = json.loads(cli("vault", "verify", "--json", expect=51).stdout)
        assert report["trailers_read"] == report["packs"] and report["packs_read"] == 0
        for pack_id in hit:
            assert any(p.startswith(f"{pack_name(pack_id)}: its trailer does not open") for p in report["problems"]), \
                report["problems"]
        assert len(report["problems"]) == len(hit), report["problems"]

    def test_junk_named_like_a_pack_is_a_problem(self, big, cli):
        """A file of junk under a pack's name that no index names is a problem for plain
        verify (its trailer does not open), not a pack the next backup would adopt (the
        old code only noted it)."""
        vault, _ = big
        junk_id = "cd" + "7" * 30
        (vault / "data" / "cd").mkdir(exist_ok=True)
        (vault / pack_name(junk_id)).write_bytes(os.urandom(5000))
        report = json.loads(cli("vault", "verify", "--json", expect=51).stdout)
        assert [p for p in report["problems"] if p.startswith(pack_name(junk_id))] == report["problems"]
        assert len(report["problems"]) == 1
        assert not any(n.startswith(pack_name(junk_id)) for n in report["notes"]), report["notes"]

    def test_an_intact_vault_passes_and_reads_only_trailers(self, big, cli):
        """Plain verify of an intact vault passes; it reads every trailer, no pack whole."""
        report = json.loads(cli("vault", "verify", "--json").stdout)
        assert report["ok"] and report["trailers_read"] == report["packs"] >= 3 and report["bytes_read"] == 0


def _a_pack_of_another_vault(tmp_path) -> Path:
    """A pack written by a backup into a vault of its own (another key)."""
    from strongroom.testing import Cli

    other = tmp_path / "another-vault"
    src = tmp_path / "another-src"
    src.mkdir()
    (src / "r.bin").write_bytes(os.urandom(1 << 20))
    run = Cli(str(other))
    run("vault", "create", str(other))
    run("protect", "files", "x", "--path", str(src))
    run("backup", "x")
    return next(p for p in (other / "data").rglob("*") if p.is_file())


class TestForeignObjectsAndRepair:
    def test_repair_and_rebuild_index_leave_foreign_index_files_alone(self, backed_up, cli, source, tmp_path):
        """vault repair --apply and rebuild-index work beside foreign objects under index/
        (one of them not even a valid object name), and neither moves nor deletes them."""
        planted = plant(backed_up, ["index/desktop.ini", "index/desktop (1).ini", "index/notes.txt"])
        cli("vault", "repair", "--apply")
        cli("vault", "rebuild-index")
        assert_untouched(backed_up, planted)
        cli("vault", "verify", "--read-data")
        cli("restore", "data", "--target", str(tmp_path / "out"))
        assert read_tree(tmp_path / "out" / str(source).lstrip("/")) == read_tree(source)


class TestLargeIndexWrites:
    def test_many_entries_are_written_as_several_index_files(self, backed_up, monkeypatch, tmp_path):
        """Adopting packs whose entries exceed one index file's share writes several files,
        each readable, and the vault restores from them."""
        import strongroom.repository.repository as repository_module

        vault = Vault.open(str(backed_up))
        for name in list(vault.store.list("index/")):
            vault.store.delete(name)
        monkeypatch.setattr(repository_module, "INDEX_FILE_ENTRIES", 2)
        fresh = Vault.open(str(backed_up))
        fresh.index.load()
        adopted, problems = fresh.repo.adopt_packs(fresh.repo.pack_ids_on_storage())
        assert adopted >= 1 and problems == []
        entries = len(fresh.repo.index)
        assert len(list(fresh.store.list("index/"))) == -(-entries // 2)
        again = Vault.open(str(backed_up))
        again.restore("data", None, str(tmp_path / "out"))
