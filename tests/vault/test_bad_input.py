"""Bad input gives one clear line and a stable exit code, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from vaultkit import Cli, assert_one_line_error as _one_line_error, first_backup


@pytest.fixture
def ready(tmp_path, cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    first_backup(cli, src, "docs")
    return src


class TestBadInput:
    def test_unknown_item(self, ready, cli):
        """Backing up an item that does not exist names it and exits 41."""
        _one_line_error(cli("backup", "nosuch", expect=None), 41, "nosuch")

    def test_unknown_point(self, ready, cli, tmp_path):
        """Restoring a point that does not exist exits 43."""
        res = cli("restore", "docs@ffffffff", "--target", str(tmp_path / "o"), expect=None)
        _one_line_error(res, 43, "ffffffff")

    def test_unknown_path_in_point(self, ready, cli, tmp_path):
        """Restoring a path the point does not have exits 45 and names the path."""
        res = cli("restore", "docs", "--target", str(tmp_path / "o"), "no/such/file", expect=None)
        _one_line_error(res, 45, "no/such/file")

    def test_missing_source_path(self, ready, cli, tmp_path):
        """Protecting a path that does not exist exits 47 and names the path."""
        res = cli("protect", "files", "x", "--path", str(tmp_path / "missing"), expect=None)
        _one_line_error(res, 47, "missing")

    def test_duplicate_item(self, ready, cli):
        """Protecting a second item with an existing name exits 42."""
        res = cli("protect", "files", "docs", "--path", str(ready), expect=None)
        _one_line_error(res, 42, "docs")

    def test_vault_that_does_not_exist(self, tmp_path):
        """A vault URL with no vault exits 11 and names the URL."""
        res = Cli(str(tmp_path / "nowhere"))("items", expect=None)
        _one_line_error(res, 11, "nowhere")

    def test_no_vault_given(self):
        """A command without --vault or STRONGROOM_VAULT exits 4 and says how to give one."""
        res = Cli(None)("items", expect=None)
        _one_line_error(res, 4, "STRONGROOM_VAULT")

    def test_vault_create_over_existing(self, ready, cli):
        """Creating a vault where one exists exits 12."""
        _one_line_error(cli("vault", "create", cli.vault_url, expect=None), 12)

    def test_bad_item_point_syntax(self, ready, cli, tmp_path):
        """An empty point after '@' is a usage error (exit 2), not a crash."""
        res = cli("restore", "docs@", "--target", str(tmp_path / "o"), expect=None)
        assert res.exit_code == 2 and "Traceback" not in res.output

    def test_newer_format_is_refused(self, ready, cli):
        """A vault of a newer format (or unknown feature) is refused with exit 13."""
        path = os.path.join(cli.vault_url, "strongroom.json")
        doc = json.load(open(path))
        json.dump({**doc, "features": ["time-travel"]}, open(path, "w"))
        _one_line_error(cli("items", expect=None), 13, "time-travel")
        json.dump({**doc, "format": 99}, open(path, "w"))
        _one_line_error(cli("items", expect=None), 13, "format 99")


NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="root reads every file; needs root and setpriv to drop that power")
def test_unreadable_source_files_complete_with_warnings(tmp_path, cli):
    """Files the backup cannot read are listed as warnings; the job is 'completed with warnings' (exit 1)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, mode in (("ok.txt", 0o644), ("secret.txt", 0o000), ("locked.txt", 0o000)):
        (src / name).write_text(name * 100)
        os.chmod(src / name, mode)
    cli("vault", "create", cli.vault_url)
    cli("protect", "files", "src", "--path", str(src))
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    env = {**os.environ, "STRONGROOM_VAULT": cli.vault_url}
    # Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH obeys file modes like any user.
    res = subprocess.run(NO_DAC + [exe, "backup", "src"], env=env, capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 2, res.stderr
    assert any("secret.txt" in w for w in warned) and any("locked.txt" in w for w in warned)
    jobs = json.loads(cli("jobs", "--json").stdout)
    assert jobs[-1]["state"] == "completed_with_warnings"
    assert len(jobs[-1]["warnings"]) == 2
    listing = json.loads(cli("browse", "src", str(src).lstrip("/"), "--json").stdout)
    assert [e["name"] for e in listing] == ["ok.txt"]


def test_files_restore_without_target_says_what_is_missing(ready, cli):
    """A files restore without --target exits 3 and names the option."""
    res = cli("restore", "docs", expect=None)
    _one_line_error(res, 3, "--target")
