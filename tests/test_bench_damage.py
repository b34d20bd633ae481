"""The damage matrix (``python -m bench.damage``) runs end to end in its quick mode.

The quick mode damages three objects of three fresh vaults through the real command line.
Checked: the results file has the matrix with one row per cell and every column filled, a
legend and a log for each cell, and no cell shows a traceback or an exit 99.  Never a timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.damage.__main__ import QUICK  # noqa: E402
from bench.damage.report import COLUMNS  # noqa: E402

HEADER = ["object", "damage", *COLUMNS, "flags"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    """One ``python -m bench.damage --quick`` run: the process and the results file's text."""
    tmp = tmp_path_factory.mktemp("damage")
    output = tmp / "RESULTS.md"
    proc = subprocess.run([sys.executable, "-m", "bench.damage", "--quick", "--work", str(tmp), "--output",
                           str(output)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return proc, output.read_text() if output.exists() else ""


def matrix(text: str) -> list[list[str]]:
    """The rows of the matrix table, each a list of its cells (the header first)."""
    section = text.split("## Matrix", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]


@pytest.mark.slow
class TestQuickDamageMatrix:
    def test_exits_with_zero_and_writes_the_results(self, results):
        """The quick run finishes and writes the results file with the machine described."""
        proc, text = results
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert text.startswith("# Damage matrix")
        assert "\nMachine: " in text and " cores " in text

    def test_matrix_has_one_full_row_per_quick_cell(self, results):
        """The table has the documented columns and a row for each quick cell, no column empty."""
        _, text = results
        rows = matrix(text)
        assert rows[0] == HEADER
        assert [(r[0], r[1]) for r in rows[1:]] == list(QUICK)
        for row in rows[1:]:
            assert len(row) == len(HEADER), row
            assert all(cell and cell != "-" for cell in row), row

    def test_every_cell_has_its_log(self, results):
        """Below the legend, each cell has its own log with the commands and exit codes."""
        _, text = results
        assert "## Legend" in text and "## Per-cell log" in text
        for kind, damage in QUICK:
            log = text.split(f"### {kind} × {damage}", 1)[1].split("\n### ", 1)[0]
            assert "`strongroom vault verify --read-data`" in log
            assert "`strongroom vault repair --apply`" in log

    def test_no_cell_shows_a_traceback_or_exit_99(self, results):
        """No command of any cell crashed: no CRASH flag, no exit 99 in a log, no traceback."""
        _, text = results
        assert "CRASH" not in text.split("## Legend", 1)[0] and "CRASH:" not in text
        assert "| 99 |" not in text and "Traceback" not in text
        for row in matrix(text)[1:]:
            assert "not measured" not in row[-1], row
