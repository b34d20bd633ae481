"""A backup taken while another process writes to the database restores a consistent database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bankwriter import TOTAL, make_bank
from sqlitedbs import header_journal, integrity

WRITER = Path(__file__).with_name("bankwriter.py")


def counter(path) -> int:
    conn = sqlite3.connect(path, timeout=60)
    try:
        return conn.execute("SELECT n FROM counter").fetchone()[0]
    finally:
        conn.close()


class Writer:
    """``bankwriter.py`` in a child process, from ``ready`` until the block ends."""

    def __init__(self, path) -> None:
        self.path = path
        self.commits = 0

    def __enter__(self) -> "Writer":
        self.proc = subprocess.Popen([sys.executable, str(WRITER), str(self.path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            pytest.fail(f"the writer did not start: {line!r} {self.proc.stderr.read()}")
        return self

    def __exit__(self, *exc) -> None:
        out, err = self.proc.communicate(input="", timeout=120)
        assert self.proc.returncode == 0, err
        self.commits = int(out.split()[-1])


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_backup_during_writes_restores_a_consistent_database(vault, tmp_path, journal):
    """With a writer committing all along, the restored database passes integrity_check and keeps the
    writer's invariants (balances sum to the total, one transfer per counted transaction)."""
    db = tmp_path / "bank.db"
    make_bank(str(db), journal)
    vault.protect("sqlite", "bank", {"databases": [str(db)]})
    with Writer(db) as writer:
        before = counter(db)
        vault.backup("bank")
        after = counter(db)
    assert after > before, "the writer committed nothing while the backup ran"
    assert writer.commits >= after

    target = tmp_path / "restored"
    vault.restore("bank", None, str(target))
    restored = target / "databases" / "bank.sqlite"
    assert integrity(restored) == "ok"
    assert header_journal(restored) == ("wal" if journal == "wal" else "rollback")
    conn = sqlite3.connect(restored)
    try:
        assert conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0] == TOTAL
        n = conn.execute("SELECT n FROM counter").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM transfers").fetchone()[0] == n
        assert before <= n <= after
    finally:
        conn.close()
