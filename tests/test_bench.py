"""The comparison benchmark (``python -m bench``) runs end to end in its quick mode.

It needs restic and BorgBackup (``scripts/apt/bench.txt``); the benchmark installs them
itself when run as root.  Only the shape of the results is checked, never a timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("strongroom", "restic", "borg")
OPERATIONS = ("first backup", "unchanged backup", "backup after mutation", "full restore",
              "single-file restore", "verify (read all data)")
SCALE_OPERATIONS = ("first backup", "unchanged backup")


def _tools_available() -> bool:
    """restic and borg are installed, or the benchmark can install them (root with apt-get)."""
    installed = all(shutil.which(tool) for tool in ("restic", "borg"))
    return installed or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    """One ``python -m bench --quick`` run: the process and the results file's text."""
    tmp = tmp_path_factory.mktemp("bench")
    output = tmp / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--work", str(tmp / "w"), "--corpus",
         str(tmp / "corpus"), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc, output.read_text() if output.exists() else ""


@pytest.mark.slow
@pytest.mark.skipif(not _tools_available(),
                    reason="restic and borg are not installed and cannot be (not root, or no apt-get): "
                           "apt-get install restic borgbackup (scripts/apt/bench.txt)")
class TestQuickBench:
    def test_exits_with_zero(self, results):
        """The quick run finishes without error and writes the results file."""
        proc, text = results
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert text.startswith("# strongroom, restic and BorgBackup")

    @pytest.mark.parametrize("tool", TOOLS)
    def test_every_operation_of_every_tool_is_reported(self, results, tool):
        """Each tool has a row for each corpus operation and, in the appendix, each scale operation."""
        _, text = results
        for label in OPERATIONS:
            assert f"| {label} | {tool} |" in text, f"no row for {tool} {label}"
        for label in SCALE_OPERATIONS:
            assert f"| {tool} | scale: {label} |" in text, f"no scale row for {tool} {label}"

    def test_targets_table_is_present(self, results):
        """The targets section has its table, with the index and start-up targets measured."""
        _, text = results
        assert "## Targets" in text and "| target | measured | result |" in text
        targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
        assert "| index < 64 B per chunk |" in targets
        assert "| CLI start-up (`strongroom --help`) < 0.3 s |" in targets
