"""Fixtures of the format tests: a PostgreSQL cluster for the fixtures' postgres points.

The cluster is the one the postgres workload tests start (``pgcluster.postgres_cluster``):
started once per session,
and only by tests of a fixture that has a postgres point.  Without the server binaries
those tests are skipped, except under ``CI`` where that is a failure.
"""

from __future__ import annotations

import pytest

from pgcluster import postgres_cluster


@pytest.fixture(scope="session")
def fixture_pg_cluster():
    with postgres_cluster() as cluster:
        yield cluster
