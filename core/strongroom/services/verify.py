"""Verify and rebuild-index: checking a vault, and rewriting its index from its packs.

:meth:`VerifyService.verify` is a ``verify`` job around the engine's
:class:`~strongroom.engine.verify.Verifier`: the index is loaded tolerantly (damaged
index files are reported, not fatal), every point header is read (a damaged one is
reported), then the structure and, with ``read_data``, every pack are checked.  The job
fails when anything is wrong.

:meth:`VerifyService.rebuild_index` rewrites the index from the packs' own trailers,
holding the prune lease (it replaces every index file, which must not happen while a
prune replaces some); the old index files are deleted only once the new one is written.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound
from ..models import RecoveryPoint
from .points import POINT_PREFIX

if TYPE_CHECKING:
    from ..engine.verify import VerifyReport
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from .jobs import JobLog

__all__ = ["VerifyService"]


class VerifyService:
    """Checks (and rewrites the index of) one vault."""

    def __init__(self, repo: Repository, index: IndexState, jobs: JobLog, lease_ttl: Callable[[], float],
                 clock: Callable[[], dt.datetime]) -> None:
        self.repo = repo
        self.index = index
        self.jobs = jobs
        self.lease_ttl = lease_ttl
        self.clock = clock

    def verify(self, *, read_data: bool = False, progress: Callable[[str], None] | None = None) -> VerifyReport:
        from ..engine.verify import Verifier

        with self.jobs.running("verify", None, read_data=read_data) as run:
            problems = self.index.load(tolerant=True)
            points = []
            for name in self.repo.store.list(POINT_PREFIX):
                try:
                    points.append(RecoveryPoint.from_dict(self.repo.get_document(name)))
                except (IntegrityError, ObjectNotFound) as exc:
                    problems.append(f"{name}: {exc}")
            report = Verifier(self.repo, progress=progress).run(points, read_data=read_data)
            report = attrs.evolve(report, problems=tuple(problems) + report.problems)
            run.end("completed" if report.ok else "failed",
                    error=None if report.ok else f"{len(report.problems)} problem(s)",
                    bytes=report.bytes_read, details={"problems": list(report.problems[:100])})
        return report

    def rebuild_index(self) -> tuple[int, int, list[str]]:
        """Rewrite the index from the packs' trailers; returns (packs, blobs, problems)."""
        from ..repository.leases import Lease
        from ..repository.pack import pack_name, read_trailer

        repo, store = self.repo, self.repo.store
        with Lease(repo, "rebuild-index", ttl=self.lease_ttl(), clock=self.clock):
            old = list(store.list("index/"))
            entries, problems, packs = [], [], 0
            for pack_id in sorted(repo.pack_ids_on_storage()):
                try:
                    entries.extend(read_trailer(store, pack_id, repo.envelope))
                    packs += 1
                except (IntegrityError, ObjectNotFound) as exc:
                    problems.append(f"{pack_name(pack_id)}: {exc}")
            repo.write_index(entries)
            for name in old:
                store.delete(name)
            self.index.forget()
        return packs, len(entries), problems
