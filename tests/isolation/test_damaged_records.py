"""A damaged key slot or job record does not take the rest down: another slot still opens
the vault, and the other jobs are still listed (issue 12: one bad object never takes
down the rest)."""

from __future__ import annotations

import json
import os

import pytest

from damagekit import DAMAGE


@pytest.fixture
def two_slots(cli, source):
    """A vault with its local slot and a passphrase slot, and one backup."""
    cli("vault", "create", cli.vault_url)
    cli("vault", "key", "add", "--new-passphrase-env", "PW", env={"PW": "a passphrase"})
    cli("protect", "files", "data", "--path", source)
    cli("backup", "data")
    return cli


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_slot_leaves_the_other_working(two_slots, how):
    """With the passphrase slot damaged, the local slot opens the vault; a slot that no
    longer parses (truncated) is named by key list in one warning line, the other listed."""
    cli = two_slots
    slots = json.loads(cli("vault", "key", "list", "--json").stdout)
    damaged = next(s["slot"] for s in slots if s["provider"] == "passphrase")
    DAMAGE[how](os.path.join(cli.vault_url, "keys", damaged))
    listed = cli("vault", "key", "list", "--json")
    if how == "truncation":
        assert [s["provider"] for s in json.loads(listed.stdout)] == ["local"]
        assert listed.stderr.count("\n") == 1 and damaged in listed.stderr
    cli("backup", "data")
    assert len(json.loads(cli("points", "data", "--json").stdout)) == 2


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_job_record_leaves_the_others_listed(two_slots, how):
    """A damaged job record is left out of jobs with one warning; the others are listed."""
    cli = two_slots
    jobs = json.loads(cli("jobs", "--json").stdout)
    folder = os.path.join(cli.vault_url, "jobs", jobs[0]["job_id"])
    for name in os.listdir(folder):
        DAMAGE[how](os.path.join(folder, name))
    listed = cli("jobs", "--json")
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [j["job_id"] for j in jobs[1:]]
    assert listed.stderr.count("\n") == 1 and jobs[0]["job_id"] in listed.stderr
