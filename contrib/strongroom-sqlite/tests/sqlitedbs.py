"""Real SQLite databases for the tests, and ways to compare them.

:func:`make_shop` builds a database with the things a table restore has to carry:
AUTOINCREMENT, indexes (one partial, one on an expression), a trigger, a view, a
generated column, a table with an awkward name, and values of every storage class
(NULL, big integers, floats that need all their digits, text with quotes, new lines
and non-ASCII characters, blobs with zero bytes).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SHOP_TABLES = ("customers", "orders", 'odd "name" table', "audit")
ODD = 'odd "name" table'


def make_shop(path: Path | str, journal: str = "wal", customers: int = 300) -> Path:
    """A small shop database at ``path`` in journal mode ``journal`` (``wal`` or ``delete``)."""
    path = Path(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.executescript(f"""
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            email TEXT UNIQUE,
            balance REAL DEFAULT 0,
            name_length INTEGER GENERATED ALWAYS AS (length(name)) VIRTUAL
        );
        CREATE INDEX customers_by_name ON customers (name);
        CREATE INDEX customers_rich ON customers (balance) WHERE balance > 100;
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer INTEGER REFERENCES customers (id),
            item TEXT,
            quantity INTEGER,
            note BLOB
        );
        CREATE INDEX orders_by_item ON orders (lower(item));
        CREATE TABLE audit (at TEXT, what TEXT);
        CREATE TRIGGER orders_audit AFTER INSERT ON orders
            BEGIN INSERT INTO audit VALUES ('now', 'order ' || NEW.id); END;
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE quantity > 5;
        CREATE TABLE "{ODD.replace('"', '""')}" (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    """)
    conn.executemany("INSERT INTO customers (name, email, balance) VALUES (?, ?, ?)", [
        (f"customer {i}", f"c{i}@example.org", i * 1.1) for i in range(customers)
    ])
    conn.execute("INSERT INTO customers (name, email, balance) VALUES (?, ?, ?)",
                 ("O'Brien \"Bob\"\nsecond line, ünïcödé ✓", None, 0.1 + 0.2))
    conn.execute("DELETE FROM customers WHERE id = 5")  # the AUTOINCREMENT counter stays past it
    conn.executemany("INSERT INTO orders (customer, item, quantity, note) VALUES (?, ?, ?, ?)", [
        (i % customers + 1, f"item {i % 17}", i % 11, None if i % 3 else bytes(range(i % 256)) + b"\x00" * 5)
        for i in range(3 * customers)
    ])
    conn.executemany(f'INSERT INTO "{ODD.replace(chr(34), chr(34) * 2)}" VALUES (?, ?)', [
        ("big", 2**62 + 1), ("negative", -(2**63)), ("float", 1e-300), ("none", None), ("text", "x" * 5000),
    ])
    conn.commit()
    conn.close()
    return path


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection to a database (text kept as bytes never decodes wrongly: all is UTF-8 here)."""
    return sqlite3.connect(path)


def dump(path: Path | str) -> list[str]:
    """The database's content as SQL (``iterdump``): equal dumps, equal databases."""
    conn = connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def row_counts(path: Path | str) -> dict[str, int]:
    """Every table's row count, SQLite's own tables left out."""
    conn = connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
                for name in names}
    finally:
        conn.close()


def rows(path: Path | str, table: str) -> list[tuple]:
    """The rows of ``table`` (its ordinary columns, the generated ones too), sorted."""
    conn = connect(path)
    try:
        quoted = '"' + table.replace('"', '""') + '"'
        return sorted(conn.execute(f"SELECT * FROM {quoted}").fetchall(), key=repr)
    finally:
        conn.close()


def schema_names(path: Path | str) -> set[tuple[str, str]]:
    """(type, name) of everything in ``sqlite_master``."""
    conn = connect(path)
    try:
        return set(conn.execute("SELECT type, name FROM sqlite_master"))
    finally:
        conn.close()


def sequence(path: Path | str, table: str) -> int | None:
    """The AUTOINCREMENT counter of ``table``."""
    conn = connect(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            return None
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return row and row[0]
    finally:
        conn.close()


def integrity(path: Path | str) -> str:
    conn = connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def header_journal(path: Path | str) -> str:
    """``wal`` or ``rollback``, as the file's header says."""
    with open(path, "rb") as fh:
        return "wal" if fh.read(20)[18:20] == b"\x02\x02" else "rollback"


def files_under(folder: Path | str) -> list[str]:
    """Every file under ``folder``, as sorted relative paths."""
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder) for n in names]
    return sorted(found)
