"""The scale ladder (``python -m bench.scale``) runs end to end on tiny trees.

It needs restic (``scripts/apt/bench.txt``).  Only the shape of the report is checked,
never a timing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed (scripts/apt/bench.txt)")
def test_two_counts_two_tools(tmp_path):
    """Each count has a first and an unchanged row for each tool, with strongroom's ratio;
    every run is listed; the trees are generated once and kept; the scratch folder goes."""
    output = tmp_path / "scale.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--counts", "150,300", "--runs", "1", "--trees", str(tmp_path),
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    for count in ("150", "300"):
        for op in ("first backup", "unchanged backup"):
            assert f"| {count} | {op} | strongroom |" in text and f"| {count} | {op} | restic |" in text
            assert text.count(f"| {count} | 1 |") == 4  # two tools, two operations, one run
        assert f"{count} files: load average" in text
        assert sum(1 for _ in os.scandir(tmp_path / f"scale-{count}")) == 1  # one folder of files
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "scale-150", "scale-150.complete", "scale-300", "scale-300.complete", "scale.md"]
