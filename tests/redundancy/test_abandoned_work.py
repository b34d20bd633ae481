"""Work a command stopped waiting for ends quietly: a bounded replication (or secondary probe)
left behind at its bound stops retrying, logs nothing into a later command of the same
process, and its threads end at their next failure."""

from __future__ import annotations

import logging
import threading

import pytest

from geokit import write_files
from strongroom.errors import TransientStorageError
from strongroom.policy.redundancy import Redundancy
from strongroom.services.bounded import Late, run_bounded
from strongroom.services.replication import DaemonPool
from strongroom.storage.faults import FaultPlan, FaultyStore
from strongroom.storage.retry import Abandoned, RetryingStore, abandoning
from strongroom.testing import Cli
from strongroom.vault import Vault
from vaultkit import wait_until


class Unreachable:
    """A store whose every call fails transiently, counting the calls."""

    url = "test://unreachable"

    def __init__(self) -> None:
        self.calls = 0

    def get(self, name: str) -> bytes:
        self.calls += 1
        raise TransientStorageError(message="connection refused")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def records():
    """Every record of the strongroom loggers at warning or above, from now on."""
    logger = logging.getLogger("strongroom")
    handler = Records()
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_an_abandoned_call_is_not_retried_and_logs_nothing(records):
    """Retries and their warnings go on while someone waits; once the work is abandoned a
    transient failure ends the call at once, without a warning."""
    inner = Unreachable()
    store = RetryingStore(inner, attempts=4, sleep=lambda s: None)
    with pytest.raises(Exception, match="failed after 4 attempts"):
        store.get("x")
    assert inner.calls == 4 and len(records) == 3

    records.clear()
    inner.calls = 0
    event = threading.Event()
    event.set()
    with abandoning(event), pytest.raises(Abandoned, match="given up"):
        store.get("x")
    assert inner.calls == 0 and records == []  # not even begun


def test_bounded_work_left_behind_is_abandoned_in_its_pool_threads_too(records):
    """run_bounded raises Late at its bound; the work goes on, and its calls, in its own
    thread and in a DaemonPool's, end at their first failure without retrying or logging."""
    inner = Unreachable()
    store = RetryingStore(inner, attempts=1000, base_delay=0.01, max_delay=0.01)
    late = threading.Event()
    outcome: dict[str, object] = {}

    def work() -> None:
        late.wait()  # until the caller stopped waiting
        with DaemonPool(2, "test-pool") as pool:
            future = pool.submit(store.get, "in-a-pool")
            try:
                future.result()
            except Exception as exc:
                outcome["pool"] = exc
        try:
            store.get("in-the-thread")
        except Exception as exc:
            outcome["thread"] = exc

    with pytest.raises(Late):
        run_bounded(work, 0.05, name="test-bounded")
    late.set()
    wait_until(lambda: not any(t.name == "test-bounded" for t in threading.enumerate()), "the work ended")
    assert isinstance(outcome["pool"], Abandoned) and isinstance(outcome["thread"], Abandoned)
    assert inner.calls <= 2 and records == []


def test_a_replication_left_behind_writes_nothing_into_later_commands(strongroom_home, tmp_path, monkeypatch, records):
    """A backup whose replication, to a secondary failing every call, outlives its bound:
    once the command returned nothing of it is logged (it would land in the next command's
    output) and its threads end at their next failure instead of retrying for seconds."""
    from strongroom import vault as vault_module

    def open_store(url, storage_options=None, *, create=False, retry=True, **kwargs):
        bare = bare_open(url, storage_options, create=create, retry=False, **kwargs)
        if "secondary" in url:  # every call fails, and is retried fifty times
            return RetryingStore(FaultyStore(bare, FaultPlan(transient=1.0)), attempts=50, base_delay=0.1, max_delay=0.2)
        return RetryingStore(bare) if retry else bare
    bare_open = vault_module.open_store
    monkeypatch.setattr(vault_module, "open_store", open_store)
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0.3")
    vault = Vault.create(str(tmp_path / "primary"), name="geo",
                         redundancy=Redundancy("geo", str(tmp_path / "secondary")))
    vault.protect("files", "docs", {"paths": [str(write_files(tmp_path / "src", count=2))]})
    cli = Cli(vault.url)
    cli("backup", "docs")
    records.clear()  # what follows comes from work left behind
    wait_until(lambda: not any(t.name.startswith(("strongroom-replication", "replicate"))
                               for t in threading.enumerate()), "the abandoned replication threads ended")
    assert records == []
    assert cli("points", "docs").stderr == ""
