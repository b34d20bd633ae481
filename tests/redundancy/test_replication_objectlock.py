"""A geo secondary in an S3 object-lock bucket: while the vault's immutability is on, every copy
is locked as the primary's writes are (GOVERNANCE while enabled, COMPLIANCE once locked, for
the vault's lock span from the copy; transient objects never), and a deletion the lock
refuses waits for a later run.

Lock spans are seconds here (``vault.object_locks.day``), so that locks lapse within a test.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import attrs

from geokit import configure, write_files
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.security import Immutability
from strongroom.repository.names import is_vault_name
from strongroom.storage import open_store
from strongroom.storage.locking import is_transient_name, retention_of
from strongroom.vault import Vault

DAY = dt.timedelta(seconds=6)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _set(vault: Vault, state: str) -> None:
    current = vault.security.settings
    vault.security.change(attrs.evolve(current, immutability=Immutability(state=state, lock_days=1)))


def _names(store) -> set[str]:
    return {n for n in store.list("") if is_vault_name(n) and not n.startswith("leases/")}


def test_copies_to_an_object_lock_secondary_are_locked_as_the_primary_s_writes(
        strongroom_home, strongroom_s3_server, tmp_path, monkeypatch):
    """Copied objects carry GOVERNANCE (enabled) then COMPLIANCE (locked) until the copy + the span;
    a deletion of a locked copy is deferred, and done by the first run after the lock lapsed."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # only the runs below replicate
    bucket = strongroom_s3_server.create_bucket(object_lock=True)
    configure(strongroom_home, strongroom_s3_server, bucket)
    secondary_url = f"s3://{bucket}/vault"
    vault = Vault.create(str(tmp_path / "primary"), name="p", redundancy=Redundancy("geo", secondary_url))
    vault.object_locks.day = DAY
    src = write_files(tmp_path / "src", count=3)
    vault.protect("files", "docs", {"paths": [str(src)]})
    vault.backup("docs")
    _set(vault, "enabled")
    secondary = open_store(secondary_url, strongroom_s3_server.storage_options)

    before = _now()
    first = vault.replicate()
    after = _now()
    assert first.complete and first.copied > 5
    copied = _names(secondary)
    assert not [n for n in secondary.list("") if not is_vault_name(n)]  # the probe did not stay behind
    for name in copied:
        retention = retention_of(secondary, name)
        if is_transient_name(name):
            assert retention is None, name
        else:
            assert retention is not None and retention.mode == "GOVERNANCE", name
            assert before + DAY - dt.timedelta(seconds=1) <= retention.until <= after + DAY + dt.timedelta(seconds=1)

    _set(vault, "locked")
    (src / "new.bin").write_bytes(os.urandom(50_000))
    vault.backup("docs")
    assert vault.replicate().complete
    new = _names(secondary) - copied
    assert any(n.startswith("data/") for n in new) and any(n.startswith("points/") for n in new)
    assert {retention_of(secondary, n).mode for n in new if not is_transient_name(n)} == {"COMPLIANCE"}

    # a document the primary no longer has: its locked copy stays until the lock lapses
    gone = sorted(n for n in _names(vault.store) if n.startswith("jobs/"))[-1]
    locked_until = retention_of(secondary, gone).until
    os.unlink(tmp_path / "primary" / gone)
    report = vault.replicate()
    assert report.complete and report.deferred_deletes >= 1 and secondary.exists(gone)
    time.sleep(max(0.0, (locked_until - _now()).total_seconds()) + 1.5)  # the server counts whole seconds
    report = vault.replicate()
    assert report.complete and not secondary.exists(gone)
    assert Vault.open(secondary_url).verify().ok


def test_a_complete_run_extends_the_secondary_s_locks_when_due(strongroom_home, strongroom_s3_server, tmp_path,
                                                              monkeypatch):
    """Objects copied before immutability was on get locked by the next complete run (an extension is due
    at once); the run after it, within a third of the span, extends nothing."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")
    bucket = strongroom_s3_server.create_bucket(object_lock=True)
    configure(strongroom_home, strongroom_s3_server, bucket)
    secondary_url = f"s3://{bucket}/vault"
    vault = Vault.create(str(tmp_path / "primary"), name="p", redundancy=Redundancy("geo", secondary_url))
    vault.object_locks.day = dt.timedelta(seconds=60)
    vault.protect("files", "docs", {"paths": [str(write_files(tmp_path / "src", count=3))]})
    vault.backup("docs")
    assert vault.replicate().complete
    secondary = open_store(secondary_url, strongroom_s3_server.storage_options)
    pack = sorted(secondary.list("data/"))[0]
    point = sorted(secondary.list("points/"))[0]
    assert retention_of(secondary, pack) is None  # copied while immutability was off

    _set(vault, "enabled")
    assert vault.replicate().complete
    first = {name: retention_of(secondary, name) for name in (pack, point)}
    assert {r.mode for r in first.values()} == {"GOVERNANCE"}
    assert all(r.until > _now() + dt.timedelta(seconds=30) for r in first.values())
    state = strongroom_home / "object-locks" / f"{vault.vault_id}.secondary.json"
    assert state.exists()

    assert vault.replicate().complete  # not due again yet
    assert {name: retention_of(secondary, name) for name in (pack, point)} == first
