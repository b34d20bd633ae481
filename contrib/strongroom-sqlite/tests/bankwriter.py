"""A process that writes to a bank database until its standard input closes.

``python bankwriter.py DB``: in a loop, each transaction moves an amount between two
accounts (so the sum of the balances never changes), adds a transfer row with a
1 KiB memo, and adds one to the counter (so the counter always equals the number of
transfers).  It prints ``ready`` after its first commit, and at the end the number
of transactions it committed.  :func:`make_bank` creates the database.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import threading
import time

ACCOUNTS = 200
OPENING_BALANCE = 1000
TOTAL = ACCOUNTS * OPENING_BALANCE


def make_bank(path: str, journal: str, ballast_mb: int = 6) -> None:
    """A bank database of a few MB (random ballast, so that copying it takes a while)."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.executescript("""
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
        CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, memo BLOB);
        CREATE TABLE counter (n INTEGER NOT NULL);
        CREATE TABLE ballast (data BLOB);
        INSERT INTO counter VALUES (0);
    """)
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, OPENING_BALANCE) for i in range(ACCOUNTS)])
    conn.executemany("INSERT INTO ballast VALUES (?)", [(os.urandom(4096),) for _ in range(ballast_mb * 256)])
    conn.commit()
    conn.close()


def run(path: str) -> int:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    rng = random.Random(7)
    commits = 0
    while not stop.is_set():
        src, dst = rng.sample(range(ACCOUNTS), 2)
        amount = rng.randint(1, 50)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, src))
        conn.execute("INSERT INTO transfers (src, dst, amount, memo) VALUES (?, ?, ?, ?)",
                     (src, dst, amount, os.urandom(1024)))
        conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, dst))
        conn.execute("UPDATE counter SET n = n + 1")
        conn.execute("COMMIT")
        commits += 1
        if commits == 1:
            print("ready", flush=True)
        time.sleep(0.002)  # lets readers in between transactions in rollback-journal mode
    conn.close()
    return commits


if __name__ == "__main__":
    print(run(sys.argv[1]), flush=True)
