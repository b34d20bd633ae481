"""Per-object retention, versioned deletes and hidden objects on an S3 object-lock bucket."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from lockkit import wait_until

from strongroom.errors import ObjectLocked, ObjectNotFound, StorageError
from strongroom.storage import open_store
from strongroom.storage.faults import FaultPlan, FaultyStore
from strongroom.storage.locking import (
    LockingStore,
    LockPolicy,
    Retention,
    hidden_objects,
    lock_object,
    retention_of,
    unhide,
)
from strongroom.storage.retry import RetryingStore


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _store(server, bucket, *, client=True):
    options = server.client_storage_options if client else server.storage_options
    return open_store(f"s3://{bucket}/vault", options, create=True)


def _versions(server, bucket, key):
    answer = server.client().list_object_versions(Bucket=bucket, Prefix=key)
    return ([v for v in answer.get("Versions", []) if v["Key"] == key],
            [m for m in answer.get("DeleteMarkers", []) if m["Key"] == key])


class TestRetention:
    def test_lock_and_read_back_with_the_client_identity(self, strongroom_s3_server, lock_bucket):
        """The client identity locks an object in GOVERNANCE and reads the date back (to the second)."""
        store = _store(strongroom_s3_server, lock_bucket)
        store.put("keys/a", b"slot")
        assert retention_of(store, "keys/a") is None
        until = _now() + dt.timedelta(hours=1)
        got = lock_object(store, "keys/a", until, "GOVERNANCE")
        assert got == Retention("GOVERNANCE", until.replace(microsecond=0))
        assert retention_of(store, "keys/a") == got

    def test_the_client_cannot_delete_a_locked_version_nor_shorten_it(self, strongroom_s3_server, lock_bucket):
        """Raw DeleteObject with the version id and a shorter retention are AccessDenied for the client."""
        store = _store(strongroom_s3_server, lock_bucket)
        store.put("data/x", b"pack")
        lock_object(store, "data/x", _now() + dt.timedelta(hours=1), "GOVERNANCE")
        raw = strongroom_s3_server.client("client")
        (version,), _ = _versions(strongroom_s3_server, lock_bucket, "vault/data/x")
        for bypass in ({}, {"BypassGovernanceRetention": True}):
            with pytest.raises(ClientError, match="AccessDenied"):
                raw.delete_object(Bucket=lock_bucket, Key="vault/data/x", VersionId=version["VersionId"], **bypass)
        with pytest.raises(ClientError, match="AccessDenied"):
            raw.put_object_retention(Bucket=lock_bucket, Key="vault/data/x", Retention={
                "Mode": "GOVERNANCE", "RetainUntilDate": _now() + dt.timedelta(minutes=1)})
        assert store.get("data/x") == b"pack"

    def test_retention_only_moves_forward(self, strongroom_s3_server, lock_bucket):
        """Asking for an earlier date keeps the later one; a later one is applied."""
        store = _store(strongroom_s3_server, lock_bucket)
        store.put("items/i", b"doc")
        far = _now() + dt.timedelta(hours=2)
        lock_object(store, "items/i", far, "GOVERNANCE")
        assert lock_object(store, "items/i", _now() + dt.timedelta(hours=1), "GOVERNANCE").until == far.replace(
            microsecond=0)
        farther = far + dt.timedelta(hours=1)
        assert lock_object(store, "items/i", farther, "GOVERNANCE").until == farther.replace(microsecond=0)

    def test_governance_to_compliance_needs_the_bypass(self, strongroom_s3_server, lock_bucket):
        """The client keeps GOVERNANCE (date moved forward); the admin's credentials change it to COMPLIANCE."""
        client, admin = _store(strongroom_s3_server, lock_bucket), _store(strongroom_s3_server, lock_bucket,
                                                                           client=False)
        client.put("points/p", b"header")
        lock_object(client, "points/p", _now() + dt.timedelta(minutes=30), "GOVERNANCE")
        later = _now() + dt.timedelta(hours=1)
        assert lock_object(client, "points/p", later, "COMPLIANCE") == Retention("GOVERNANCE",
                                                                                later.replace(microsecond=0))
        assert lock_object(admin, "points/p", later, "COMPLIANCE").mode == "COMPLIANCE"
        assert retention_of(client, "points/p").mode == "COMPLIANCE"

    def test_missing_object_and_storage_without_lock(self, strongroom_s3_server, lock_bucket, plain_bucket, tmp_path):
        """A missing object is ObjectNotFound; a plain bucket and a local folder cannot lock (StorageError)."""
        store = _store(strongroom_s3_server, lock_bucket)
        with pytest.raises(ObjectNotFound):
            lock_object(store, "data/none", _now() + dt.timedelta(minutes=5), "GOVERNANCE")
        plain = _store(strongroom_s3_server, plain_bucket)
        plain.put("a", b"1")
        with pytest.raises(StorageError):
            lock_object(plain, "a", _now() + dt.timedelta(minutes=5), "GOVERNANCE")
        local = open_store(str(tmp_path / "v"), create=True)
        local.put("a", b"1")
        with pytest.raises(StorageError, match="cannot lock objects"):
            lock_object(local, "a", _now() + dt.timedelta(minutes=5), "GOVERNANCE")
        with pytest.raises(StorageError, match="cannot lock objects"):
            hidden_objects(local)

    def test_decorators_pass_the_operations_through(self, strongroom_s3_server, lock_bucket):
        """Retry and fault decorators answer the lock operations from the store under them."""
        inner = _store(strongroom_s3_server, lock_bucket)
        store = RetryingStore(FaultyStore(inner, FaultPlan(seed=1)))
        store.put("settings/s", b"x")
        until = _now() + dt.timedelta(minutes=10)
        assert lock_object(store, "settings/s", until, "GOVERNANCE").mode == "GOVERNANCE"
        assert retention_of(store, "settings/s").until == until.replace(microsecond=0)


