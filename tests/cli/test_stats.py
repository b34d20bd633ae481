"""``strongroom stats``: restore size, deduplicated raw bytes and stored pack bytes, per item and in all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

A, B = 300_000, 150_000


@pytest.fixture
def twice(tmp_path, cli):
    """Two items over the same files, "docs" backed up twice and "copy" once."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(A))
    (src / "b.bin").write_bytes(os.urandom(B))
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", "docs", "--path", str(src))
    cli("protect", "files", "copy", "--path", str(src))
    for item in ("docs", "docs", "copy"):
        cli("backup", item)
    return src


def _stats(cli, *args: str) -> dict:
    doc = json.loads(cli("stats", *args, "--json").stdout)
    return {**{i["item"]: i for i in doc["items"]}, None: doc["total"]}


def _pack_bytes(vault_url: str) -> int:
    return sum(p.stat().st_size for p in Path(vault_url, "data").rglob("*") if p.is_file())


class TestStats:
    def test_restore_size_counts_every_point_in_full(self, twice, cli):
        """restore-size is the files' sizes times the points that hold them, per item and in all."""
        found = _stats(cli)
        assert (found["docs"]["points"], found["docs"]["files"], found["docs"]["restore_size"]) == (2, 4, 2 * (A + B))
        assert found["copy"]["restore_size"] == A + B
        assert found[None]["restore_size"] == 3 * (A + B) and found[None]["points"] == 3

    def test_raw_counts_each_blob_once(self, twice, cli):
        """raw counts shared content once: two points of an item, and two items, hold the files' bytes
        once (plus their small tree nodes)."""
        found = _stats(cli, "--mode", "raw")
        for name in ("docs", "copy", None):
            assert A + B <= found[name]["raw_size"] < A + B + 20_000, name
        assert found[None]["raw_size"] < found["docs"]["raw_size"] + found["copy"]["raw_size"]

    def test_stored_is_the_packs_on_storage(self, twice, cli):
        """stored is the bytes of the packs holding the referenced blobs: here every pack of the vault."""
        found = _stats(cli, "--mode", "stored")
        assert found[None]["stored_size"] == _pack_bytes(cli.vault_url)
        assert found[None]["packs"] >= found["docs"]["packs"] > 0

    def test_one_item_and_the_table(self, twice, cli):
        """stats ITEM counts that item only; the table shows the chosen mode's column and the vault's row."""
        doc = json.loads(cli("stats", "copy", "--json").stdout)
        assert [i["item"] for i in doc["items"]] == ["copy"] and doc["total"]["points"] == 1
        assert doc["schema"] == 1 and doc["mode"] == "restore-size"
        table = cli("stats", "--mode", "raw").stdout.splitlines()
        assert table[0].split() == ["ITEM", "POINTS", "BLOBS", "RAW"]
        assert [line.split()[0] for line in table[1:]] == ["copy", "docs", "(vault)"]  # items by name

    def test_an_unknown_item_is_one_line(self, twice, cli):
        """stats of an item that does not exist fails with one error line."""
        result = cli("stats", "nope", expect=None)
        assert result.exit_code != 0 and "Traceback" not in result.stdout + result.stderr
        assert result.stderr.strip().startswith("strongroom: error:") and "nope" in result.stderr
