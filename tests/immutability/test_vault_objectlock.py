"""A vault in an object-lock bucket: what immutability locks, what the client's storage
credentials can and cannot do, prune under lock, and the extension of live objects.

Lock spans are seconds here (``vault.object_locks.day``), so that locks lapse within a test."""

from __future__ import annotations

import datetime as dt
import os

import attrs
import pytest
from botocore.exceptions import ClientError
from lockkit import unique, wait_until

from strongroom.errors import ObjectLocked
from strongroom.policy.security import Immutability, SoftDelete
from strongroom.repository.names import is_vault_name
from strongroom.storage.locking import is_transient_name, retention_of
from strongroom.testing import assert_same_tree, make_tree
from strongroom.vault import Vault


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _vault(server, bucket, *, day_seconds: float, identity: str = "client") -> Vault:
    options = server.client_storage_options if identity == "client" else server.storage_options
    vault = Vault.create(f"s3://{bucket}/{unique()}", storage_options=options)
    vault.object_locks.day = dt.timedelta(seconds=day_seconds)
    return vault


def _set(vault: Vault, state: str, lock_days: int = 1) -> None:
    current = vault.security.settings
    vault.security.change(attrs.evolve(current, immutability=Immutability(state=state, lock_days=lock_days)))


def _lockable(vault: Vault) -> list[str]:
    return [n for n in vault.store.list("") if is_vault_name(n) and not is_transient_name(n)]


def _packs(vault: Vault) -> set[str]:
    return set(vault.store.list("data/"))


@pytest.fixture
def source(tmp_path):
    return make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)


class TestWhatIsLocked:
    def test_governance_while_enabled_then_compliance_once_locked(self, strongroom_s3_server, lock_bucket,
                                                                  strongroom_isolated_home, source):
        """Objects written while enabled are GOVERNANCE; after lock, new ones COMPLIANCE; the client's
        credentials keep the old ones GOVERNANCE (counted), the admin's turn them COMPLIANCE."""
        vault = _vault(strongroom_s3_server, lock_bucket, day_seconds=30)
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        assert retention_of(vault.store, "strongroom.json") is None  # written before immutability
        _set(vault, "enabled")
        first = vault.object_locks.extend()
        assert first.ran and first.extended == len(_lockable(vault)) - 1  # less the journal entry it made
        assert {retention_of(vault.store, n).mode for n in _lockable(vault)} == {"GOVERNANCE"}
        old_packs = _packs(vault)
        _set(vault, "locked")
        report = vault.object_locks.extend()
        assert report.mode == "COMPLIANCE" and report.kept_governance > 0
        with open(os.path.join(source, "new.bin"), "wb") as f:
            f.write(os.urandom(300_000))
        vault.backup("src")
        new_packs = _packs(vault) - old_packs
        assert new_packs and all(retention_of(vault.store, p).mode == "COMPLIANCE" for p in new_packs)
        assert all(retention_of(vault.store, p).mode == "GOVERNANCE" for p in old_packs)
        admin = Vault.open(vault.url, storage_options=strongroom_s3_server.storage_options)
        admin.object_locks.day = vault.object_locks.day
        assert admin.object_locks.extend().kept_governance == 0
        assert {retention_of(vault.store, n).mode for n in _lockable(vault)} == {"COMPLIANCE"}

    def test_the_client_cannot_delete_or_shorten_any_version(self, strongroom_s3_server, lock_bucket,
                                                             strongroom_isolated_home, source):
        """With the client's storage credentials, every version of every vault object refuses
        DeleteObject (with and without the bypass flag) and a shorter retention."""
        server = strongroom_s3_server
        vault = _vault(server, lock_bucket, day_seconds=600)
        _set(vault, "enabled")
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        vault.object_locks.extend()
        raw = server.client("client")
        prefix = vault.url.split("/", 3)[3] + "/"
        versions = raw.list_object_versions(Bucket=lock_bucket, Prefix=prefix)["Versions"]
        checked = 0
        for v in versions:
            if is_transient_name(v["Key"][len(prefix):]):
                continue
            for bypass in ({}, {"BypassGovernanceRetention": True}):
                with pytest.raises(ClientError, match="AccessDenied"):
                    raw.delete_object(Bucket=lock_bucket, Key=v["Key"], VersionId=v["VersionId"], **bypass)
            with pytest.raises(ClientError, match="AccessDenied"):
                raw.put_object_retention(Bucket=lock_bucket, Key=v["Key"], VersionId=v["VersionId"], Retention={
                    "Mode": "GOVERNANCE", "RetainUntilDate": _now() + dt.timedelta(seconds=30)})
            checked += 1
        assert checked >= 10
        with pytest.raises(ObjectLocked):
            vault.store.delete(next(iter(_packs(vault))))

    def test_immutability_off_or_storage_without_lock_locks_nothing(self, strongroom_s3_server, lock_bucket,
                                                                    plain_bucket, strongroom_isolated_home):
        """No policy while immutability is disabled, nor on a bucket without object lock (client side only)."""
        vault = _vault(strongroom_s3_server, lock_bucket, day_seconds=30)
        assert vault.object_locks.policy() is None
        assert not vault.object_locks.extend().ran
        plain = _vault(strongroom_s3_server, plain_bucket, day_seconds=30)
        _set(plain, "enabled")
        assert plain.object_locks.policy() is None
        assert plain.object_locks.describe()["enforced_by_storage"] is False


