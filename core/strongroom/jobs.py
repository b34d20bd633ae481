"""Job records: every backup, restore and verify leaves one in ``jobs/<job-id>/<version>``.

A job is written when it starts (state ``in_progress``) and again when it ends; the
newest version wins.  Job ids sort by start time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .models import Job, iso, time_id, utcnow

if TYPE_CHECKING:
    from .repository.repository import Repository


class JobLog:
    def __init__(self, repo: "Repository") -> None:
        self.repo = repo

    def _write(self, job: Job) -> Job:
        self.repo.put_document(f"jobs/{job.job_id}/{time_id()}", job.to_dict())
        return job

    def start(self, type_: str, item: str | None = None, **details: object) -> Job:
        return self._write(
            Job(job_id=time_id(), type=type_, state="in_progress", started=iso(utcnow()),
                item=item, details=dict(details))
        )

    def finish(self, job: Job, state: str, **changes: object) -> Job:
        """Record the end of ``job``; ``details`` given here are added to the start's."""
        details = {**job.details, **dict(changes.pop("details", None) or {})}  # type: ignore[arg-type]
        return self._write(attrs.evolve(job, state=state, ended=iso(utcnow()), details=details, **changes))

    def list(self, *, item: str | None = None, type_: str | None = None,
             state: str | None = None, last: int | None = None) -> list[Job]:
        newest: dict[str, str] = {}
        for name in self.repo.store.list("jobs/"):
            parts = name.split("/")
            if len(parts) == 3 and name > newest.get(parts[1], ""):
                newest[parts[1]] = name
        names = [newest[job_id] for job_id in sorted(newest)]
        jobs = [Job.from_dict(doc) for _, doc in self.repo.get_documents(names)]
        jobs = [
            j for j in jobs
            if (item is None or j.item == item) and (type_ is None or j.type == type_)
            and (state is None or j.state == state)
        ]
        return jobs[-last:] if last else jobs
