"""A vault on storage that cannot be written (a read-only bind mount; the same under an
SFTP server) is still restored from, browsed, verified and listed: the job records go to
this machine's ``$STRONGROOM_HOME/jobs/<vault-id>/``, one ``note:`` line says so, and
``strongroom jobs`` shows them with a ``*``."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from strongroom.testing import assert_same_tree, tree_digest
from strongroom.vault import Vault
from vaultkit import run_strongroom


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only in place (a read-only bind mount of itself), for the test."""
    mounted: list[str] = []

    def make(folder: str) -> None:
        if subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode:
            pytest.skip("needs mount --bind (root)")
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True, capture_output=True)
        with pytest.raises(OSError):
            open(os.path.join(folder, "probe"), "w")

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", folder], check=True)


@pytest.fixture
def sample(tmp_path):
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_text("alpha\n" * 100)
    (source / "b.bin").write_bytes(os.urandom(70_000))
    return source


def _notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note:")]


def _check_read_only_vault(url: str, source, tmp_path, env: dict) -> None:
    """Every reading command succeeds; the job-running ones print one note; jobs lists them locally."""
    def cli(*args: str):
        return run_strongroom("--vault", url, *args, env=env)

    points = cli("points", "--json")
    assert points.returncode == 0, points.stderr
    (point,) = json.loads(points.stdout)
    browse = cli("browse", "data")
    assert browse.returncode == 0 and _notes(browse.stderr) == [], browse.stderr
    target = tmp_path / "out"
    restore = cli("restore", "data", "--target", str(target))
    assert restore.returncode == 0, restore.stderr
    assert_same_tree(tree_digest(source), os.path.join(target, str(source).lstrip("/")))
    (note,) = _notes(restore.stderr)
    assert "cannot be written" in note and "recorded on this machine only" in note
    verify = cli("vault", "verify", "--read-data")
    assert verify.returncode == 0, verify.stderr
    assert len(_notes(verify.stderr)) == 1

    jobs = json.loads(cli("jobs", "--json").stdout)
    assert [(j["type"], j["state"], j["local"]) for j in jobs] == [
        ("backup", "completed", False), ("restore", "completed", True), ("verify", "completed", True)]
    assert jobs[1]["point"] == point["point_id"]
    table = cli("jobs")
    rows = table.stdout.splitlines()[1:]
    assert [row.split()[0].endswith("*") for row in rows] == [False, True, True]
    assert "recorded on this machine only" in table.stderr


class TestReadOnlyVault:
    def test_local_vault_on_a_read_only_mount(self, vault_url, sample, read_only, tmp_path, strongroom_home):
        """points, browse, restore, verify --read-data and jobs work on a read-only mount."""
        vault = Vault.create(vault_url, name="ro")
        vault.protect("files", "data", {"paths": [str(sample)]})
        vault.backup("data")
        read_only(vault_url)
        _check_read_only_vault(vault_url, sample, tmp_path, {})
        kept = list((strongroom_home / "jobs" / vault.vault_id).glob("*/*.json"))
        assert len(kept) == 4  # start and end of the restore and of the verify
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept)

    def test_a_backup_to_a_read_only_vault_fails_with_its_job_kept_here(self, vault_url, sample, read_only):
        """A backup still fails (exit 20, one error line) and its failed job is kept on this machine."""
        vault = Vault.create(vault_url, name="ro")
        vault.protect("files", "data", {"paths": [str(sample)]})
        read_only(vault_url)
        done = run_strongroom("--vault", vault_url, "backup", "data")
        assert done.returncode == 20
        assert [line for line in done.stderr.splitlines() if line.startswith("strongroom: error:")] != []
        assert len(_notes(done.stderr)) == 1
        (job,) = Vault.open(vault_url).jobs.list()
        assert (job.type, job.state, job.local) == ("backup", "failed", True)

    def test_sftp_vault_on_a_read_only_mount(self, strongroom_sftp_location, sample, read_only, tmp_path):
        """The same over SFTP: the server's folder is read-only, the client is told so by the server."""
        location = strongroom_sftp_location
        options = dict(location.storage_options)
        vault = Vault.create(location.url, name="ro", storage_options=options)
        vault.protect("files", "data", {"paths": [str(sample)]})
        vault.backup("data")
        read_only("/" + location.url.split("127.0.0.1:", 1)[1].partition("/")[2])  # the server's own folder
        _check_read_only_vault(location.url, sample, tmp_path, location.env())
