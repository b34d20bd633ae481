"""The server's own jobs: missed-schedule alerts, the prune when due, a daily verify reading a
share of the data, for every hosted vault, one vault's failure never stopping the others."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from strongroom.plugins import PluginHost
from strongroom.policy.record import Policy
from strongroom.policy.retention import RetentionRules
from strongroom.policy.schedule import Schedule
from strongroom.server.app import ServerState
from strongroom.server.hosted import Hosted, create_hosted
from strongroom.server.jobs import ServerJobs
from strongroom.server.serverdir import ServerDir
from strongroom.testing import make_tree
from vaultkit import Clock


@pytest.fixture
def served(tmp_path, strongroom_isolated_home):
    """A server folder hosting vault 'main' with item 'docs' (daily policy, one backup), its clock the test's."""
    sdir, _ = ServerDir.init(tmp_path / "srv")
    plugins = PluginHost.create()
    create_hosted(sdir, "main", str(tmp_path / "vault"), {}, plugins)
    clock = Clock(dt.datetime.now(dt.timezone.utc))
    state = ServerState(sdir, Hosted(sdir, plugins, clock=clock), clock=clock)
    vault = state.hosted.vault("main")
    source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)
    vault.policies.create(Policy("daily", Schedule("daily", times=("01:00",)), RetentionRules(daily=30)))
    vault.protect("files", "docs", {"paths": [source]}, policy="daily")
    vault.backup("docs")
    return state, clock, tmp_path


def test_a_pass_alerts_prunes_and_verifies_then_waits_for_the_next_day(served):
    state, clock, _ = served
    clock.now += dt.timedelta(days=4)  # the item missed its schedule; the prune is due
    jobs = ServerJobs(state)
    (upkeep,) = jobs.run_once()
    assert upkeep.error == "", upkeep
    assert upkeep.alerts == 1 and upkeep.pruned and upkeep.verified and upkeep.verify == "0 problem(s)"
    vault = state.hosted.vault("main").reopen()
    types = [job.type for job in vault.jobs.list()]
    assert "prune" in types and "verify" in types
    verify = vault.jobs.list(type_="verify")[-1]
    assert verify.details.get("subset") == "15%" and verify.state == "completed"
    assert [a.kind for a in vault.alerts.list()] == ["schedule.missed"]
    (again,) = jobs.run_once()  # nothing is due any more: no second verify, no second alert
    assert not again.verified and again.alerts == 1 and not again.pruned
    clock.now += dt.timedelta(days=1, minutes=1)
    (next_day,) = jobs.run_once()
    assert next_day.verified


def test_one_broken_vault_does_not_stop_the_others(served):
    state, clock, tmp_path = served
    state.dir.add_vault("gone", str(tmp_path / "no-such-vault"), {})
    upkeep = {u.vault: u for u in ServerJobs(state).run_once()}
    assert set(upkeep) == {"gone", "main"}
    assert upkeep["gone"].error and "\n" not in upkeep["gone"].error
    assert upkeep["main"].error == "" and upkeep["main"].verified


def test_the_thread_runs_a_pass_then_stops_when_asked(served):
    state, _, _ = served
    jobs = ServerJobs(state, interval=3600)
    jobs.start()
    for _ in range(600):  # the first pass runs at once (bounded wait, no timing asserted)
        if jobs.passes:
            break
        time.sleep(0.1)
    assert jobs.passes == 1
    assert state.hosted.vault("main").reopen().jobs.list(type_="verify")
    jobs.stop(timeout=60)
    assert not jobs._thread.is_alive() and jobs.passes == 1