class TestRawDeleteAndRecovery:
    def test_raw_deletes_only_hide_and_recover_objects_brings_every_point_back(
            self, strongroom_s3_server, lock_bucket, strongroom_isolated_home, strongroom_cli, source, tmp_path):
        """DeleteObject without a version id on every object hides the vault; recover-objects --apply
        brings it back, journaled, and every point restores byte for byte."""
        server = strongroom_s3_server
        vault = _vault(server, lock_bucket, day_seconds=600)
        _set(vault, "enabled")
        vault.protect("files", "src", {"paths": [source]})
        first = vault.backup("src")
        with open(os.path.join(source, "more.bin"), "wb") as f:
            f.write(os.urandom(200_000))
        second = vault.backup("src")
        raw = server.client("client")
        prefix = vault.url.split("/", 3)[3] + "/"
        keys = [o["Key"] for page in raw.get_paginator("list_objects_v2").paginate(Bucket=lock_bucket, Prefix=prefix)
                for o in page.get("Contents", [])]
        for key in keys:
            raw.delete_object(Bucket=lock_bucket, Key=key)
        assert list(vault.store.list("")) == []
        from strongroom.testing import VaultLocation

        cli = strongroom_cli(VaultLocation("s3", vault.url, server.client_storage_options))
        listed = cli("vault", "recover-objects", "--json")
        assert "strongroom.json" in listed.stdout and '"recovered": 0' in listed.stdout
        cli("vault", "recover-objects", "--apply")
        assert "No object of the vault is hidden" in cli("vault", "recover-objects").stdout
        again = Vault.open(vault.url, storage_options=server.client_storage_options)
        assert any(e.operation == "objects.recover" for e in again.journal.entries())
        for n, point in enumerate((first, second)):
            target = tmp_path / f"restore{n}"
            again.restore("src", point.point_id, str(target))
        assert_same_tree(source, str(tmp_path / "restore1") + source)
        assert not os.path.exists(str(tmp_path / "restore0") + source + "/more.bin")


