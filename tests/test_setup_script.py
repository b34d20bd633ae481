"""scripts/setup.sh: the demo sets up only the base apt list and strongroom without extras;
the tests every list, the test extras and contrib/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def apt_packages(*lists: Path) -> set[str]:
    names = set()
    for path in lists:
        for line in path.read_text().splitlines():
            names.update(line.split("#", 1)[0].split())
    return names


@pytest.fixture
def sourced(tmp_path):
    """Source setup.sh with a venv already marked installed and every Debian package reported
    installed (a dpkg-query stub first on PATH), and print what it chose."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "dpkg-query").write_text("#!/bin/sh\nprintf 'install ok installed'\n")
    (stubs / "dpkg-query").chmod(0o755)
    venv = tmp_path / "venv"
    venv.mkdir()
    total = subprocess.run("cat pyproject.toml contrib/*/pyproject.toml | cksum | cut -d' ' -f1", shell=True,
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    def run(setup: str, stamp: str) -> subprocess.CompletedProcess:
        for old in venv.glob(".installed-*"):
            old.unlink()
        (venv / stamp.format(sum=total)).touch()
        script = f'SETUP={setup}; . scripts/setup.sh; echo "wanted=$(echo $wanted)"; echo "target=$target"'
        return subprocess.run(["sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "VENV": str(venv), "PATH": f"{stubs}:{os.environ['PATH']}"})

    return run


class TestSetupProfiles:
    def test_the_demo_wants_the_base_list_only(self, sourced):
        """SETUP=demo asks for scripts/apt/base.txt's packages and no others, and strongroom without extras."""
        result = sourced("demo", ".installed-demo-{sum}")
        assert result.returncode == 0, result.stderr
        wanted = set(result.stdout.split("wanted=", 1)[1].splitlines()[0].split())
        assert wanted == apt_packages(ROOT / "scripts/apt/base.txt")
        assert "qemu-system-x86" not in wanted and "postgresql" not in wanted
        assert "target=." in result.stdout.splitlines()

    def test_the_tests_want_every_list(self, sourced):
        """The default (scripts/test.sh) asks for every list's packages and the test extras."""
        result = sourced("test", ".installed-{sum}")
        assert result.returncode == 0, result.stderr
        wanted = set(result.stdout.split("wanted=", 1)[1].splitlines()[0].split())
        assert wanted == apt_packages(*sorted((ROOT / "scripts/apt").glob("*.txt")))
        assert {"qemu-system-x86", "postgresql", "groff-base"} <= wanted
        assert "target=.[test]" in result.stdout.splitlines()

    def test_a_venv_set_up_for_the_tests_serves_the_demo(self, sourced):
        """With the tests' stamp in place the demo installs nothing (no pip run)."""
        result = sourced("demo", ".installed-{sum}")
        assert result.returncode == 0 and "installing" not in result.stdout + result.stderr

    def test_an_unknown_profile_is_refused(self, sourced):
        """SETUP other than test or demo stops setup with one line."""
        result = sourced("bogus", ".installed-{sum}")
        assert result.returncode == 1 and "SETUP must be 'test' or 'demo'" in result.stderr