class TestVersionedDelete:
    def test_delete_frees_every_version_and_leaves_no_marker(self, strongroom_s3_server, lock_bucket):
        """strongroom's delete on a versioned bucket removes the versions (and markers): nothing is left."""
        store = _store(strongroom_s3_server, lock_bucket)
        store.put("jobs/j", b"one")
        store.put("jobs/j", b"two")
        assert len(_versions(strongroom_s3_server, lock_bucket, "vault/jobs/j")[0]) == 2
        store.delete("jobs/j")
        store.delete("jobs/j")  # idempotent
        assert _versions(strongroom_s3_server, lock_bucket, "vault/jobs/j") == ([], [])
        assert not store.exists("jobs/j")

    def test_a_retained_version_raises_object_locked_and_stays_readable(self, strongroom_s3_server, lock_bucket):
        """Delete under retention: ObjectLocked (exit 22) naming the date; freed once the retention lapsed."""
        store = _store(strongroom_s3_server, lock_bucket)
        store.put("data/p", b"pack bytes")
        until = lock_object(store, "data/p", _now() + dt.timedelta(seconds=3), "GOVERNANCE").until
        with pytest.raises(ObjectLocked) as raised:
            store.delete("data/p")
        assert raised.value.exit_code == 22 and "data/p" in str(raised.value) and "GOVERNANCE" in str(raised.value)
        assert store.get("data/p") == b"pack bytes"
        wait_until(until)
        store.delete("data/p")
        assert _versions(strongroom_s3_server, lock_bucket, "vault/data/p") == ([], [])


class TestHiddenObjects:
    def test_a_raw_delete_only_hides_and_unhide_brings_it_back(self, strongroom_s3_server, lock_bucket):
        """DeleteObject without a version id leaves a marker; hidden_objects names it; unhide restores it."""
        store = LockingStore(_store(strongroom_s3_server, lock_bucket),
                             lambda: LockPolicy("GOVERNANCE", dt.timedelta(minutes=10)))
        store.put("points/a/b", b"header")
        store.put("leases/l", b"lease")
        raw = strongroom_s3_server.client("client")
        raw.delete_object(Bucket=lock_bucket, Key="vault/points/a/b")
        assert not store.exists("points/a/b")
        assert [h.name for h in hidden_objects(store)] == ["points/a/b"]
        assert hidden_objects(store, "leases/") == []
        assert unhide(store, "points/a/b") is True
        assert store.get("points/a/b") == b"header"
        assert hidden_objects(store) == [] and unhide(store, "points/a/b") is False


class TestLockingStore:
    def test_puts_are_locked_but_transient_objects_are_not(self, strongroom_s3_server, lock_bucket):
        """Every put is locked in the policy's mode; leases, claims, prune marks and heads are not."""
        mode = ["GOVERNANCE"]
        store = LockingStore(_store(strongroom_s3_server, lock_bucket),
                             lambda: LockPolicy(mode[0], dt.timedelta(minutes=10)) if mode[0] else None)
        store.put("index/i", b"1")
        store.put("leases/l", b"2")
        store.put("prune/c/mark", b"3")
        mode[0] = None
        store.put("items/x", b"4")
        assert retention_of(store, "index/i").mode == "GOVERNANCE"
        assert retention_of(store, "leases/l") is None and retention_of(store, "prune/c/mark") is None
        assert retention_of(store, "items/x") is None
        assert store.locked == 1
        store.delete("leases/l")
        with pytest.raises(ObjectLocked):
            store.delete("index/i")
