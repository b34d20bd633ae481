"""The Vault facade: items, recovery points, jobs and keys of one vault.

Callers (the CLI, tests, the future vault server) use only this class; it ties the
storage, repository, catalog and engine layers together and calls the plugin hooks.
"""

from __future__ import annotations

import json
import os
import random
from typing import Callable, Sequence

import attrs

from . import keyring
from .catalog.entry import Entry
from .catalog.reader import ContentReader
from .catalog.tree import TreeReader
from .engine.backup import BackupEngine, BackupStats
from .engine.restore import RestoreResult
from .engine.verify import Verifier, VerifyReport
from .errors import (
    AmbiguousPoint, IntegrityError, ItemExists, ItemNotFound, ObjectNotFound, PathNotInPoint,
    PointNotFound, StrongroomError, UnsupportedFormat, VaultExists, VaultNotFound,
)
from .jobs import JobLog
from .models import (
    FORMAT_VERSION, KNOWN_FEATURES, Job, ProtectedItem, RecoveryPoint, VaultConfig,
    VaultSettings, iso, new_id, time_id, utcnow,
)
from .plugins import PluginHost
from .repository.chunker import ChunkerParams
from .repository.keyproviders import KeyContext, PassphraseSource, strongroom_home
from .repository.masterkey import KeySlot, MasterKey
from .repository.repository import Repository
from .storage import Store, open_store
from .workload import BackupContext, BrowseItem, PointContext, Workload

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
class Vault:
    store: Store
    config: VaultConfig
    master: MasterKey
    settings: VaultSettings
    plugins: PluginHost
    key_context: KeyContext
    opened_with: KeySlot | None = None
    _repo: Repository | None = None
    _index_problems: list[str] | None = None

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
        names = sorted(store.list("settings/"))
        if not names:
            raise IntegrityError(what="settings", reason="the vault has no settings document")
        settings = VaultSettings.from_dict(repo.get_document(names[-1]))
        vault = cls(store, config, master, settings, plugins, ctx, slot, repo)
        plugins.pm.hook.strongroom_vault_opened(vault=vault)
        return vault

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
        return ChunkerParams.from_dict(self.settings.chunker)

    def load_index(self, *, tolerant: bool = False) -> list[str]:
        if self._index_problems is None:
            self._index_problems = self.repo.load_index(tolerant=tolerant)
        return self._index_problems

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
        for item in self.items():
            if item.name == name:
                return item
        raise ItemNotFound(item=name)

    def protect(self, workload: str, name: str, source: dict) -> ProtectedItem:
        plugin = self.workload(workload)
        try:
            item = ProtectedItem(item_id=new_id(8), name=name, workload=workload, source={}, created=iso(utcnow()))
        except ValueError as exc:
            raise StrongroomError(message=str(exc)) from None
        if any(i.name == name for i in self.items()):
            raise ItemExists(item=name)
        item = attrs.evolve(item, source=plugin.validate_source(source))
        self.repo.put_document(f"items/{item.item_id}/{time_id()}", item.to_dict())
        return item

    # --- points ------------------------------------------------------------------------

    def points(self, item: str | None = None) -> list[RecoveryPoint]:
        prefix = f"points/{self.item(item).item_id}/" if item else "points/"
        names = list(self.store.list(prefix))
        points = [RecoveryPoint.from_dict(doc) for _, doc in self.repo.get_documents(names)]
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

    def backup(self, item_name: str, *, progress: Callable[[BackupStats], None] | None = None) -> RecoveryPoint:
        item = self.item(item_name)
        job = self.jobs.start("backup", item.name)
        try:
            hook = self.plugins.pm.hook
            hook.strongroom_before_backup(vault=self, item=item)

            def run_backup(vault: Vault, item: ProtectedItem) -> RecoveryPoint:
                return self._backup(item, progress)

            # firstresult hook: plugins' wrappers run around the core's own implementation
            point = hook.strongroom_backup_wrapper.call_extra([run_backup], {"vault": self, "item": item})
            hook.strongroom_point_created(vault=self, point=point)
            hook.strongroom_after_backup(vault=self, item=item, point=point)
        except BaseException as exc:
            self._finish_job(job, "failed", error=_one_line(exc))
            raise
        state = "completed_with_warnings" if point.warnings else "completed"
        self._finish_job(job, state, point=point.point_id, bytes=point.stats.get("bytes_read", 0),
                         warnings=point.warnings, details={"stats": point.stats})
        return point

    def _backup(self, item: ProtectedItem, progress) -> RecoveryPoint:
        self.load_index()
        adopted, _ = self.repo.adopt_unindexed_packs()
        workload = self.workload(item.workload)
        parents = self.points(item.name)
        parent = parents[-1] if parents else None
        ctx = BackupContext(self, item)
        engine = BackupEngine(
            self.repo, self.chunker_params, progress=progress,
            parent=self.tree(parent) if parent else None,
            compression_level=self.settings.compression_level,
        )
        result = engine.run(workload.backup(ctx))
        stats = result.stats.to_dict()
        stats["packs_adopted"] = adopted
        point = RecoveryPoint(
            point_id=new_id(8), item_id=item.item_id, item_name=item.name, workload=item.workload,
            created=iso(utcnow()), root=result.root.hex(), parent=parent.point_id if parent else None,
            consistency=workload.consistency, stats=stats,
            warnings=tuple(ctx.warnings) + result.warnings,
        )
        self.repo.put_document(point.object_name, point.to_dict())  # the commit point
        return point

    def browse(self, item: str, ref: str | None = None, path: str = "") -> list[BrowseItem]:
        ctx = self._point_context(item, ref)
        return self.workload(ctx.item.workload).browse(ctx, path)

    def open_file(self, item: str, ref: str | None, path: str) -> ContentReader:
        """A seekable, read-only file object over the content of ``path`` in a point.

        It fetches only the chunks that reads touch (item-level readers build on it).
        """
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
            self._finish_job(job, "failed", error=_one_line(exc))
            raise
        state = "completed_with_warnings" if result.warnings else "completed"
        self._finish_job(job, state, point=ctx.point.point_id, bytes=result.stats.bytes_written,
                         warnings=result.warnings, details={"stats": result.stats.to_dict()})
        return result

    def verify(self, *, read_data: bool = False, progress=None) -> VerifyReport:
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
            self._finish_job(job, "failed", error=_one_line(exc))
            raise
        self._finish_job(job, "completed" if report.ok else "failed",
                         error=None if report.ok else f"{len(report.problems)} problem(s)",
                         bytes=report.bytes_read, details={"problems": list(report.problems[:100])})
        return report

    def rebuild_index(self) -> tuple[int, int, list[str]]:
        """Rewrite the index from the packs' own trailers; returns (packs, blobs, problems)."""
        from .repository.index import Index
        from .repository.pack import read_trailer

        old = list(self.store.list("index/"))
        entries, problems, packs = [], [], 0
        for pack_id in sorted(self.repo.pack_ids_on_storage()):
            try:
                entries.extend(read_trailer(self.store, pack_id, self.repo.envelope))
                packs += 1
            except (IntegrityError, ObjectNotFound) as exc:
                problems.append(f"data/{pack_id[:2]}/{pack_id}: {exc}")
        self.repo.write_index(entries)
        for name in old:
            self.store.delete(name)
        self.repo.index = Index()
        self.repo.index.add(entries)
        self._index_problems = []
        return packs, len(entries), problems

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


def _home(home: str | None):
    from pathlib import Path

    return Path(home) if home else strongroom_home()


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