class TestPruneUnderLock:
    def test_locked_garbage_is_kept_then_freed_and_never_extended(self, strongroom_s3_server, lock_bucket,
                                                                  strongroom_isolated_home, source):
        """An expired point whose header is locked stays; once it lapses the header goes and its data is
        marked; the extension skips marked data but moves live data forward; a later prune frees it."""
        vault = _vault(strongroom_s3_server, lock_bucket, day_seconds=15)
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
        _set(vault, "enabled")
        vault.set_prune_settings(attrs.evolve(vault.prune_settings, grace=0))
        vault.protect("files", "src", {"paths": [source]})
        doomed = vault.backup("src", retain_until=_now() + dt.timedelta(seconds=1))
        doomed_packs = _packs(vault)
        for name in os.listdir(source):
            path = os.path.join(source, name)
            if os.path.isfile(path):
                os.unlink(path)
        with open(os.path.join(source, "other.bin"), "wb") as f:
            f.write(os.urandom(300_000))
        vault.backup("src")
        live_packs = _packs(vault) - doomed_packs
        header_lock = retention_of(vault.store, doomed.object_name)
        wait_until(_now() + dt.timedelta(seconds=1))  # the point's retention has ended, not its lock
        first = vault.prune()
        assert first.kept_by_lock >= 1 and vault.store.exists(doomed.object_name)

        wait_until(header_lock.until)  # the header's lock lapsed (it was not extended)
        second = vault.prune()
        assert not vault.store.exists(doomed.object_name)
        assert second.blobs_marked > 0 and second.kept_by_lock >= 1  # the data's own locks still hold
        assert doomed_packs <= _packs(vault)
        before = {p: retention_of(vault.store, p).until for p in doomed_packs | live_packs}
        wait_until(_now() + dt.timedelta(seconds=2))
        extension = vault.object_locks.extend()
        assert extension.garbage >= len(doomed_packs)
        assert all(retention_of(vault.store, p).until == before[p] for p in doomed_packs)
        assert all(retention_of(vault.store, p).until > before[p] for p in live_packs)

        wait_until(max(before[p] for p in doomed_packs))
        third = vault.prune()
        assert third.kept_by_lock == 0 and not (doomed_packs & _packs(vault))
        report = vault.verify(read_data=True)
        assert report.ok, report.problems


class TestMaintenance:
    def test_run_due_extends_when_due_and_not_again(self, strongroom_s3_server, lock_bucket,
                                                    strongroom_isolated_home, source):
        """The agent's run_due extends the locks when due (an object-locks job), then says it is not due."""
        vault = _vault(strongroom_s3_server, lock_bucket, day_seconds=300)
        _set(vault, "enabled")
        vault.protect("files", "src", {"paths": [source]})
        vault.backup("src")
        pack = next(iter(_packs(vault)))
        before = retention_of(vault.store, pack).until
        wait_until(_now(), slack=1.5)  # dates are whole seconds
        assert vault.object_locks.due()[0]
        vault.run_due()
        jobs = vault.jobs.list(type_="object-locks")
        assert jobs and jobs[-1].state == "completed" and jobs[-1].details["extended"] > 0
        assert retention_of(vault.store, pack).until > before
        due, reason = vault.object_locks.due()
        assert not due and "less than a third" in reason
        assert vault.object_locks.describe()["last_extension"] is not None

    def test_removing_a_locked_key_slot_is_a_clear_error(self, strongroom_s3_server, lock_bucket,
                                                         strongroom_isolated_home, strongroom_cli):
        """key remove on a slot still locked: ObjectLocked (exit 22) in one line, the slot stays."""
        from strongroom.testing import VaultLocation

        server = strongroom_s3_server
        location = VaultLocation("s3", f"s3://{lock_bucket}/{unique()}", server.client_storage_options)
        cli = strongroom_cli(location)
        cli("vault", "create", location.url)
        cli("vault", "key", "add", "--new-passphrase-env", "PW", env={"PW": "correct horse battery"})
        cli("vault", "immutability", "enable")
        slots = Vault.open(location.url, storage_options=location.storage_options).keys.list()
        refused = cli("vault", "key", "remove", slots[-1].slot_id, expect=22)
        assert "locked on storage until" in refused.stderr and "Traceback" not in refused.stderr
        assert len(Vault.open(location.url, storage_options=location.storage_options).keys.list()) == len(slots)

    def test_describe_locking_for_vault_security(self, strongroom_s3_server, lock_bucket, plain_bucket,
                                                 strongroom_isolated_home):
        """describe_locking says whether the storage can lock, and how, in one line."""
        from strongroom.storage import describe_locking, open_store

        locked = describe_locking(open_store(f"s3://{lock_bucket}/x", strongroom_s3_server.client_storage_options))
        assert locked["enabled"] and "strongroom locks each object" in locked["description"]
        plain = describe_locking(open_store(f"s3://{plain_bucket}/x", strongroom_s3_server.client_storage_options))
        assert plain == {**plain, "enabled": False, "description": "no object lock"}
