"""Fixtures of the format tests: a PostgreSQL cluster for the fixtures' postgres points.

The cluster is the one the postgres workload tests start (``tests/postgres/conftest.py``,
loaded by path, since a conftest is not a module to import): started once per session,
and only by tests of a fixture that has a postgres point.  Without the server binaries
those tests are skipped, except under ``CI`` where that is a failure.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from strongroom.testing import unavailable


def _postgres_kit():
    path = Path(__file__).resolve().parents[1] / "postgres" / "conftest.py"
    spec = importlib.util.spec_from_file_location("strongroom_format_pgkit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixture_pg_cluster():
    kit = _postgres_kit()
    bindir = kit._bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    cluster = kit._start(bindir)
    try:
        yield cluster
    finally:
        kit._stop(cluster)
