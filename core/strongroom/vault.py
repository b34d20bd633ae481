"""The Vault facade: the one door to a vault for the command line, the server and hooks.

A :class:`Vault` composes the services that do the work (:mod:`strongroom.services`):
items and their lifecycle, policies and retention, backup, restore, verify, repair, prune,
scheduled runs, jobs and key slots.  Each of its methods hands the call to one of them;
it holds no logic of its own but opening and creating vaults, and binding the plugins'
hooks (:class:`PluginHooks`) so that the services can call them without knowing the
vault.  Every method that changes the vault is journaled (:mod:`strongroom.services.journal`:
``started`` before it acts, its outcome after) under an operation name (``items.protect``,
``backup``, ``policy.update``...) with the parameters that identify the change, never a
secret; :class:`Journaled` does it for the services the facade exposes as they are.  Everything that depends on the time asks ``vault.clock()`` (UTC now by
default); tests replace it to replay months of backups and prunes in a moment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Iterator, Sequence

from .config import storage_options_for
from .contexts import PointView
from .errors import IntegrityError, ObjectNotFound, SecurityError, StorageError, StrongroomError, UnsupportedFormat
from .errors import VaultExists, VaultNotFound
from .home import strongroom_home
from .models import DELETED, FORMAT_VERSION, KNOWN_FEATURES, Job, ProtectedItem, RecoveryPoint, VaultConfig, VaultSettings
from .models import ZERO_RUNS_FEATURE
from .models import iso, new_id, time_id, utcnow
from .plugins import PluginHost
from .policy.redundancy import Redundancy, RedundancyLocked, check_redundancy
from .policy.security import SecuritySettings
from .repository import keyring
from .repository.indexstate import IndexState
from .repository.keyproviders import KeyContext, PassphraseSource
from .repository.masterkey import KeySlot, MasterKey
from .repository.repository import Repository
from .services import alertrules, geo
from .services.alerts import Alert, AlertBook
from .services.alertsinks import SinkBook
from .services.backup import BackupService
from .services.objectlocks import ObjectLockService
from .services.head import HeadService, Rollback
from .services.items import ItemBook
from .services.jobs import JobLog
from .services.keys import KeySlots
from .services.datakeys import DataKeys, KeyChecks, read_only_reason, use_current
from .services.lifecycle import Lifecycle, StopPlan
from .services.points import DeletedPoint, PointBook, PointSurvey
from .services.policies import PolicyBook
from .services.restore import RestoreService
from .services.retention import Retention
from .services.journal import Journal
from .services.security import SecurityService
from .services.softdelete import Deletion, SoftDeletion
from .services.settings import SettingsBook, newest_settings
from .services.slotuse import record_use
from .services.upgrade import UpgradeReport, UpgradeService, format_in_force, newer_format
from .services.verify import VerifyService
from .storage import Store, open_store
from .storage.locking import LockingStore, LockPolicy
from .storage.readonly import ReadOnlyStore

if TYPE_CHECKING:
    import pluggy

    from .catalog.seekable import SeekableReader
    from .catalog.tree import TreeReader
    from .results import BackupStats
    from .services.drill import DrillReport
    from .services.heal import Secondary
    from .services.prune import PruneReport, PruneService
    from .services.repair import Heal, RepairReport, RepairService
    from .services.schedule import DueReport, Scheduler, ScheduleRow
    from .services.replication import ReplicationReport
    from .services.vaultdelete import DeleteReport
    from .engine.verify import VerifyReport
    from .policy.prunesettings import PruneSettings
    from .policy.record import Policy
    from .policy.retention import RetentionFloors
    from .repository.chunker import ChunkerParams
    from .repository.datakeys import DataKey
    from .results import RestoreResult, RestoreStats
    from .workload import BrowseItem, Workload

__all__ = ["CONFIG_NAME", "Journaled", "PluginHooks", "Vault"]

CONFIG_NAME = "strongroom.json"


class PluginHooks:
    """The services' hook calls (:class:`~strongroom.services.hooks.VaultHooks`), made to
    the plugins with ``vault`` as the hooks' ``vault`` argument."""

    def __init__(self, relay: pluggy.HookRelay, vault: Vault) -> None:
        self.relay = relay
        self.vault = vault

    def before_backup(self, item: ProtectedItem) -> None:
        self.relay.strongroom_before_backup(vault=self.vault, item=item)

    def around_backup(self, item: ProtectedItem, run: Callable[[], RecoveryPoint]) -> RecoveryPoint:
        # firstresult hook: the plugins' wrappers run around the core's own implementation
        return self.relay.strongroom_backup_wrapper.call_extra(
            [lambda vault, item: run()], {"vault": self.vault, "item": item})

    def point_created(self, item: ProtectedItem, point: RecoveryPoint) -> None:
        self.relay.strongroom_point_created(vault=self.vault, point=point)
        self.relay.strongroom_after_backup(vault=self.vault, item=item, point=point)

    def after_restore(self, point: RecoveryPoint, target: str | None) -> None:
        self.relay.strongroom_after_restore(vault=self.vault, point=point, target=target)

    def job_finished(self, job: Job) -> None:
        alertrules.job_finished(self.vault.alerts, job)  # a failed job raises an alert, never an error
        self.relay.strongroom_job_finished(vault=self.vault, job=job)

    def retention_tags(self, point: RecoveryPoint, policy: Policy | None) -> list[str]:
        answers = self.relay.strongroom_retention_tags(vault=self.vault, point=point, policy=policy)
        return [str(tag) for answer in answers for tag in answer or ()]

    def validate_policy(self, policy: Policy) -> None:
        self.relay.strongroom_policy_validate(vault=self.vault, policy=policy)

    def rollback_detected(self, found: Rollback) -> None:
        """The vault's storage went back to an older state (:mod:`strongroom.services.head`):
        a security alert; the command that checked reports it too (a warning, a problem or
        an error)."""
        alertrules.rollback_detected(self.vault.alerts, found)


