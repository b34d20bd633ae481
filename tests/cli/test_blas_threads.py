"""A command starts no OpenBLAS thread pool when it loads numpy, and neither the command
nor its children keep the setting that prevents it (strongroom.repository.arrays); a
backup of a small vault does not load numpy at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_cli_startup import _backed_up_docs, run_cli

CHILD = """
import json, os, sys, threading
from strongroom import processes
from strongroom.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
report = {
    "code": code,
    "numpy_loaded_by_command": "numpy" in sys.modules,
    "setting": os.environ.get("OPENBLAS_NUM_THREADS"),
    "child_gets": processes.child_environment().get("OPENBLAS_NUM_THREADS"),
    "native_threads": len(os.listdir("/proc/self/task")),
    "python_threads": threading.active_count(),
}
open(sys.argv[1], "w").write(json.dumps(report))
"""


def _run(tmp_path, *args: str, env: dict[str, str] | None = None) -> dict:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(report), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert report.exists(), proc.stderr
    result = json.loads(report.read_text())
    assert result["code"] == 0, proc.stderr
    return result


def test_a_command_loads_numpy_without_blas_threads(tmp_path, monkeypatch):
    """A verify reading all data lists the index's entries by pack, from its tables:
    numpy is loaded, without BLAS threads and without the setting left behind."""
    _backed_up_docs(tmp_path, monkeypatch)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    result = _run(tmp_path, "vault", "verify", "--read-data")
    assert result["numpy_loaded_by_command"]
    assert result["setting"] is None
    assert result["child_gets"] is None
    assert result["native_threads"] == result["python_threads"]


def test_a_backup_of_a_small_vault_loads_no_numpy(tmp_path, monkeypatch):
    """A backup with new data, into a vault of a few blobs, keeps what it adds to the
    index without its tables: numpy is never loaded (strongroom.repository.index)."""
    _backed_up_docs(tmp_path, monkeypatch)
    (tmp_path / "data" / "b.txt").write_text("more")
    (tmp_path / "data" / "large.bin").write_bytes(bytes(3 << 20) + b"tail" * 300_000)
    result = _run(tmp_path, "backup", "docs")
    assert not result["numpy_loaded_by_command"]


def test_a_first_backup_into_a_new_vault_loads_no_numpy(tmp_path, monkeypatch):
    """The first backup asks a new vault's empty index what is missing and adds its packs
    to it: a small index without its tables, so numpy is never loaded."""
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRONGROOM_VAULT", str(tmp_path / "vault"))
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", "correct horse")
    (tmp_path / "data").mkdir()
    for n in range(30):
        (tmp_path / "data" / f"{n}.txt").write_text(f"file {n}\n" * n)
    (tmp_path / "data" / "large.bin").write_bytes(os.urandom(3 << 20))
    run_cli(tmp_path, "vault", "create", str(tmp_path / "vault"))
    run_cli(tmp_path, "protect", "files", "docs", "--path", str(tmp_path / "data"))
    result = _run(tmp_path, "backup", "docs")
    assert not result["numpy_loaded_by_command"]


def test_the_library_loads_numpy_without_blas_threads_nor_a_setting_left(tmp_path, monkeypatch):
    """Any strongroom module that loads numpy (here the index tables, as a program using
    strongroom as a library would) starts no BLAS threads and leaves no setting behind."""
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    code = ("import os, threading, strongroom.repository.indextables, sys; "
            "print(len(os.listdir('/proc/self/task')) == threading.active_count(), "
            "os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "None", "True"]


def test_a_setting_of_the_user_is_kept_and_passed_on(tmp_path, monkeypatch):
    _backed_up_docs(tmp_path, monkeypatch)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    result = _run(tmp_path, "vault", "verify", "--read-data")
    assert result["numpy_loaded_by_command"]
    assert result["setting"] == "2"
    assert result["child_gets"] == "2"


def test_import_numpy_loads_numpy_when_called_not_when_named():
    """A plugin may name strongroom.import_numpy at its import (the postgres block map
    does) without loading numpy: only a call loads it."""
    code = ("import sys; from strongroom import import_numpy; before = 'numpy' in sys.modules; "
            "np = import_numpy(); print(before, np is sys.modules['numpy'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
