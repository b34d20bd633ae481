"""The longer operations behind the :class:`~strongroom.vault.Vault` facade.

- :func:`backup_point`: the core of a backup, run inside the backup hooks: index,
  prune's marks and sweeps (:mod:`strongroom.engine.gcstate`), the engine, the checks
  before committing, the point's initial retention, and the header (the commit);
- :func:`prune`: a prune run recorded as a ``prune`` job;
- :func:`rebuild_index`: the index rewritten from the packs' own trailers.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from . import lifecycle
from .engine.backup import BackupEngine
from .engine.gcstate import GcView
from .engine.prune import PruneReport, Pruner
from .errors import IntegrityError, InvalidRetention, ObjectNotFound
from .models import Job, ProtectedItem, RecoveryPoint, iso, new_id
from .policy.retention import PointFacts
from .workload import BackupContext

if TYPE_CHECKING:
    from .vault import Vault

__all__ = ["backup_point", "check_retain_until", "prune", "rebuild_index"]


def check_retain_until(vault: Vault, retain_until: dt.datetime) -> None:
    """InvalidRetention unless ``retain_until`` is ahead, and past the floor when floors are on."""
    now = vault.clock()
    if retain_until <= now:
        raise InvalidRetention(reason=f"--retain-until {iso(retain_until)[:19]} is not in the future")
    floors = vault.policies.floors()
    if floors is not None and retain_until < now + dt.timedelta(days=floors.daily):
        raise InvalidRetention(reason=f"--retain-until must be at least {floors.daily} days ahead (the vault's floor)")


def backup_point(vault: Vault, item: ProtectedItem, progress, *, retain_until: dt.datetime | None = None,
                 trigger: str = "on_demand") -> RecoveryPoint:
    """Back up ``item`` and commit its recovery point."""
    repo = vault.repo
    vault.refresh_index()
    gc = GcView.load(repo, vault.index_files)  # after the index: see gcstate's rules
    adopted, _ = repo.adopt_packs(repo.pack_ids_on_storage() - repo.index.named_pack_ids() - gc.doomed)
    workload = vault.workload(item.workload)
    parents = vault.points_of(item)
    parent = parents[-1] if parents else None
    ctx = BackupContext(vault, item)
    engine = BackupEngine(
        repo, vault.chunker_params, progress=progress,
        parent=vault.tree(parent) if parent else None,
        compression_level=vault.settings.compression_level,
    )
    with gc.masking(repo):
        result = engine.run(workload.backup(ctx))
    now = vault.clock()
    stats = result.stats.to_dict()
    stats["packs_adopted"] = adopted
    stats["blobs_rescued"] = gc.before_commit(repo, result.root, now, item.name)
    point_id = new_id(8)
    verdicts = lifecycle.evaluate_item(vault, item, parents, now, extra=PointFacts(point_id, now, retain_until))
    verdict = next(v for v in verdicts if v.point_id == point_id)
    point = RecoveryPoint(
        point_id=point_id, item_id=item.item_id, item_name=item.name, workload=item.workload,
        created=iso(now), root=result.root.hex(), parent=parent.point_id if parent else None,
        consistency=ctx.consistency or workload.consistency, stats=stats,
        warnings=tuple(ctx.warnings) + result.warnings,
        expires_at=iso(verdict.expires_at) if verdict.expires_at else None, tags=verdict.tags,
        retain_until=iso(retain_until) if retain_until else None, trigger=trigger,
    )
    repo.put_document(point.object_name, point.to_dict())  # the commit point
    return point


def prune(vault: Vault, *, dry_run: bool = False, grace: float | None = None,
          progress: Callable[[str], None] | None = None) -> PruneReport:
    """Run prune; a real run is recorded as a ``prune`` job once it holds the lease (a prune
    that finds another one running records nothing)."""
    settings = vault.prune_settings
    if grace is not None:
        settings = attrs.evolve(settings, grace=grace)
    pruner = Pruner(vault, settings, dry_run=dry_run, progress=progress)
    if dry_run:
        return pruner.run()
    jobs: list[Job] = []
    try:
        report = pruner.run(on_lease=lambda: jobs.append(vault.jobs.start("prune", None, grace=settings.grace)))
    except BaseException as exc:
        if jobs:
            vault.finish_job(jobs[0], "failed", error=(str(exc) or type(exc).__name__).splitlines()[0])
        raise
    vault.finish_job(jobs[0], "completed", bytes=max(report.bytes_freed, 0), details=report.to_dict())
    return report


def rebuild_index(vault: Vault) -> tuple[int, int, list[str]]:
    """Rewrite the index from the packs' trailers; returns (packs, blobs, problems)."""
    from .repository.pack import read_trailer

    store, repo = vault.store, vault.repo
    old = list(store.list("index/"))
    entries, problems, packs = [], [], 0
    for pack_id in sorted(repo.pack_ids_on_storage()):
        try:
            entries.extend(read_trailer(store, pack_id, repo.envelope))
            packs += 1
        except (IntegrityError, ObjectNotFound) as exc:
            problems.append(f"data/{pack_id[:2]}/{pack_id}: {exc}")
    repo.write_index(entries)
    for name in old:
        store.delete(name)
    vault.forget_index()
    return packs, len(entries), problems
