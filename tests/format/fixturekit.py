"""The frozen fixture vaults under tests/fixtures/vault-format-N, read the same way.

Every format keeps one fixture (``docs/formats.md``, "Formats and upgrades"); the tests of
``test_vault_fixtures.py`` and ``test_upgrade_crash.py`` run on each of them.  A fixture
from format 2 on describes itself in ``MANIFEST.json`` (``fixture_files``: the SHA-256 of
each of its files; ``items``: what each point restores to, per workload); the format-1
fixture predates that shape (a flat ``MANIFEST.json`` and ``source.json``) and is read
into the same :class:`Fixture` record.  :func:`check_every_point` restores a fixture's
points and compares them with its manifest: files trees field by field, vm disks and one
file from inside a disk, postgres databases into a scratch database of the cluster the
``fixture_pg_cluster`` fixture starts (only when a fixture has a postgres point).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import attrs

from strongroom.testing import unavailable
from strongroom.vault import Vault
from vaultkit import FIXTURES, install_fixture_vault


def all_fixtures() -> list[Path]:
    """Every frozen fixture folder, oldest format first."""
    return sorted(FIXTURES.glob("vault-format-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))


@attrs.frozen
class Fixture:
    """One frozen fixture: where it is and what it promises."""

    path: Path
    format: int
    vault_id: str
    files: dict  # relative path -> SHA-256 of the fixture's file
    items: dict  # item name -> {"workload": ..., "points": {point id: expected}}
    passphrases: tuple[str, ...]  # the passphrases of its passphrase slots
    policies: tuple[str, ...]

    @property
    def workloads(self) -> set[str]:
        return {item["workload"] for item in self.items.values()}

    def install(self, where: Path, home: Path) -> str:
        """Copy the vault to ``where`` and its local key into the key store ``home``; its URL."""
        return install_fixture_vault(self.path, where, home)

    @classmethod
    def load(cls, path: Path) -> Fixture:
        manifest = json.loads((path / "MANIFEST.json").read_text())
        if "fixture_files" in manifest:
            return cls(path, manifest["format"], manifest["vault_id"], manifest["fixture_files"], manifest["items"],
                       tuple((path / name).read_text().rstrip("\n") for name in manifest["passphrases"]),
                       tuple(manifest.get("policies", ())))
        source = json.loads((path / "source.json").read_text())  # format 1: files only, one local slot
        items = {"docs": {"workload": "files", "source": source["source"], "points": source["points"]}}
        return cls(path, 1, source["vault_id"], manifest, items, (), ())


def describe(root: Path) -> dict:
    """What a fixture records of a restored tree: path -> type, mode, size, SHA-256, link
    target, ``user.*`` xattrs (hex)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = {"type": "symlink", "target": os.readlink(path)}
                continue
            record = {"type": "dir" if path.is_dir() else "file", "mode": oct(path.lstat().st_mode & 0o7777)}
            xattrs = {n: os.getxattr(path, n).hex() for n in sorted(os.listxattr(path)) if n.startswith("user.")}
            if xattrs:
                record["xattrs"] = xattrs
            if record["type"] == "file":
                data = path.read_bytes()
                record.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
            out[rel] = record
    return out


def tree_mismatches(expected: dict, actual: dict) -> list[str]:
    """Differences between a recorded tree and a restored one, in the fields recorded
    (the format-1 fixture recorded no modes or xattrs)."""
    problems = [f"{rel}: missing" for rel in sorted(set(expected) - set(actual))]
    problems += [f"{rel}: not in the point" for rel in sorted(set(actual) - set(expected))]
    for rel in sorted(set(expected) & set(actual)):
        want = expected[rel]
        got = {k: actual[rel].get(k) for k in want}
        if "xattrs" not in want and actual[rel].get("xattrs") and "mode" in want:
            got["xattrs"] = actual[rel]["xattrs"]
        if got != want:
            problems.append(f"{rel}: {got} != {want}")
    return problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _require_module(name: str, install: str) -> None:
    try:
        __import__(name)
    except ImportError:
        unavailable(f"{name} is not installed ({install})")


def check_point(vault: Vault, name: str, item: dict, point_id: str, expected: dict, out: Path, request) -> None:
    """Restore one point of the fixture and compare it with what the manifest recorded."""
    workload = item["workload"]
    if workload == "files":
        vault.restore(name, point_id, str(out))
        problems = tree_mismatches(expected, describe(out / item["source"].lstrip("/")))
        assert not problems, (name, point_id, problems[:10])
    elif workload == "vm":
        vault.restore(name, point_id, str(out))
        for disk, digest in expected["disks"].items():
            assert sha256_file(out / "disks" / f"{disk}.img") == digest, disk
        for config, digest in expected.get("config", {}).items():
            assert sha256_file(out / "config" / config) == digest, config
        _require_module("pytsk3", "pip install 'strongroom[vm]'")
        wanted = sorted(expected["files"])[-1]  # one file, extracted from inside the disk
        vault.restore(name, point_id, str(out / "one"), options={"files": [wanted]})
        disk, _, inner = wanted.partition(":/")
        got = [p for p in (out / "one").rglob("*") if p.is_file()]
        assert [str(p.relative_to(out / "one")) for p in got] == [f"{disk}/{inner}"]
        assert sha256_file(got[0]) == expected["files"][wanted]
    elif workload == "postgres":
        cluster = request.getfixturevalue("fixture_pg_cluster")
        scratch = f"fixture_{point_id}"
        vault.restore(name, point_id, None, options={
            "to_database": scratch, "host": cluster.socket, "port": str(cluster.port), "user": "postgres"})
        try:
            assert sorted(cluster.tables(scratch)) == sorted(expected["tables"])
            for table, (rows, digest) in expected["tables"].items():
                assert list(cluster.table_digest(scratch, table)) == [rows, digest], table
        finally:
            cluster.dropdb(scratch)
    else:
        raise AssertionError(f"no check for workload {workload}")


def check_every_point(vault: Vault, fixture: Fixture, out: Path, request, *, newest_only: bool = False) -> None:
    """The vault has the fixture's points (and no others) and each restores as recorded
    (with ``newest_only``, only the newest point of each item is restored)."""
    for name, item in fixture.items.items():
        points = sorted(vault.points(name), key=lambda p: p.created)
        assert {p.point_id for p in points} == set(item["points"]), name
        for point in points[-1:] if newest_only else points:
            check_point(vault, name, item, point.point_id, item["points"][point.point_id],
                        out / f"{name}-{point.point_id}", request)
