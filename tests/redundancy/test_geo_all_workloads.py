"""End to end on two SeaweedFS servers: a geo vault holding a files, a postgres and a vm item
is replicated, its primary server stopped, and every item lists, restores exactly and
drills from the secondary, through the command line as a user runs it.

The PostgreSQL cluster and the disk-image tools are those of ``tests/postgres`` and
``tests/vm`` (their kits are loaded from there; without PostgreSQL or the tools the
test is skipped, under ``CI`` it fails, as those folders' tests do).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from geokit import geo_pair, start_server, tree_bytes, write_files
from pgcluster import postgres_cluster
from strongroom.policy.redundancy import Redundancy
from strongroom.testing import Cli, unavailable
from strongroom.vault import Vault

TESTS = Path(__file__).resolve().parent.parent
for folder in ("postgres", "vm"):  # their kits (pgshop, vmkit), after everything else on the path
    if str(TESTS / folder) not in sys.path:
        sys.path.append(str(TESTS / folder))

from pgshop import build_shop  # noqa: E402
from vmkit import MIB, TOOLS, ext4_at, make_tree, partition, sha256_file, write_at  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL cluster of the postgres tests' kind, for this module."""
    with postgres_cluster() as running:
        yield running


@pytest.fixture
def disk_image(tmp_path):
    """A 96 MiB GPT disk: p1 an ext4 file system holding a small tree, raw data after it.
    (path, {file in the tree: content})."""
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (Debian package {package}; scripts/setup.sh installs it)")
    try:
        import pytsk3  # noqa: F401
    except ImportError:
        unavailable("pytsk3 is not installed (pip install 'strongroom[vm]')")
    files = make_tree(tmp_path / "tree")
    image = tmp_path / "disk.img"
    parts = partition(image, 96, "label: gpt\nstart=2048, size=64MiB, type=L, name=root\n")
    ext4_at(image, tmp_path / "tree", parts[0]["start"], 64)
    write_at(image, 80 * MIB + 13, os.urandom(3 * MIB))
    return image, files


def test_every_workload_lists_restores_and_drills_from_the_secondary_with_the_primary_stopped(
        strongroom_home, cluster, disk_image, tmp_path, monkeypatch):
    """files, postgres and vm items replicated between two SeaweedFS servers (other credentials each);
    with the primary server stopped: points --from-secondary lists every point, the files restore
    byte for byte, the database into a new one with every table equal, the disk image byte for byte
    and one file from inside it; drill --from-secondary passes for each, reading the secondary; a policy's
    scheduled drill from the secondary (run-due, before the stop) reads the secondary with its own credentials."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # the explicit replicate below copies everything
    image, tree = disk_image
    build_shop(cluster, "geoall", rows=2000)
    source = {"connection": {"params": {"host": cluster.socket, "port": str(cluster.port), "user": "postgres"},
                             "password": {"kind": "none", "value": ""}}, "databases": ["geoall"], "bindir": None}
    src = write_files(tmp_path / "src")
    primary_server, secondary_server = start_server(), start_server()
    try:
        assert primary_server.secret != secondary_server.secret  # each server its own credentials
        url, secondary_url = geo_pair(strongroom_home, primary_server, secondary_server)
        vault = Vault.create(url, name="geo-all", redundancy=Redundancy("geo", secondary_url))
        cli = Cli(url)
        cli("prune", "settings", "--unscheduled")
        far = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=12)).strftime("%H:%M")  # no backup due
        cli("policy", "create", "drilled", "--daily", far, "--keep-daily", "7",
            "--drill-every", "1d", "--drill-from-secondary")
        vault.protect("files", "docs", {"paths": [str(src)]}, policy="drilled")
        vault.protect("postgres", "db", source)
        vault.protect("vm", "web", {"disks": [f"disk0={image}"]})
        for item in ("docs", "db", "web"):
            cli("backup", item)
        (src / "late.txt").write_text("a second point of docs")
        cli("backup", "docs")
        report = json.loads(cli("vault", "replicate", "--wait", "--json").stdout)
        assert report["complete"] and report["secondary"] == secondary_url
        points = {item: [p.point_id for p in vault.points(item)] for item in ("docs", "db", "web")}
        assert [len(ids) for ids in points.values()] == [2, 1, 1]
        due = json.loads(cli("run-due", "--json").stdout)["results"]  # the policy's drill, on the secondary
        assert [(r["kind"], r["name"], r["outcome"]) for r in due] == [("drill", "docs", "completed")]
        assert due[0]["detail"].startswith(f"point {points['docs'][-1][:8]} on the secondary")
        primary_server.stop()  # the primary's storage is gone from here on

        for item, ids in points.items():
            listed = json.loads(cli("points", item, "--from-secondary", "--json").stdout)
            assert [p["id"] for p in listed] == ids, item

        out = tmp_path / "files-out"
        cli("restore", f"docs@{points['docs'][-1]}", "--from-secondary", "--target", str(out))
        assert tree_bytes(out / str(src).lstrip("/")) == tree_bytes(src)

        cli("restore", f"db@{points['db'][-1]}", "--from-secondary", "--to-database", "geoall_copy")
        tables = cluster.tables("geoall")
        assert len(tables) > 3 and cluster.tables("geoall_copy") == tables
        for table in tables:
            assert cluster.table_digest("geoall_copy", table) == cluster.table_digest("geoall", table), table

        disks = tmp_path / "vm-out"
        cli("restore", f"web@{points['web'][-1]}", "--from-secondary", "--target", str(disks))
        assert sha256_file(disks / "disks" / "disk0.img") == sha256_file(image)
        one = tmp_path / "vm-file"
        cli("restore", f"web@{points['web'][-1]}", "--from-secondary", "--target", str(one),
            "--files", "disk0:/p1/home/alice/docs/report.bin")
        assert (one / "disk0" / "p1" / "home" / "alice" / "docs" / "report.bin").read_bytes() == \
            tree["home/alice/docs/report.bin"]

        for item, workload in (("docs", "files"), ("db", "postgres"), ("web", "vm")):
            drill = json.loads(cli("drill", item, "--from-secondary", "--json", "--scratch", str(tmp_path)).stdout)
            assert drill["ok"] and drill["mismatches"] == [], item
            assert drill["source"] == "secondary" and drill["workload"] == workload, item
            assert drill["point"] == points[item][-1] and drill["files"] >= 1 and drill["scratch_removed"], item
        assert not [name for name in cluster.databases() if name.startswith("strongroom_drill_")]
        jobs = json.loads(cli("--from-secondary", "jobs", "--type", "drill", "--json").stdout)
        assert sorted(j["item"] for j in jobs if j["state"] == "completed") == ["db", "docs", "docs", "web"]
    finally:
        primary_server.stop()
        secondary_server.stop()
        for name in ("geoall", "geoall_copy"):
            if name in cluster.databases():
                cluster.dropdb(name)
