"""The server load benchmark (``python -m bench.server.run``) runs end to end in a tiny mode.

Two clients (one per vault), one round, both modes: the run exits 0 and its report has every
section, no failed backup, every point counted, both vaults verified in both modes, every
reader poll answered 200, and the server's CPU, peak RSS and requests measured.  Never a timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the vault server needs pip install 'strongroom[server]'")
pytest.importorskip("prometheus_client")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    tmp = tmp_path_factory.mktemp("load")
    output = tmp / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.server.run", "--clients-a", "1", "--clients-b", "1", "--rounds", "1",
         "--files", "3", "--file-kib", "8", "--work", str(tmp / "w"), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc, output.read_text() if output.exists() else ""


def rows(text: str, section: str) -> list[list[str]]:
    """The table rows of ``## section`` (header and separator left out)."""
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = [[c.strip() for c in line.strip().strip("|").split(" | ")]
             for line in body.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return found[1:]


@pytest.mark.slow
class TestTinyLoadBench:
    def test_exits_with_zero_and_reports_no_error(self, results):
        proc, text = results
        assert proc.returncode == 0, proc.stderr[-3000:] + text[-2000:]
        assert text.startswith("# The vault server under load")
        assert "\nMachine: " in text and "\nCommit: " in text and "\nCommand: `python -m bench.server.run " in text
        assert text.rstrip().endswith("## Errors\n\nNone.")

    def test_both_modes_back_up_every_client(self, results):
        _, text = results
        backups = {r[0]: r for r in rows(text, "Backups")}
        assert set(backups) == {"direct", "server"}
        for row in backups.values():
            assert row[1] == "2" and row[2] == "0", row  # 2 backups, none failed

    def test_every_point_is_there_and_verified(self, results):
        _, text = results
        found = rows(text, "Points and verification")
        assert [(r[0], r[1]) for r in found] == [("direct", "A"), ("direct", "B"), ("server", "A"), ("server", "B")]
        for row in found:
            assert row[2] == "1" and row[3] == "1", row
            assert row[4].startswith("ok ("), row
        assert "through the server, contributor token" in found[2][4]

    def test_the_server_is_measured(self, results):
        _, text = results
        figures = dict((r[0], r[1]) for r in rows(text, "The server"))
        assert float(figures["CPU seconds during the rounds"]) > 0
        assert int(figures["peak RSS"].split()[0]) > 0
        assert int(figures["requests served during the rounds"]) > 0
        assert re.search(r"\| `/vaults/\{vault\}/objects/\{path:path\}` \| PUT \| 20[14] \| \d+ \|", text)
        ratios = dict((r[0], r[1]) for r in rows(text, "Server against direct"))
        assert set(ratios) == {"backup time, median", "backup time, p90", "round wall time, median",
                               "client CPU seconds"}

    def test_the_reader_polled_both_pages(self, results):
        _, text = results
        polls = {r[0]: r for r in rows(text, "The reader")}
        assert set(polls) == {"overview", "metrics"}
        for row in polls.values():
            assert int(row[1]) >= 1 and row[2] == "0", row
