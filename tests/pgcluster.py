"""A PostgreSQL cluster of the postgres workload tests' kind, for tests in other folders.

The cluster is the one ``tests/postgres/conftest.py`` starts for its own tests (``pg_cluster``),
loaded here by path, since a conftest is not a module to import.  The format fixtures'
postgres points and the geo test of every workload restore into it.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Iterator

from strongroom.testing import unavailable

POSTGRES_CONFTEST = Path(__file__).resolve().parent / "postgres" / "conftest.py"


def _postgres_kit():
    spec = importlib.util.spec_from_file_location("strongroom_tests_pgkit", POSTGRES_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def postgres_cluster() -> Iterator:
    """A new cluster (``tests/postgres``'s ``Cluster``: ``socket``, ``port``, ``tables()``...)
    until the block ends; without the server binaries the test is skipped (failed under CI)."""
    kit = _postgres_kit()
    bindir = kit._bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    cluster = kit._start(bindir)
    try:
        yield cluster
    finally:
        kit._stop(cluster)
