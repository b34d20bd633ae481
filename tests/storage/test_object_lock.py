"""Object lock on S3: the store reports the bucket's lock, and a vault works inside a locked bucket."""

from __future__ import annotations

import pytest

from strongroom.errors import StorageError
from strongroom.storage import ObjectLock, capabilities_of, object_lock_of, open_store
from strongroom.storage.s3 import parse_object_lock
from strongroom.testing import assert_same_tree, make_tree
from strongroom.vault import Vault


def _store(server, bucket):
    return open_store(f"s3://{bucket}/vault", server.storage_options, create=True)


class TestParse:
    def test_answers_of_get_object_lock_configuration(self):
        """Enabled with a default retention, enabled alone, and disabled answers are read right."""
        full = {"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
                                            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 2}}}}
        assert parse_object_lock(full) == ObjectLock(True, "COMPLIANCE", None, 2)
        assert parse_object_lock({"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}}) == ObjectLock(True)
        assert parse_object_lock({}) == ObjectLock()
        assert "2 year(s)" in ObjectLock(True, "COMPLIANCE", None, 2).describe()


class TestS3ObjectLock:
    def test_plain_bucket_has_no_object_lock(self, strongroom_s3_server):
        """A bucket created without object lock reports none."""
        bucket = strongroom_s3_server.create_bucket()
        store = _store(strongroom_s3_server, bucket)
        assert capabilities_of(store).object_lock
        assert object_lock_of(store) == ObjectLock()
        strongroom_s3_server.delete_bucket(bucket)

    def test_locked_bucket_reports_its_default_retention(self, strongroom_s3_server):
        """A bucket with object lock and a COMPLIANCE default retention reports both."""
        bucket = strongroom_s3_server.create_bucket(object_lock=True, retention=("COMPLIANCE", 1))
        lock = object_lock_of(_store(strongroom_s3_server, bucket))
        assert lock == ObjectLock(enabled=True, mode="COMPLIANCE", days=1)
        assert lock.default_retention

    def test_enabled_without_default_retention(self, strongroom_s3_server):
        """Object lock switched on without a default retention is reported as such."""
        bucket = strongroom_s3_server.create_bucket(object_lock=True)
        lock = object_lock_of(_store(strongroom_s3_server, bucket))
        assert lock.enabled and not lock.default_retention

    def test_vault_in_a_locked_bucket_backs_up_and_its_objects_are_locked(
        self, strongroom_s3_server, strongroom_isolated_home, tmp_path
    ):
        """Every object a vault writes under a COMPLIANCE default is locked: deleting its version is refused."""
        server = strongroom_s3_server
        bucket = server.create_bucket(object_lock=True, retention=("COMPLIANCE", 1))
        url = f"s3://{bucket}/vault"
        source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)
        vault = Vault.create(url, storage_options=server.storage_options)
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        target = tmp_path / "restore"
        vault.restore("src", None, str(target))
        assert_same_tree(source, str(target) + source)
        client = server.client()
        pack = next(iter(vault.store.list("data/")))
        head = client.head_object(Bucket=bucket, Key=f"vault/{pack}")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        with pytest.raises(Exception, match="AccessDenied"):
            client.delete_object(Bucket=bucket, Key=f"vault/{pack}", VersionId=head["VersionId"])

    def test_missing_permission_is_an_error_not_a_guess(self, strongroom_s3_server):
        """A failure other than "no configuration" raises StorageError instead of answering "none"."""
        store = open_store("s3://strongroom-no-such-bucket-x/vault", strongroom_s3_server.storage_options)
        with pytest.raises(StorageError):
            object_lock_of(store)
