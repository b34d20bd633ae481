"""``strongroom dump`` of what other workloads store: a dump stream and a disk image with holes."""

from __future__ import annotations

import os

import attrs
import pytest
from click.testing import CliRunner

from strongroom import StreamSource, Workload
from strongroom.catalog.entry import DISK, STREAM
from strongroom.cli import build_cli
from strongroom.vault import Vault
from vaultkit import workload_host

CHUNK = 1 << 20


class StreamsWorkload(Workload):
    """A workload yielding one dump stream and one disk image (fixed chunks, a hole)."""

    name = "streams"

    def backup(self, ctx):
        source = ctx.item.source
        yield StreamSource.from_bytes("db.dump", open(source["dump"], "rb").read(), type=STREAM)
        disk = StreamSource.from_bytes("disk.img", open(source["disk"], "rb").read(), type=DISK)
        yield attrs.evolve(disk, entry=attrs.evolve(disk.entry, chunk_size=CHUNK))


@pytest.fixture
def streams(tmp_path, monkeypatch):
    dump, disk = tmp_path / "db.dump", tmp_path / "disk.img"
    dump.write_bytes(os.urandom(3 * CHUNK + 17))
    with open(disk, "wb") as fh:
        fh.truncate(4 * CHUNK)
        fh.seek(2 * CHUNK)
        fh.write(os.urandom(CHUNK))  # chunks 0, 1 and 3 are holes
    plugins = workload_host("streams", streams=StreamsWorkload)
    url = str(tmp_path / "vault")
    vault = Vault.create(url, plugins=plugins)
    vault.protect("streams", "db", {"dump": str(dump), "disk": str(disk)})
    point = vault.backup("db")
    monkeypatch.setenv("STRONGROOM_VAULT", url)
    return plugins, point, dump, disk


def run(plugins, *args):
    return CliRunner().invoke(build_cli(plugins), list(args), catch_exceptions=False)


class TestDumpOtherEntries:
    def test_dump_stream_comes_out_exactly(self, streams):
        """A stream entry (a database dump) dumps byte for byte."""
        plugins, point, dump, _ = streams
        result = run(plugins, "dump", f"db@{point.point_id}", "db.dump")
        assert result.exit_code == 0, result.stderr
        assert result.stdout_bytes == dump.read_bytes()

    def test_disk_image_with_holes_comes_out_exactly(self, streams):
        """A disk entry's holes come out as zeros: the image equals the source."""
        plugins, point, _, disk = streams
        entry = Vault.open(os.environ["STRONGROOM_VAULT"], plugins=plugins).point_view("db").lookup("disk.img")
        assert entry.chunks.count(b"") == 3  # stored as holes
        result = run(plugins, "dump", f"db@{point.point_id}", "disk.img")
        assert result.exit_code == 0, result.stderr
        assert result.stdout_bytes == disk.read_bytes()
