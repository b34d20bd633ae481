"""``strongroom dump ITEM@POINT PATH``: one file's exact bytes on standard output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from strongroom.testing import Cli
from vaultkit import assert_one_line_error

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


@pytest.fixture
def dumped(tmp_path, vault_url, cli):
    """Item 'data' holding a 10 MiB random file, a hard link to it and a folder; its point id."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(10 << 20))
    os.link(src / "big.bin", src / "sub" / "again.bin")
    cli("vault", "create", vault_url)
    cli("protect", "files", "data", "--path", str(src))
    cli("backup", "data")
    point = json.loads(cli("points", "data", "--json").stdout)[0]["id"]
    return src, point


def run(vault_url, *args, **kwargs):
    env = {**os.environ, "STRONGROOM_VAULT": vault_url}
    return subprocess.run([STRONGROOM, *args], env=env, capture_output=True, **kwargs)


class TestDump:
    def test_ten_mib_file_comes_out_byte_for_byte(self, dumped, vault_url):
        """The dump of a 10 MiB random file equals the source, on stdout, nothing on stderr."""
        src, point = dumped
        result = run(vault_url, "dump", f"data@{point[:8]}", f"{str(src).lstrip('/')}/big.bin")
        assert result.returncode == 0, result.stderr
        assert result.stdout == (src / "big.bin").read_bytes()
        assert result.stderr == b""

    def test_hard_link_is_followed(self, dumped, vault_url):
        """A further name of a file dumps the file's content."""
        src, point = dumped
        result = run(vault_url, "dump", f"data@{point}", f"{str(src).lstrip('/')}/sub/again.bin")
        assert result.returncode == 0 and result.stdout == (src / "big.bin").read_bytes()

    def test_folder_is_refused(self, dumped, cli):
        """A folder has no content: exit 3, one line pointing at restore."""
        src, point = dumped
        assert_one_line_error(cli("dump", f"data@{point}", str(src).lstrip("/") + "/sub", expect=None),
                              3, "a dir", "restore")

    def test_missing_path_is_not_found(self, dumped, cli):
        """A path the point lacks: PathNotInPoint (45)."""
        _, point = dumped
        assert_one_line_error(cli("dump", f"data@{point}", "no/such/file", expect=None), 45, "no/such/file")

    def test_reader_going_away_ends_it_quietly(self, dumped, vault_url):
        """A reader that closes the pipe early: exit 141, nothing on stderr."""
        src, point = dumped
        env = {**os.environ, "STRONGROOM_VAULT": vault_url}
        proc = subprocess.Popen([STRONGROOM, "dump", f"data@{point}", f"{str(src).lstrip('/')}/big.bin"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.read(10) == (src / "big.bin").read_bytes()[:10]
        proc.stdout.close()
        assert proc.wait(timeout=120) == 141
        assert proc.stderr.read() == b""

    def test_latest_point_without_a_point_id(self, dumped, vault_url, tmp_path):
        """ITEM alone dumps from the latest point."""
        src, _ = dumped
        result = run(vault_url, "dump", "data", f"{str(src).lstrip('/')}/big.bin")
        assert result.returncode == 0 and len(result.stdout) == 10 << 20
