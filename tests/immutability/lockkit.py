"""Fixtures of the immutability tests: object-lock buckets on the session's SeaweedFS."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest


@pytest.fixture
def lock_bucket(strongroom_s3_server):
    """A new bucket created with object lock (versioned, no default retention).

    Not removed afterwards: what its tests lock stays until the retention lapses, and the
    server's data folder goes with the session."""
    return strongroom_s3_server.create_bucket(object_lock=True)


@pytest.fixture
def plain_bucket(strongroom_s3_server):
    """A new bucket without object lock."""
    name = strongroom_s3_server.create_bucket()
    yield name
    strongroom_s3_server.delete_bucket(name)


def wait_until(moment: dt.datetime, *, slack: float = 1.2) -> None:
    """Sleep until ``moment`` (UTC) has passed on this machine's clock, plus ``slack``
    seconds: the server truncates retain-until dates to the second."""
    pause = (moment - dt.datetime.now(dt.timezone.utc)).total_seconds() + slack
    if pause > 0:
        time.sleep(pause)


def unique(prefix: str = "vault") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
