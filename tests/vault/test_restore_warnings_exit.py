"""A restore that completes with warnings exits 1, and the guide and the command
reference say so."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from vaultkit import first_backup

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def test_a_restore_with_warnings_exits_1_as_documented(tmp_path, cli):
    """A socket cannot be restored (it is skipped with a warning): the restore writes
    every other file, prints one warning line, and exits 1; the guide says 1 too."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(src / "sock"))
    try:
        first_backup(cli, src, "src")
    finally:
        listener.close()
    res = cli("restore", "src", "--target", str(tmp_path / "out"), expect=None)
    assert res.exit_code == 1, res.output
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "sock" in warned[0], res.stderr
    assert (tmp_path / "out" / str(src).lstrip("/") / "a.txt").read_text() == "a"

    guide = (DOCS / "guide.md").read_text()
    restore_section = guide[guide.index("## Browsing and restoring"):guide.index("## Verifying")]
    sentence = next(s for s in re.split(r"(?<=\.)\s", restore_section) if "completed_with_warnings" in s)
    assert "exits with code 1" in sentence, sentence
    assert "stays 0" not in guide
    assert "the command exits with code 1" in (DOCS / "cli.md").read_text()
