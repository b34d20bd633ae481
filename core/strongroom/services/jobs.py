"""Job records: every backup, restore, verify, prune and item change leaves one.

A job is written when it starts (``jobs/<job-id>/<version>``, state ``in_progress``)
and again when it ends; the newest version wins.  Job ids are time ids, so they sort by
start time.  :meth:`JobLog.running` runs an operation as a job: the job ends
``failed`` (or ``cancelled`` for an interrupt) with the error's first line when the
operation raises, and as the operation says otherwise.

Recording the end never fails the operation: a job record that cannot be written is
skipped (the operation's own outcome matters more than its record); ``on_finished``
(the ``strongroom_job_finished`` hook) is called with every job that ended.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator

import attrs

from ..errors import StrongroomError
from ..models import Job, iso, time_id, utcnow
from .versions import newest_versions

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["JobLog", "JobRun", "end_state", "one_line"]

JOB_PREFIX = "jobs/"


def end_state(exc: BaseException) -> str:
    """A job interrupted by the user is cancelled; any other exception failed it."""
    return "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


@attrs.define
class JobRun:
    """How a job run with :meth:`JobLog.running` ends: set ``state`` and ``changes``."""

    job: Job
    state: str = "completed"
    changes: dict = attrs.field(factory=dict)

    def end(self, state: str, **changes: object) -> None:
        self.state = state
        self.changes.update(changes)


class JobLog:
    """The jobs of one vault."""

    def __init__(self, repo: Repository, on_finished: Callable[[Job], None] | None = None) -> None:
        self.repo = repo
        self.on_finished = on_finished or (lambda job: None)

    def _write(self, job: Job) -> Job:
        self.repo.put_document(f"{JOB_PREFIX}{job.job_id}/{time_id()}", job.to_dict())
        return job

    def start(self, type_: str, item: str | None = None, **details: object) -> Job:
        return self._write(
            Job(job_id=time_id(), type=type_, state="in_progress", started=iso(utcnow()),
                item=item, details=dict(details))
        )

    def finish(self, job: Job, state: str, **changes: object) -> Job:
        """Record the end of ``job`` (``details`` given here are added to the start's) and
        tell ``on_finished``; a record that cannot be written is skipped."""
        details = {**job.details, **dict(changes.pop("details", None) or {})}  # type: ignore[arg-type]
        finished = attrs.evolve(job, state=state, ended=iso(utcnow()), details=details, **changes)
        try:
            self._write(finished)
            self.on_finished(finished)
        except StrongroomError:
            pass
        return finished

    @contextlib.contextmanager
    def running(self, type_: str, item: str | None = None, **details: object) -> Iterator[JobRun]:
        """Run the block as a job (see the module docstring)."""
        run = JobRun(self.start(type_, item, **details))
        try:
            yield run
        except BaseException as exc:
            self.finish(run.job, end_state(exc), error=one_line(exc))
            raise
        self.finish(run.job, run.state, **run.changes)

    def list(self, *, item: str | None = None, type_: str | None = None,
             state: str | None = None, last: int | None = None) -> list[Job]:
        newest = newest_versions(self.repo.store, JOB_PREFIX)
        names = [newest[job_id] for job_id in sorted(newest)]
        jobs = [Job.from_dict(doc) for _, doc in self.repo.get_documents(names)]
        jobs = [
            j for j in jobs
            if (item is None or j.item == item) and (type_ is None or j.type == type_)
            and (state is None or j.state == state)
        ]
        return jobs[-last:] if last else jobs
