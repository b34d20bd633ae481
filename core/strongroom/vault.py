"""The Vault facade: items, policies, recovery points, jobs and keys of one vault.

Callers (the CLI, tests, the future vault server) use only this class; it ties the
storage, repository, catalog and engine layers together and calls the plugin hooks.
The logic lives in the modules it calls: :mod:`strongroom.lifecycle` (item states,
retention of points), :mod:`strongroom.policy` (policies, schedules, ``run-due``),
:mod:`strongroom.engine.prune` and :mod:`strongroom.engine.gcstate` (prune, and what a
backup does about a prune running elsewhere).

Everything that depends on the time asks ``vault.clock()`` (UTC now by default); tests
replace it to replay months of backups and prunes in a moment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from typing import TYPE_CHECKING, Callable, Sequence

import attrs

from . import keyring
from .catalog.entry import Entry
from .catalog.tree import TreeReader
from .errors import (
    AmbiguousPoint, IntegrityError, ItemExists, ItemNotFound, ItemStateError, ObjectNotFound,
    PathNotInPoint, PointNotFound, StrongroomError, UnsupportedFormat, UsageError, VaultExists,
    VaultNotFound,
)
from .jobs import JobLog
from .models import (
    DELETED, FORMAT_VERSION, KNOWN_FEATURES, PROTECTED, Job, ProtectedItem, RecoveryPoint,
    VaultConfig, VaultSettings, iso, new_id, time_id, utcnow,
)
from .plugins import PluginHost
from .pointstatus import apply as apply_status, load_statuses
from .repository.keyproviders import KeyContext, PassphraseSource, strongroom_home
from .repository.masterkey import KeySlot, MasterKey
from .repository.repository import Repository
from .storage import Store, open_store
from .vaultpolicy import PolicyFacade
from .workload import BrowseItem, PointContext, Workload

if TYPE_CHECKING:  # the modules of other operations load when used: restore starts sooner
    from .catalog.reader import ContentReader
    from .engine.backup import BackupStats
    from .engine.restore import RestoreResult
    from .engine.verify import VerifyReport
    from .repository.chunker import ChunkerParams

CONFIG_NAME = "strongroom.json"


def _read_config(store: Store, url: str) -> VaultConfig:
    try:
        raw = store.get(CONFIG_NAME)
    except ObjectNotFound:
        raise VaultNotFound(url=url) from None
    try:
        config = VaultConfig.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsupportedFormat(url=url, reason=f"has an unreadable {CONFIG_NAME} ({exc})") from None
    if config.format > FORMAT_VERSION:
        raise UnsupportedFormat(url=url, reason=f"has format {config.format} (this version reads {FORMAT_VERSION})")
    unknown = sorted(set(config.features) - KNOWN_FEATURES)
    if unknown:
        raise UnsupportedFormat(url=url, reason=f"uses unknown features {', '.join(unknown)}")
    return config


@attrs.define
class Vault(PolicyFacade):
    store: Store
    config: VaultConfig
    master: MasterKey
    settings: VaultSettings
    plugins: PluginHost
    key_context: KeyContext
    opened_with: KeySlot | None = None
    _repo: Repository | None = None
    _index_problems: list[str] | None = None
    clock: Callable[[], dt.datetime] = utcnow
    _index_files: frozenset[str] = frozenset()

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def create(
        cls, url: str, *, name: str | None = None, key_provider: str = "local",
        passphrase: PassphraseSource | None = None, storage_options: dict | None = None,
        plugins: PluginHost | None = None, home: str | None = None,
    ) -> "Vault":
        plugins = plugins or PluginHost.create()
        store = open_store(url, storage_options, create=True)
        if store.exists(CONFIG_NAME):
            raise VaultExists(url=store.url)
        config = VaultConfig(vault_id=new_id(16), created=iso(utcnow()))
        ctx = KeyContext(vault_id=config.vault_id, home=_home(home), passphrase=passphrase or PassphraseSource())
        master = MasterKey.generate()
        slot = keyring.add_slot(store, master, ctx, plugins.key_providers, key_provider, label="initial")
        from .repository.chunker import ChunkerParams

        chunker = ChunkerParams(seed=random.SystemRandom().randrange(1, 2**31))
        settings = VaultSettings(name=name or os.path.basename(url.rstrip("/")) or "vault", chunker=chunker.to_dict())
        vault = cls(store, config, master, settings, plugins, ctx, slot)
        vault.repo.put_document(f"settings/{time_id()}", settings.to_dict())
        store.put(CONFIG_NAME, json.dumps(config.to_dict(), indent=1).encode())  # the commit
        plugins.pm.hook.strongroom_vault_created(vault=vault)
        return vault

    @classmethod
    def open(
        cls, url: str, *, passphrase: PassphraseSource | None = None,
        storage_options: dict | None = None, plugins: PluginHost | None = None,
        home: str | None = None, master: MasterKey | None = None,
    ) -> "Vault":
        plugins = plugins or PluginHost.create()
        store = open_store(url, storage_options)
        config = _read_config(store, store.url)
        ctx = KeyContext(vault_id=config.vault_id, home=_home(home), passphrase=passphrase or PassphraseSource())
        slot = None
        if master is None:
            master, slot = keyring.unlock(store, ctx, plugins.key_providers)
        repo = Repository(store, master)
        settings = _newest_settings(repo)
        vault = cls(store, config, master, settings, plugins, ctx, slot, repo)
        plugins.pm.hook.strongroom_vault_opened(vault=vault)
        return vault

    def reopen(self) -> "Vault":
        """A fresh view of this vault (newest settings, no index loaded), same storage and key."""
        settings = _newest_settings(self.repo)
        return Vault(self.store, self.config, self.master, settings, self.plugins, self.key_context,
                     self.opened_with, clock=self.clock)

    @property
    def vault_id(self) -> str:
        return self.config.vault_id

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = Repository(self.store, self.master)
        return self._repo

    @property
    def chunker_params(self) -> ChunkerParams:
        from .repository.chunker import ChunkerParams

        return ChunkerParams.from_dict(self.settings.chunker)

    def load_index(self, *, tolerant: bool = False) -> list[str]:
        if self._index_problems is None:
            names = frozenset(self.store.list("index/"))
            self._index_problems = self.repo.load_index_files(sorted(names), tolerant=tolerant)
            self._index_files = names
        return self._index_problems

    def forget_index(self) -> None:
        """Drop the in-memory index; the next operation that needs it reads it again."""
        from .repository.index import Index

        self.repo.index = Index()
        self._index_problems = None
        self._index_files = frozenset()

    @property
    def index_files(self) -> frozenset[str]:
        """The index files loaded into the in-memory index."""
        return self._index_files

    def refresh_index(self) -> None:
        """Load index files written since the index was loaded; reload it all if a prune
        replaced some (so no blob of a deleted pack is taken for present)."""
        if self._index_problems is None:
            self.load_index()
            return
        names = frozenset(self.store.list("index/"))
        if not self._index_files <= names:
            self.forget_index()
            self.load_index()
        elif names != self._index_files:
            self.repo.load_index_files(sorted(names - self._index_files))
            self._index_files = names

    @property
    def jobs(self) -> JobLog:
        return JobLog(self.repo)

    # --- items -------------------------------------------------------------------------

    def workload(self, name: str) -> Workload:
        return self.plugins.workloads.get(name)()

    def items(self) -> list[ProtectedItem]:
        newest: dict[str, str] = {}
        for name in self.store.list("items/"):
            parts = name.split("/")
            if len(parts) == 3 and name > newest.get(parts[1], ""):
                newest[parts[1]] = name
        docs = self.repo.get_documents(sorted(newest.values()))
        return sorted((ProtectedItem.from_dict(doc, name) for name, doc in docs), key=lambda i: i.name)

    def item(self, name: str) -> ProtectedItem:
        """The item called ``name``; one whose data was deleted only if no other has the name."""
        matches = [item for item in self.items() if item.name == name]
        if not matches:
            raise ItemNotFound(item=name)
        live = [item for item in matches if item.state != DELETED]
        return (live or matches)[-1]

    def protect(self, workload: str, name: str, source: dict, *, policy: str | None = None) -> ProtectedItem:
        plugin = self.workload(workload)
        now = self.clock()
        try:
            item = ProtectedItem(item_id=new_id(8), name=name, workload=workload, source={},
                                 policy=policy, created=iso(now))
        except ValueError as exc:
            raise UsageError(message=str(exc)) from None
        if any(i.name == name and i.state != DELETED for i in self.items()):
            raise ItemExists(item=name)
        if policy is not None:
            self.policies.get(policy)
        return self.put_item(attrs.evolve(item, source=plugin.validate_source(source)))

    def put_item(self, item: ProtectedItem) -> ProtectedItem:
        """Append a new version of ``item``; returns it as read back."""
        version = self.version_name(f"items/{item.item_id}/")
        self.repo.put_document(version, item.to_dict())
        return attrs.evolve(item, version=version)

    # --- points ------------------------------------------------------------------------

    def points(self, item: str | None = None) -> list[RecoveryPoint]:
        """Points of ``item`` (or of every item), oldest first, with their current status."""
        return self._read_points(self.item(item).item_id if item else None)

    def points_of(self, item: ProtectedItem) -> list[RecoveryPoint]:
        return self._read_points(item.item_id)

    def _read_points(self, item_id: str | None) -> list[RecoveryPoint]:
        prefix = f"points/{item_id}/" if item_id else "points/"
        names = list(self.store.list(prefix))
        statuses = load_statuses(self.repo, item_id) if names else {}
        points = [apply_status(RecoveryPoint.from_dict(doc), statuses.get(doc["point_id"]))
                  for _, doc in self.repo.get_documents(names)]
        return sorted(points, key=lambda p: (p.created, p.point_id))

    def point(self, item: str, ref: str | None = None) -> RecoveryPoint:
        """The latest point of ``item``, or the one whose id starts with ``ref``."""
        points = self.points(item)
        if ref:
            points = [p for p in points if p.point_id.startswith(ref.lower())]
            if len(points) > 1:
                raise AmbiguousPoint(point=ref, count=len(points), item=item)
        if not points:
            raise PointNotFound(point=ref or "latest", item=item)
        return points[-1]

    def tree(self, point: RecoveryPoint) -> TreeReader:
        self.load_index()
        return TreeReader(self.repo, bytes.fromhex(point.root), point=point.short_id)

    def _point_context(self, item: str, ref: str | None, progress=None) -> PointContext:
        it = self.item(item)
        point = self.point(item, ref)
        return PointContext(self, it, point, self.repo, self.tree(point), progress)

    # --- operations --------------------------------------------------------------------

    def backup(
        self, item_name: str, *, progress: Callable[[BackupStats], None] | None = None,
        retain_until: dt.datetime | None = None, trigger: str = "on_demand", slot: dt.datetime | None = None,
    ) -> RecoveryPoint:
        """Back up ``item_name`` now.  ``retain_until`` keeps the point at least that long;
        ``trigger`` and ``slot`` record a scheduled run (``run-due``)."""
        from . import vaultops

        item = self.item(item_name)
        if item.state != PROTECTED:
            raise ItemStateError(item=item.name, state=item.state, reason="backups need a protected item; resume it first")
        if retain_until is not None:
            vaultops.check_retain_until(self, retain_until)
        job = self.jobs.start("backup", item.name, trigger=trigger, slot=iso(slot) if slot else None)
        try:
            hook = self.plugins.pm.hook
            hook.strongroom_before_backup(vault=self, item=item)

            def run_backup(vault: Vault, item: ProtectedItem) -> RecoveryPoint:
                return vaultops.backup_point(self, item, progress, retain_until=retain_until, trigger=trigger)

            # firstresult hook: plugins' wrappers run around the core's own implementation
            point = hook.strongroom_backup_wrapper.call_extra([run_backup], {"vault": self, "item": item})
            hook.strongroom_point_created(vault=self, point=point)
            hook.strongroom_after_backup(vault=self, item=item, point=point)
        except BaseException as exc:
            self._finish_job(job, _end_state(exc), error=_one_line(exc))
            raise
        state = "completed_with_warnings" if point.warnings else "completed"
        self._finish_job(job, state, point=point.point_id, bytes=point.stats.get("bytes_read", 0),
                         warnings=point.warnings, details={**job.details, "stats": point.stats})
        return point

    def browse(self, item: str, ref: str | None = None, path: str = "") -> list[BrowseItem]:
        ctx = self._point_context(item, ref)
        return self.workload(ctx.item.workload).browse(ctx, path)

    def open_file(self, item: str, ref: str | None, path: str) -> ContentReader:
        """A seekable, read-only file object over the content of ``path`` in a point.

        It fetches only the chunks that reads touch (item-level readers build on it).
        """
        from .catalog.reader import ContentReader

        ctx = self._point_context(item, ref)
        entry = ctx.tree.lookup(path)
        if entry is None or not entry.has_content:
            raise PathNotInPoint(path=path, point=ctx.point.short_id)
        return ContentReader(self.repo, entry)

    def restore(
        self, item: str, ref: str | None, target: str | None, paths: Sequence[str] = (), *,
        options: dict | None = None, progress=None,
    ) -> RestoreResult:
        """Restore a point of ``item``; ``options`` are the workload's restore options."""
        job = self.jobs.start("restore", item, target=target, paths=list(paths))
        try:
            ctx = self._point_context(item, ref, progress)
            result = self.workload(ctx.item.workload).restore(ctx, target, paths, dict(options or {}))
            if result.errors:
                shown = "; ".join(result.errors[:3])
                more = f" (and {len(result.errors) - 3} more)" if len(result.errors) > 3 else ""
                raise IntegrityError(
                    what=f"{len(result.errors)} file(s) of point {ctx.point.short_id}",
                    reason=f"not restored: {shown}{more}",
                )
            self.plugins.pm.hook.strongroom_after_restore(vault=self, point=ctx.point, target=target)
        except BaseException as exc:
            self._finish_job(job, _end_state(exc), error=_one_line(exc))
            raise
        state = "completed_with_warnings" if result.warnings else "completed"
        self._finish_job(job, state, point=ctx.point.point_id, bytes=result.stats.bytes_written,
                         warnings=result.warnings, details={"stats": result.stats.to_dict()})
        return result

    def verify(self, *, read_data: bool = False, progress=None) -> VerifyReport:
        from .engine.verify import Verifier

        job = self.jobs.start("verify", None, read_data=read_data)
        try:
            problems = self.load_index(tolerant=True)
            points = []
            for name in self.store.list("points/"):
                try:
                    points.append(RecoveryPoint.from_dict(self.repo.get_document(name)))
                except (IntegrityError, ObjectNotFound) as exc:
                    problems.append(f"{name}: {exc}")
            report = Verifier(self.repo, progress=progress).run(points, read_data=read_data)
            report = attrs.evolve(report, problems=tuple(problems) + report.problems)
        except BaseException as exc:
            self._finish_job(job, _end_state(exc), error=_one_line(exc))
            raise
        self._finish_job(job, "completed" if report.ok else "failed",
                         error=None if report.ok else f"{len(report.problems)} problem(s)",
                         bytes=report.bytes_read, details={"problems": list(report.problems[:100])})
        return report

    def rebuild_index(self) -> tuple[int, int, list[str]]:
        """Rewrite the index from the packs' own trailers; returns (packs, blobs, problems).

        Holds the prune lease: it replaces every index file, which must not happen while
        a prune replaces some."""
        from . import vaultops
        from .repository.leases import Lease

        with Lease(self.repo, "rebuild-index", ttl=self.prune_settings.lease_ttl, clock=self.clock):
            return vaultops.rebuild_index(self)

    def finish_job(self, job: Job, state: str, **changes) -> None:
        """Record the end of ``job`` and call ``strongroom_job_finished``; never raises."""
        self._finish_job(job, state, **changes)

    def _finish_job(self, job: Job, state: str, **changes) -> None:
        try:
            finished = self.jobs.finish(job, state, **changes)
            self.plugins.pm.hook.strongroom_job_finished(vault=self, job=finished)
        except StrongroomError:
            pass  # the operation's own outcome matters more than its record

    # --- keys --------------------------------------------------------------------------

    def key_slots(self) -> list[KeySlot]:
        return keyring.load_slots(self.store)

    def add_key(self, provider: str, *, label: str = "") -> KeySlot:
        return keyring.add_slot(self.store, self.master, self.key_context, self.plugins.key_providers, provider, label=label)

    def remove_key(self, slot_id: str, *, force: bool = False) -> KeySlot:
        return keyring.remove_slot(self.store, slot_id, force=force)

    def recovery_kit(self) -> str:
        return keyring.recovery_kit(self.vault_id, self.master)

    def info(self) -> dict:
        points = list(self.store.list("points/"))
        return {
            "url": self.url, "vault_id": self.vault_id, "name": self.settings.name,
            "format": self.config.format, "features": list(self.config.features),
            "created": self.config.created, "key_slots": len(self.key_slots()),
            "items": len(self.items()), "points": len(points),
            "packs": len(self.repo.pack_ids_on_storage()),
            "chunker": self.settings.chunker,
        }


def _newest_settings(repo: Repository) -> VaultSettings:
    """The newest settings document that decrypts and parses; damaged ones are skipped."""
    problems = []
    for name in sorted(repo.store.list("settings/"), reverse=True):
        try:
            return VaultSettings.from_dict(repo.get_document(name))
        except (IntegrityError, ObjectNotFound, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise IntegrityError(what="settings", reason="every settings document is damaged: " + "; ".join(problems[:3]))
    raise IntegrityError(what="settings", reason="the vault has no settings document")


def _home(home: str | None):
    from pathlib import Path

    return Path(home) if home else strongroom_home()


def _end_state(exc: BaseException) -> str:
    """A job interrupted by the user is cancelled; any other exception failed it."""
    return "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