class Journaled:
    """``target`` (a service the facade exposes as it is), with the methods named in
    ``operations`` journaled: ``{method: (operation, params(*args, **kwargs))}``; every
    other attribute is the target's own.  A call with ``dry_run=True`` writes nothing and is
    not journaled."""

    def __init__(self, target: Any, journal: Journal,
                 operations: dict[str, tuple[str, Callable[..., dict]]]) -> None:
        self._target = target
        self._journal = journal
        self._operations = operations

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name not in self._operations:
            return value
        operation, params = self._operations[name]

        def journaled(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return value(*args, **kwargs)
            with self._journal.operation(operation, params(*args, **kwargs)):
                return value(*args, **kwargs)
        return journaled


class Vault:
    """An open vault (see the module docstring); make one with :meth:`create` or :meth:`open`."""

    def __init__(self, store: Store, config: VaultConfig, master: MasterKey, settings: VaultSettings,
                 plugins: PluginHost, key_context: KeyContext, opened_with: KeySlot | None = None,
                 repo: Repository | None = None, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store = store
        self.config = config
        self.plugins = plugins
        self.clock = clock
        self.repo = repo or Repository(store, master)
        # --- a geo secondary opens read-only, with its own rollback record (services/geo.py) ---
        self.is_secondary = geo.is_secondary(settings.redundancy, store.url)
        if self.is_secondary and not isinstance(store, (LockingStore, ReadOnlyStore)):
            store = ReadOnlyStore(store)
        # --- immutability on storage: what is put is locked with S3 object lock (services/objectlocks.py) ---
        store = LockingStore(store.inner if isinstance(store, LockingStore) else store, self._lock_policy)
        self.store = self.repo.store = store
        # new objects in the vault's format; every format is read (services/upgrade.py)
        self.repo.envelope = self.repo.envelope.writing(format_in_force(config, settings, store.url))
        use_current(self.repo, settings)  # the data key the settings name (format 3: services/datakeys.py)
        self.index = IndexState(self.repo)
        hooks = PluginHooks(plugins.hook, self)
        now = self._now
        self.heads = HeadService(self.repo, key_context.home / "state" / geo.head_state_name(config.vault_id, self.is_secondary),
                                 on_rollback=hooks.rollback_detected, item_names=self._item_names)
        self.journal = Journal(self.repo, now)  # first: the services below journal their changes
        self.keys = KeySlots(store, master, key_context, plugins.key_providers, opened_with,
                             after_change=lambda removed: self.heads.record("key", removed=removed),
                             journal=self.journal, authorize=lambda *a, **kw: self.security.authorize(*a, **kw),
                             alert=self._alert)
        self._settings = SettingsBook(self.repo, settings, now, after_change=lambda: self.heads.record("settings"))
        self.data_keys = DataKeys(self.repo, self._settings, self.journal, now, created=config.created,
                                  format=lambda: self.format, alert=self._alert)
        # --- alerts: kept in the vault, sent to the configured sinks (services/alerts.py) ---
        self.alert_sinks = SinkBook(
            self.repo, plugins.alert_sinks, now,
            lambda: {"id": config.vault_id, "name": self._settings.current.name, "url": store.url},
            before_remove=lambda sink: alertrules.sink_removed(self.alerts, sink),
            journal=lambda operation, params: self.journal.operation(operation, params))
        self.alerts = AlertBook(self.repo, now, self.alert_sinks.deliver,
                                journal=lambda operation, params: self.journal.operation(operation, params))
        # --- security: the audit journal and the rules of critical operations ---
        self.security = SecurityService(config.vault_id, self._settings, self.journal, now, alert=self._alert)
        self._upgrade = UpgradeService(store.url, self._settings, lambda new: _write_config(store, new))
        self.jobs = JobLog(self.repo, on_finished=hooks.job_finished, local=key_context.home / "jobs" / config.vault_id,
                           clock=now)
        self._items = ItemBook(self.repo, now)
        self._points = PointBook(self.repo, self.index, check_head=lambda: self.heads.check().warning())
        self.retention = Retention(self._points, self._find_policy, lambda: self._settings.floors, hooks, now,
                                   security=self.security)
        self._soft = SoftDeletion(self.repo, self._items, self._points, self.retention, self.security, self.journal,
                                  self.heads, self._alert, now)
        self.policies: PolicyBook = PolicyBook(self.repo, self._items, self._settings, self.retention, hooks, now,
                                   after_change=lambda: self.heads.record("policy"))
        self._lifecycle = Lifecycle(self._items, self.policies, self.retention, self.jobs, self.workload, now,
                                    self.heads, soft=self._soft)
        self._backup = BackupService(self.repo, self.index, self._settings, self._items, self._points,
                                     self.retention, self.jobs, hooks, self.workload, now, self.heads)
        self._restore = RestoreService(self._items, self._points, self.jobs, hooks, self.workload)
        self._verify = VerifyService(self.repo, self.index, self.jobs, now,
                                     cursor_file=key_context.home / "verify" / f"{config.vault_id}.json",
                                     key_slots=KeyChecks(self.keys, self.data_keys), check_head=self.heads.check,
                                     journal=self.journal, vault_id=config.vault_id)
        self.object_locks = ObjectLockService(
            self.repo, store, lambda: self.security.settings.immutability, self.jobs, self._items, self._points,
            self.retention, now, key_context.home / "object-locks" / f"{config.vault_id}.json")
        self.geo = geo.GeoService(store, config.vault_id, lambda: geo.redundancy_of(self.settings.redundancy),
                                  lambda url: _open_store(url, None, plugins, create=True), self._point_time,
                                  self._alert, lambda dedupe: self.alerts.resolve(dedupe), now,
                                  object_locks=self.object_locks, heads=self.heads)
        secondary = geo.redundancy_of(settings.redundancy).secondary
        if secondary and not self.is_secondary:  # so that --from-secondary finds it without the primary
            geo.remember_secondary(key_context.home, store.url, config.vault_id, secondary)
        self.policies = Journaled(self.policies, self.journal, {  # type: ignore[assignment]
            "create": ("policy.create", lambda policy, *a, **kw: {"policy": policy.name}),
            "update": ("policy.update", lambda policy, *a, **kw: {"policy": policy.name}),
            "delete": ("policy.delete", lambda name, *a, **kw: {"policy": name}),
        })

    def _now(self) -> dt.datetime:
        return self.clock()

    # --- services built (and their modules imported) by the first command that uses them ---

    @functools.cached_property
    def _repair(self) -> RepairService:
        from .services.repair import RepairService

        return RepairService(self.repo, self.index, self._items, self.jobs,
                             lambda: self.prune_settings.lease_ttl, self._now, self.heads)

    @functools.cached_property
    def _prune(self) -> PruneService:
        from .services.prune import PruneService

        return PruneService(self.repo, self.index, self._items, self._points, self.retention, self.jobs, self._now,
                            self.heads, soft=self._soft)

    @functools.cached_property
    def _scheduler(self) -> Scheduler:
        from .services.schedule import Scheduler

        return Scheduler(self.repo, self._items, self.policies, lambda: self.prune_settings,
                         self.backup, self.prune, self._now, drill=self._scheduled_drill,
                         drills_since=self._drills_by_hand)

    def _lock_policy(self) -> LockPolicy | None:
        locks = self.__dict__.get("object_locks")
        return locks.policy() if locks is not None else None

    def _alert(self, category: str, kind: str, summary: str, **kwargs: Any) -> object:
        """Raise an alert (security alerts cannot be turned off)."""
        alerts = self.__dict__.get("alerts")
        return alerts.raise_alert(category, kind, summary, **kwargs) if alerts is not None else None

    def _journaled(self, operation: str, params: dict, changes: bool) -> ContextManager[None]:
        """Journal ``operation`` if it ``changes`` the vault (not a dry run)."""
        return self.journal.operation(operation, params) if changes else contextlib.nullcontext()

    @contextlib.contextmanager
    def _journaled_job(self, operation: str, params: dict) -> Iterator[None]:
        """Journal an operation that runs as a job (backup, restore) as ``journal.operation``
        does, except that an entry that cannot be written does not stop it: a restore from a
        vault that cannot be written goes on, a backup to it fails in its job, and that job is
        recorded on this machine (:mod:`strongroom.services.jobs`)."""
        try:
            self.journal.record(operation, params, "started")
        except StorageError:
            yield
            return
        try:
            yield
        except SecurityError:
            raise  # journaled by whoever refused it
        except BaseException as exc:
            detail = str(exc).splitlines()[0] if isinstance(exc, StrongroomError) and str(exc) else type(exc).__name__
            outcome = "cancelled" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            with contextlib.suppress(StrongroomError, OSError):
                self.journal.record(operation, params, outcome, detail=detail)
            raise
        with contextlib.suppress(StorageError):
            self.journal.record(operation, params, "succeeded")

    def _find_policy(self, name: str) -> Policy | None:
        return self.policies.find(name)

    def _point_time(self, name: str) -> str | None:
        created = self.repo.get_document(name).get("created")
        return created if isinstance(created, str) else None

    def _item_names(self) -> dict[str, str]:
        return {item.item_id: item.name for item in self._items.list()}

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def create(
        cls, url: str, *, name: str | None = None, key_provider: str = "local",
        passphrase: PassphraseSource | None = None, storage_options: dict | None = None,
        plugins: PluginHost | None = None, home: str | None = None,
        redundancy: Redundancy | None = None, key_options: dict[str, str] | None = None,
    ) -> Vault:
        """Create a vault at ``url`` with one key slot of ``key_provider`` (made with its
        ``key_options``); ``redundancy`` (default local) is checked against ``url`` first
        (:func:`check_redundancy`)."""
        from .repository.chunker import ChunkerParams

        if redundancy is not None:
            redundancy = check_redundancy(redundancy.kind, redundancy.secondary, url)
        plugins = plugins or PluginHost.create()
        store = _open_store(url, storage_options, plugins, create=True)
        if store.exists(CONFIG_NAME):
            raise VaultExists(url=store.url)
        chunker = ChunkerParams(seed=ChunkerParams.new_seed())
        # a strongroom that cannot chunk as this vault does refuses it in one line at open
        features = (ZERO_RUNS_FEATURE,) if chunker.zero_run else ()
        config = VaultConfig(vault_id=new_id(16), created=iso(utcnow()), features=features)
        ctx = KeyContext(vault_id=config.vault_id, home=_home(home), passphrase=passphrase or PassphraseSource())
        master = MasterKey.generate()
        first = KeyContext(vault_id=ctx.vault_id, home=ctx.home, passphrase=ctx.passphrase, options=key_options or {})
        slot = keyring.add_slot(store, master, first, plugins.key_providers, key_provider, label="initial")
        settings = VaultSettings(name=name or os.path.basename(url.rstrip("/")) or "vault", chunker=chunker.to_dict(),
                                 format=FORMAT_VERSION, security=SecuritySettings().to_dict(),
                                 redundancy=(redundancy or Redundancy()).to_dict())
        vault = cls(store, config, master, settings, plugins, ctx, slot)
        vault.repo.put_document(f"settings/{time_id()}", settings.to_dict())
        _write_config(store, config)  # the commit
        vault.heads.record("create")  # what must not go backwards, from the start
        vault.journal.record("vault.create", {"url": store.url, "name": settings.name})
        plugins.hook.strongroom_vault_created(vault=vault)
        return vault

    @classmethod
    def open(
        cls, url: str, *, passphrase: PassphraseSource | None = None,
        storage_options: dict | None = None, plugins: PluginHost | None = None,
        home: str | None = None, master: MasterKey | None = None,
    ) -> Vault:
        """Open the vault at ``url`` with the first key slot that unlocks (or ``master``)."""
        plugins = plugins or PluginHost.create()
        store = _open_store(url, storage_options, plugins)
        config = _read_config(store, store.url)
        ctx = KeyContext(vault_id=config.vault_id, home=_home(home), passphrase=passphrase or PassphraseSource())
        slot = None
        if master is None:
            master, slot = keyring.unlock(store, ctx, plugins.key_providers, notice=False)
            record_use(ctx.home, config.vault_id, slot.slot_id)  # "last used here" (services/slotuse.py)
        repo = Repository(store, master)
        vault = cls(store, config, master, newest_settings(repo, config.vault_id), plugins, ctx, slot, repo)
        if slot is not None:
            keyring.notice_of(slot)  # only now: a vault refused for its settings' format says nothing else
        plugins.hook.strongroom_vault_opened(vault=vault)
        return vault

    def reopen(self) -> Vault:
        """A fresh view of this vault (newest settings, no index loaded), same storage and key."""
        keys = self.keys
        return Vault(self.store, self.config, keys.master, newest_settings(self.repo, self.config.vault_id), self.plugins, keys.context,
                     keys.opened_with, clock=self.clock)

    # --- what it is ----------------------------------------------------------------------

    @property
    def vault_id(self) -> str:
        return self.config.vault_id

    def close(self) -> None:
        """Close the connections the vault's storage keeps open (a later call opens new ones).
        The command line closes the vault it opened when the command ends."""
        from .storage.base import close_store

        close_store(self.store)

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def settings(self) -> VaultSettings:
        """The settings in force."""
        return self._settings.current

    @property
    def chunker_params(self) -> ChunkerParams:
        return self._settings.chunker

    def info(self) -> dict:
        return {
            "url": self.url, "vault_id": self.vault_id, "name": self.settings.name,
            "format": self.format, "features": list(self.config.features),
            "created": self.config.created, "key_slots": len(self.keys.list()),
            "items": len(self.items()), "points": len(self.repo.list_names("points/")),
            "packs": len(self.repo.pack_ids_on_storage()),
            "chunker": self.settings.chunker,
            "object_lock": self.object_locks.summary(),
            **({"replication": self.geo.status()} if self.geo.enabled and not self.is_secondary else {}),
            "redundancy": self.redundancy.to_dict(),
        }

    @property
    def format(self) -> int:
        """The format new objects are written in (:func:`~strongroom.services.upgrade.format_in_force`)."""
        return self.repo.envelope.format

    def delete(self, *, ticket: str | None = None, dry_run: bool = False) -> DeleteReport:
        """Delete this vault: only an empty one, as its security rules allow
        (:mod:`strongroom.services.vaultdelete`); a local folder left empty is removed.
        ``dry_run``: the same checks, nothing deleted."""
        from .services.vaultdelete import VaultDeletion

        report = VaultDeletion(self.repo, self._items, self.security, self.journal).run(ticket, dry_run=dry_run)
        if dry_run:
            return report
        root = Path(self.url)
        if root.is_absolute() and root.is_dir():  # a local folder: its now empty sub-folders too
            for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(folder.iterdir()):
                    folder.rmdir()
            if not any(root.iterdir()):
                root.rmdir()
        return report

    def rotate_data_key(self) -> DataKey:
        """Start a new data key for everything written from now on (format 3;
        :mod:`strongroom.services.datakeys`); RotateRefused where the vault is read-only."""
        why = read_only_reason(self.store) or ("a geo secondary" if self.is_secondary else None)
        return self.data_keys.rotate(url=self.url, read_only=why)

    def upgrade(self, *, apply: bool = False) -> UpgradeReport:
        """Move the vault to the newest format in place (:mod:`strongroom.services.upgrade`);
        without ``apply``, only say what would change."""
        with self._journaled("upgrade", {"from_format": self.format}, apply):
            report = self._upgrade.run(self.config, apply=apply)
        if apply:
            self.config = report.config
            self.repo.envelope = self.repo.envelope.writing(report.to_format)
        return report

    @property
    def redundancy(self) -> Redundancy:
        """How the vault's storage keeps copies (:mod:`strongroom.policy.redundancy`)."""
        return Redundancy.from_dict(self.settings.redundancy)

    def set_redundancy(self, kind: str, secondary: str | None = None) -> Redundancy:
        """Change the redundancy: only while every item is deleted (RedundancyLocked), and as
        :func:`check_redundancy` allows for this vault's URL."""
        record = check_redundancy(kind, secondary, self.url)
        with self.journal.operation("vault.redundancy", record.to_dict()):
            living = [item for item in self._items.list() if item.state != DELETED]
            if living:
                raise RedundancyLocked(count=len(living))
            self._settings.update(redundancy=record.to_dict())
        return record

    def update_settings(self, **changes: Any) -> VaultSettings:
        """Write a new settings document with ``changes``; the newest one is in force."""
        with self.journal.operation("settings.update", {"changed": sorted(changes)}):
            return self._settings.update(**changes)

    # --- items ---------------------------------------------------------------------------

    def workload(self, name: str) -> Workload:
        """A new instance of the workload registered as ``name``, resolving secret references
        with every registered secret provider."""
        workload = self.plugins.workloads.get(name)()
        workload.secrets = self.plugins.secrets
        return workload

    def items(self) -> list[ProtectedItem]:
        return self._items.list()

    def item(self, name: str) -> ProtectedItem:
        return self._items.get(name)

    def protect(self, workload: str, name: str, source: dict, *, policy: str | None = None) -> ProtectedItem:
        with self.journal.operation("items.protect", {"item": name, "workload": workload, "policy": policy}):
            return self._lifecycle.protect(workload, name, source, policy=policy)

    def stop(self, item: str, *, retain: str | None = None, delete_data: bool = False,
             ticket: str | None = None) -> ProtectedItem:
        """Stop protecting ``item``: ``retain="forever"|"policy"``, or ``delete_data``
        (soft-deletes its points); ``ticket``: the guard's (:mod:`strongroom.services.lifecycle`)."""
        with self.journal.operation("items.stop", {"item": item, "retain": retain, "delete_data": delete_data}):
            return self._lifecycle.stop(item, retain=retain, delete_data=delete_data, ticket=ticket)

    def rehearse_stop(self, item: str, *, retain: str | None = None, delete_data: bool = False,
                      ticket: str | None = None) -> StopPlan:
        """``items stop --dry-run``: what :meth:`stop` would do, after the same checks; nothing
        written, nothing journaled (:meth:`strongroom.services.lifecycle.Lifecycle.rehearse_stop`)."""
        return self._lifecycle.rehearse_stop(item, retain=retain, delete_data=delete_data, ticket=ticket)

    def resume(self, item: str, *, policy: str | None = None, ticket: str | None = None) -> ProtectedItem:
        """Protect a stopped ``item`` again (with ``policy``, or the one it had)."""
        with self.journal.operation("items.resume", {"item": item, "policy": policy}):
            return self._lifecycle.resume(item, policy=policy, ticket=ticket)

    def update_item(self, item: str, *, source: dict | None = None, policy: str | None = None,
                    ticket: str | None = None) -> ProtectedItem:
        """A new version of protected ``item`` with another ``source`` and/or ``policy``, which
        the next backup follows (:meth:`strongroom.services.lifecycle.Lifecycle.update`)."""
        with self.journal.operation("items.update", {"item": item, "policy": policy, "source": source is not None}):
            return self._lifecycle.update(item, source=source, policy=policy, ticket=ticket)

    def undelete_item(self, item: str) -> ProtectedItem:
        """Bring back a deleted ``item`` (stopped, retain forever) with the points its deletion
        soft-deleted (:mod:`strongroom.services.softdelete`)."""
        with self.journal.operation("items.undelete", {"item": item}):
            return self._lifecycle.undelete(item)

    # --- points --------------------------------------------------------------------------

    def points(self, item: str | None = None) -> list[RecoveryPoint]:
        """Intact points of ``item`` (or of every item), oldest first, with their current status."""
        return self._points.of(self._items.get(item) if item else None)

    def deleted_points(self, item: str | None = None) -> list[DeletedPoint]:
        """Soft-deleted points of ``item`` (or of every item), oldest first, with their purge time."""
        return self._points.deleted(self._items.get(item) if item else None)

    def delete_point(self, item: str, ref: str, *, ticket: str | None = None, dry_run: bool = False) -> Deletion:
        """Soft-delete point ``ref`` of ``item`` (delete it, with soft delete off), as
        immutability and the guard allow (:mod:`strongroom.services.softdelete`); ``dry_run``:
        what would be deleted, nothing written."""
        return self._soft.delete_point(item, ref, ticket=ticket, dry_run=dry_run)

    def undelete_point(self, item: str, ref: str) -> RecoveryPoint:
        """Bring soft-deleted point ``ref`` of ``item`` back."""
        return self._soft.undelete_point(item, ref)

    def point_survey(self, item: str | None = None) -> PointSurvey:
        """Points of ``item`` (or of every item): intact, damaged headers, notices."""
        return self._points.survey(self._items.get(item) if item else None)

    def point(self, item: str, ref: str | None = None) -> RecoveryPoint:
        """The latest intact point of ``item``, or the one whose id starts with ``ref``."""
        return self._points.find(self._items.get(item), ref)

    def tree(self, point: RecoveryPoint) -> TreeReader:
        return self._points.tree(point)

    def point_view(self, item: str, ref: str | None = None) -> PointView:
        """Read access to a point of ``item`` (the latest, or the one ``ref`` starts)."""
        return self._restore.open(item, ref)

    def open_file(self, item: str, ref: str | None, path: str) -> SeekableReader:
        """A seekable, read-only file object over the content of ``path`` in a point; it
        fetches only the chunks that reads touch."""
        return self._restore.open(item, ref).open(path)

    # --- operations ----------------------------------------------------------------------

    def backup(self, item: str, *, progress: Callable[[BackupStats], None] | None = None,
               retain_until: dt.datetime | None = None, trigger: str = "on_demand",
               slot: dt.datetime | None = None, tags: Sequence[str] = ()) -> RecoveryPoint:
        """Back up ``item`` now (:mod:`strongroom.services.backup`); ``tags`` are the
        operator's, kept in the point header."""
        params = {"item": item, "trigger": trigger, "retain_until": retain_until, **({"tags": list(tags)} if tags else {})}
        with self._journaled_job("backup", params):
            point = self._backup.run(item, progress=progress, retain_until=retain_until, trigger=trigger, slot=slot,
                                     tags=tags)
        self.geo.after_backup()  # bounded in time; a failure is an alert (services/geo.py)
        return point

    def copy_in(self, item: str, produce: Callable[[Any], Iterable[Any]], *, header: dict,
                progress: Callable[[BackupStats], None] | None = None) -> RecoveryPoint:
        """Commit a point of ``item`` from the source entries ``produce(ctx)`` yields, with
        ``header`` fields of its own: a point copied from another vault (``strongroom copy``;
        :meth:`strongroom.services.backup.BackupService.copy_in`)."""
        with self._journaled_job("backup", {"item": item, "trigger": "copy"}):
            point = self._backup.copy_in(item, produce, header=header, progress=progress)
        self.geo.after_backup()
        return point

    def replicate(self, *, timeout: float | None = None,
                  progress: Callable[[str], None] | None = None) -> ReplicationReport:
        """Copy what the geo secondary lacks, in commit order (:mod:`strongroom.services.replication`);
        ``timeout`` seconds at most (None: until done)."""
        with self.journal.operation("vault.replicate", {"secondary": geo.redundancy_of(self.settings.redundancy).secondary}):
            return self.geo.replicate(timeout=timeout, progress=progress)

    def browse(self, item: str, ref: str | None = None, path: str = "") -> list[BrowseItem]:
        return self._restore.browse(item, ref, path)

    def restore(self, item: str, ref: str | None, target: str | None, paths: Sequence[str] = (), *,
                options: dict | None = None,
                progress: Callable[[RestoreStats], None] | None = None) -> RestoreResult:
        """Restore a point of ``item``; ``options`` are the workload's restore options.
        A restore of some ``paths`` fixes glibc's mmap threshold first (:mod:`.allocator`),
        so that the index load's and the reads' freed buffers are given back: a one-file
        restore peaks about 7 MiB lower.  A whole restore does not: its 1 MiB reads would
        then be mapped anew each time (20 times the page faults, measured)."""
        if paths:
            from .allocator import limit_retained_memory

            limit_retained_memory()
        with self._journaled_job("restore", {"item": item, "point": ref, "target": target, "paths": len(paths)}):
            return self._restore.restore(item, ref, target, paths, options=options, progress=progress)

    def drill(self, item: str, ref: str | None = None, *, scratch_root: str | None = None,
              progress: Callable[[RestoreStats], None] | None = None, trigger: str = "on_demand") -> DrillReport:
        """Restore a point of ``item`` into a scratch folder, check it against the point and
        remove it, as a ``drill`` job (:mod:`strongroom.services.drill`); the report's
        ``source`` says whether this is the vault or its geo secondary."""
        from .services.drill import DrillService

        source = "secondary" if self.is_secondary else "primary"
        with self._journaled_job("drill", {"item": item, "point": ref, "source": source}):
            return DrillService(lambda name, at: self._restore.open(name, at, progress), self.jobs, self.workload,
                                scratch_root).drill(item, ref, source=source, trigger=trigger)

    def _scheduled_drill(self, item: str, *, from_secondary: bool = False) -> DrillReport:
        """``run-due``'s drill of ``item``'s latest point, here or on the geo secondary
        (opened read-only with this vault's key; its failure alerts are raised here)."""
        from .errors import UsageError

        if not from_secondary:
            return self.drill(item, trigger="scheduled")
        secondary = geo.redundancy_of(self.settings.redundancy).secondary
        if secondary is None or self.is_secondary:
            raise UsageError(message=f"the policy of '{item}' drills from the geo secondary,"
                                     " but this vault has none to drill from")
        copy = Vault.open(secondary, plugins=self.plugins, master=self.keys.master, home=str(self.keys.context.home))
        copy.jobs.on_finished = PluginHooks(self.plugins.hook, self).job_finished  # alerts here, not there
        copy.jobs.notify = self.jobs.notify
        return copy.drill(item, trigger="scheduled")

    def _drills_by_hand(self, since: dt.datetime) -> dict[str, dt.datetime]:
        """The start of the newest drill of each item run by hand (not by run-due) since ``since``."""
        from .models import time_of

        newest: dict[str, dt.datetime] = {}
        for job in self.jobs.list(type_="drill", since=since):
            if job.item and job.details.get("trigger") != "scheduled" and job.state not in ("cancelled", "abandoned"):
                newest[job.item] = max(newest.get(job.item, since), time_of(job.job_id))
        return newest

    def verify(self, *, read_data: bool = False, subset: str | None = None,
               progress: Callable[[str], None] | None = None, from_secondary: bool = True) -> VerifyReport:
        """Check the vault; ``subset`` (``N/M`` or ``N%``) reads only some packs.  When data
        is read and something is damaged or gone, ``from_secondary`` says whether the geo
        secondary holds an intact copy of it (:mod:`strongroom.services.heal`)."""
        secondary = self._secondary if from_secondary and (read_data or subset is not None) else None
        if read_data or subset is not None:  # packs read whole and freed: from the index load on
            from .allocator import limit_retained_memory

            limit_retained_memory()
        return self._verify.verify(read_data=read_data, subset=subset, progress=progress, secondary=secondary)

    def repair(self, *, apply: bool = False, heal: Heal | None = None,
               progress: Callable[[str], None] | None = None, accept_rollback: bool = False,
               from_secondary: bool = True) -> RepairReport:
        """Heal what can be healed (from the geo secondary too, with ``from_secondary``),
        move damage aside, name what is lost; with ``accept_rollback``, take storage as it
        is where it went backwards (:mod:`strongroom.services.repair`,
        :mod:`strongroom.services.head`)."""
        secondary = self._secondary() if from_secondary else None
        with self._journaled("repair", {"accept_rollback": accept_rollback}, apply):
            return self._repair.run(apply=apply, heal=heal, progress=progress, accept_rollback=accept_rollback,
                                    secondary=secondary)

    def _secondary(self) -> Secondary | None:
        """The geo secondary, reached read-only with this vault's key to heal from; None for a
        vault without one, and for the secondary itself (:mod:`strongroom.services.heal`)."""
        from .services.heal import reach

        if self.is_secondary:
            return None
        return reach(self.redundancy, lambda url: _open_store(url, None, self.plugins),
                     lambda store: Repository(store, self.keys.master), self.vault_id)

    def rebuild_index(self, progress: Callable[[str], None] | None = None, *,
                      dry_run: bool = False) -> RepairReport:
        """Rewrite the index from every pack, naming intact copies only; ``dry_run``: what
        would be rewritten, nothing written nor journaled."""
        if dry_run:
            return self._repair.rebuild_index(progress, dry_run=True)
        with self.journal.operation("rebuild-index", {}):
            return self._repair.rebuild_index(progress)

    # --- retention, prune and scheduled runs ---------------------------------------------

    def set_retention_floors(self, floors: RetentionFloors | None, *, ticket: str | None = None) -> None:
        """Turn the minimum retention of every policy on (these floors) or off (None);
        ``ticket``: the guard's, to lower them or turn them off."""
        with self.journal.operation("policy.floors", {"floors": floors.to_dict() if floors else None}):
            self.policies.set_floors(floors, ticket=ticket)

    @property
    def prune_settings(self) -> PruneSettings:
        return self._settings.prune

    def set_prune_settings(self, settings: PruneSettings) -> PruneSettings:
        with self.journal.operation("prune.settings", settings.to_dict()):
            self._settings.update(prune=settings.to_dict())
        return settings

    def prune(self, *, dry_run: bool = False, grace: float | None = None, keep_last: int | None = None,
              ticket: str | None = None, progress: Callable[[str], None] | None = None) -> PruneReport:
        """Expire points whose retention ended and free the data nothing needs
        (:mod:`strongroom.services.prune`); ``grace`` overrides the vault's setting.

        ``keep_last`` also expires every point of each item but its newest ``keep_last``
        for this run: a shortening of retention, so it is refused by immutability for a
        point that has not expired, and needs a ``retention.shorten`` ticket (param
        ``keep_last``) when the vault has a guard."""
        import attrs

        settings = self.prune_settings if grace is None else attrs.evolve(self.prune_settings, grace=grace)
        if keep_last is not None and not dry_run:
            beyond = self._prune.beyond_keep_last(keep_last)
            for _, point in beyond:
                self.security.require_deletable(point, operation="retention.shorten")
            if beyond:
                self.security.authorize("retention.shorten", {"keep_last": str(keep_last)}, ticket)
        params = {"grace": settings.grace, **({"keep_last": keep_last} if keep_last is not None else {})}
        with self._journaled("prune", params, not dry_run):
            report = self._prune.run(settings, dry_run=dry_run, keep_last=keep_last, progress=progress)
        if not dry_run:  # then keep the locks of what is still needed
            report.object_locks = self.object_locks.extend_if_due().to_dict()
        return report

    def schedule(self, now: dt.datetime | None = None) -> list[ScheduleRow]:
        """When every item (and the prune) last ran and runs next."""
        return self._scheduler.rows(now)

    def run_due(self, *, kinds: Iterable[str] | None = None, **kwargs: Any) -> DueReport:
        """Raise alerts for missed schedules, then run every due scheduled backup, then the
        prune if due, then (after the geo catch-up) the due drills
        (:mod:`strongroom.services.schedule`)."""
        self.check_schedules()
        kinds = set(kinds) if kinds is not None else {"backup", "prune", "drill"}
        report = self._scheduler.run_due(kinds=kinds - {"drill"}, **kwargs)
        self.object_locks.extend_if_due()  # if the prune did not just do it
        self.geo.after_backup(timeout=float("inf"))  # geo: catch up in full, never an error
        if "drill" in kinds:  # after the catch-up: a drill from the secondary sees the new points
            from .services.schedule import DueReport

            drills = self._scheduler.run_due(kinds={"drill"}, **kwargs)
            report = DueReport(report.started, report.results + drills.results)
        return report

    def check_schedules(self) -> list[Alert]:
        """Raise a ``schedule.missed`` alert for every item that missed its schedule (once),
        resolve those of items that ran since (:mod:`strongroom.services.alertrules`)."""
        return alertrules.check_overdue(self.alerts, self._scheduler.overdue)


def _open_store(url: str, storage_options: dict | None, plugins: PluginHost, *, create: bool = False) -> Store:
    """The store at ``url`` with the user's configured storage options under ``storage_options``."""
    backends: Iterable[Any] = [plugins.storage_backends.get(name) for name in plugins.storage_backends]
    return open_store(url, storage_options_for(url, storage_options), create=create, backends=backends)


def open_vault_store(url: str, storage_options: dict | None = None, plugins: PluginHost | None = None) -> Store:
    """The storage of the vault at ``url``, as a vault opens it, without opening the vault
    (no key needed: ``vault recover-objects`` works on a vault whose identity is hidden)."""
    return _open_store(url, storage_options, plugins or PluginHost.create())


def _write_config(store: Store, config: VaultConfig) -> None:
    store.put(CONFIG_NAME, json.dumps(config.to_dict(), indent=1).encode())


def _read_config(store: Store, url: str) -> VaultConfig:
    """The vault's ``strongroom.json``: VaultNotFound without one, UnsupportedFormat for
    a newer format or an unknown feature, IntegrityError for a malformed one."""
    try:
        raw = store.get(CONFIG_NAME)
    except ObjectNotFound:
        raise VaultNotFound(url=url) from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise IntegrityError(what=f"{CONFIG_NAME} of {url}", reason=f"not JSON ({type(exc).__name__})") from None
    newer = doc.get("format") if isinstance(doc, dict) else None
    if isinstance(newer, int) and not isinstance(newer, bool) and newer > FORMAT_VERSION:
        raise newer_format(url, newer)
    try:
        config = VaultConfig.from_dict(doc)
    except IntegrityError as exc:
        raise IntegrityError(what=f"{CONFIG_NAME} of {url}", reason=exc.fields.get("reason", str(exc))) from None
    if config.format > FORMAT_VERSION:
        raise newer_format(url, config.format)
    unknown = sorted(set(config.features) - KNOWN_FEATURES)
    if unknown:
        raise UnsupportedFormat(url=url, reason=f"uses unknown features {', '.join(unknown)}")
    return config


def _home(home: str | None) -> Path:
    return Path(home) if home else strongroom_home()
