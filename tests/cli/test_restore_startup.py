"""A restore of one file from a local vault imports only what it needs: no fsspec (a
local folder is opened without it), no HTTP or TLS client (nothing is notified), no
numpy (the index tables are not built: a few lookups search the loaded index files' bytes;
the chunker's zero-run search and pyfastcdc are imported by the first cut, not by a vault
open)."""

from __future__ import annotations

from test_cli_startup import _backed_up_docs, run_cli

#: What such a restore must not import.
NOT_NEEDED = (
    "fsspec",
    "asyncio",
    "ssl",
    "http.client",
    "strongroom.repository.indextables",
    "numpy",
    "pyfastcdc",
)


def test_one_file_restore_imports_nothing_it_does_not_use(tmp_path, monkeypatch):
    """The file comes back, and none of NOT_NEEDED was imported to restore it."""
    _backed_up_docs(tmp_path, monkeypatch)
    target = tmp_path / "restored"
    proc, modules = run_cli(tmp_path, "restore", "docs", "--target", str(target),
                            str(tmp_path / "data" / "a.txt").lstrip("/"))
    assert (target / str(tmp_path / "data" / "a.txt").lstrip("/")).read_text() == "hello", proc.stderr
    assert [m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_NEEDED)] == []
