"""Job records: every backup, restore, verify, prune and item change leaves one.

A job is written when it starts (``jobs/<job-id>/<version>``, state ``in_progress``,
with the host, pid and start time of the process that runs it) and again when it ends;
the newest version wins.  Job ids are time ids, so they sort by start time.
:meth:`JobLog.running` runs an operation as a job: the job ends ``failed`` (or
``cancelled`` for an interrupt: Ctrl-C, SIGINT, SIGTERM) with the error's first line
when the operation raises, and as the operation says otherwise.

**A vault that cannot be written** (a read-only mount, a snapshot, a credential without
write rights) does not stop an operation that only reads it.  When the start of a job
cannot be written, the job is recorded on this machine instead, in
``<local>/<job-id>/<version>.json`` (``local`` is ``$STRONGROOM_HOME/jobs/<vault-id>``;
plain JSON, files 0600 in folders 0700) with ``local`` true, and ``notify`` gets one
line saying so; the later jobs of the same :class:`JobLog` go there at once, without a
second line.  Without a local folder the job is not recorded (the line says that).  An
end that cannot be written to the vault is written to the local folder.  Recording
never fails the operation: a record that can be written nowhere is skipped;
``on_finished`` (the ``strongroom_job_finished`` hook) is called with every job that
ended.

**Listing** (:meth:`JobLog.list`) merges the vault's records and this machine's (the
newest version of each job wins; foreign objects under ``jobs/`` are left out) and
shows what an ``in_progress`` record has become, without writing anything: a job of
this host whose process is gone (ended, its pid now running another program, or the
host rebooted since) is ``abandoned``; a job of another host, or a record that names no
process, started more than :data:`STALE_AFTER` ago is ``stale`` (a process of another
host cannot be checked from here, and no job runs that long).  Both carry an ``error``
saying why.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import attrs

from ..errors import IntegrityError, ObjectNotFound, StorageError, StrongroomError
from ..models import Job, iso, parse_iso, time_id, utcnow
from ..processes import GONE, UNKNOWN, ProcessId
from .versions import newest_versions

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["STALE_AFTER", "JobLog", "JobRun", "end_state", "one_line"]

JOB_PREFIX = "jobs/"
#: An ``in_progress`` job that cannot be checked is shown ``stale`` after this long.
STALE_AFTER = dt.timedelta(days=7)

_log = logging.getLogger("strongroom.jobs")


def end_state(exc: BaseException) -> str:
    """A job interrupted by the user or a signal is cancelled; any other exception failed it."""
    return "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (for an interrupt without one,
    ``interrupted``; otherwise its type's name when it has none)."""
    text = str(exc)
    if not text and isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return text.splitlines()[0] if text else type(exc).__name__


def _storage_reason(exc: StorageError) -> str:
    """What the storage said, without the object's name: the OS's words when there are some."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return one_line(exc)


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
    """The jobs of one vault (see the module docstring)."""

    def __init__(self, repo: Repository, on_finished: Callable[[Job], None] | None = None, *,
                 local: Path | None = None, notify: Callable[[str], None] | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.repo = repo
        self.on_finished = on_finished or (lambda job: None)
        self.local = local
        self.notify = notify or _log.warning
        self.clock = clock
        self._unwritable: str | None = None  # why the vault could not be written, once it could not

    # --- writing -------------------------------------------------------------------------

    def _write_vault(self, job: Job) -> Job:
        self.repo.put_document(f"{JOB_PREFIX}{job.job_id}/{time_id()}", job.to_dict())
        return job

    def _write_local(self, job: Job) -> Job | None:
        if self.local is None:
            return None
        job = attrs.evolve(job, local=True)
        folder = self.local / job.job_id
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / f"{time_id()}.json"
            partial = path.with_suffix(".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(job.to_dict(), fh, indent=1)
            os.replace(partial, path)
        except OSError:
            return None
        return job

    def _vault_failed(self, job: Job, exc: StorageError) -> Job:
        """The vault refused a job record: keep it here, and say so once."""
        first = self._unwritable is None
        self._unwritable = _storage_reason(exc)
        kept = self._write_local(job)
        if first:
            where = (f"it is recorded on this machine only ('strongroom jobs' shows it)" if kept
                     else "it is not recorded")
            self.notify(f"the vault cannot be written ({self._unwritable}); {job.type} job {job.job_id}: {where}")
        return kept or job

    def _write(self, job: Job) -> Job:
        _log.debug("job %s (%s): recording %s", job.job_id, job.type, job.state)
        if job.local or self._unwritable is not None:
            return self._write_local(job) or job
        try:
            return self._write_vault(job)
        except StorageError as exc:
            return self._vault_failed(job, exc)

    def start(self, type_: str, item: str | None = None, **details: object) -> Job:
        me = ProcessId.current()
        return self._write(
            Job(job_id=time_id(), type=type_, state="in_progress", started=iso(utcnow()),
                item=item, details=dict(details), host=me.host, pid=me.pid, process_start=me.start)
        )

    def finish(self, job: Job, state: str, **changes: object) -> Job:
        """Record the end of ``job`` (``details`` given here are added to the start's),
        where its start was recorded, and tell ``on_finished``."""
        details = {**job.details, **dict(changes.pop("details", None) or {})}  # type: ignore[arg-type]
        finished = self._write(attrs.evolve(job, state=state, ended=iso(utcnow()), details=details, **changes))
        try:
            self.on_finished(finished)
        except StrongroomError:
            pass
        return finished

    @contextlib.contextmanager
    def running(self, type_: str, item: str | None = None, **details: object) -> Iterator[JobRun]:
        """Run the block as a job (see the module docstring)."""
        run = JobRun(self.start(type_, item, **details))
        what = f"{type_} of '{item}'" if item else type_
        _log.info("%s: started (job %s)", what, run.job.job_id)
        try:
            yield run
        except BaseException as exc:
            self.finish(run.job, end_state(exc), error=one_line(exc))
            _log.info("%s: %s (job %s): %s", what, end_state(exc), run.job.job_id, one_line(exc))
            raise
        self.finish(run.job, run.state, **run.changes)
        _log.info("%s: %s (job %s)", what, run.state, run.job.job_id)

    # --- reading -------------------------------------------------------------------------

    def _local_newest(self) -> dict[str, Path]:
        newest: dict[str, Path] = {}
        if self.local is None or not self.local.is_dir():
            return newest
        for folder in self.local.iterdir():
            versions = sorted(folder.glob("*.json")) if folder.is_dir() else []
            if versions:
                newest[folder.name] = versions[-1]
        return newest

    def list(self, *, item: str | None = None, type_: str | None = None,
             state: str | None = None, last: int | None = None,
             problems: list[str] | None = None, since: dt.datetime | None = None) -> list[Job]:
        """The jobs, oldest first, as they are now (see the module docstring).  A job
        record that cannot be read is left out and described in ``problems``.  With
        ``since``, only the jobs started then or later are read (a job id is its start time)."""
        remote = newest_versions(self.repo.store, JOB_PREFIX, self.repo.foreign)
        local = self._local_newest()
        if since is not None:
            cut = time_id(since)[:22]
            remote = {job_id: name for job_id, name in remote.items() if job_id[:22] >= cut}
            local = {job_id: path for job_id, path in local.items() if job_id[:22] >= cut}
        jobs: dict[str, Job] = {}
        newer_remote = [name for job_id, name in sorted(remote.items())
                        if job_id not in local or local[job_id].stem < name.rpartition("/")[2]]
        unreadable = problems if problems is not None else []
        for name, found in self._read_records(newer_remote):
            if isinstance(found, Job):
                jobs[found.job_id] = found
            else:
                unreadable.append(f"{name}: {found}")
        for job_id, path in local.items():
            if job_id not in jobs:
                try:
                    jobs[job_id] = attrs.evolve(Job.from_dict(json.loads(path.read_text())), local=True)
                except (OSError, ValueError, TypeError, IntegrityError) as exc:
                    unreadable.append(f"{path}: {exc}")
        found = [
            j for j in (self.as_seen(jobs[job_id]) for job_id in sorted(jobs))
            if (item is None or j.item == item) and (type_ is None or j.type == type_)
            and (state is None or j.state == state)
        ]
        return found[-last:] if last else found

    def _read_records(self, names: list[str]) -> list[tuple[str, Job | StrongroomError]]:
        """Each named job record, or the error that kept it from being read."""

        def read(name: str) -> Job | StrongroomError:
            try:
                return Job.from_dict(self.repo.get_document(name))
            except (IntegrityError, ObjectNotFound) as exc:
                return exc

        with ThreadPoolExecutor(max(1, min(len(names), self.repo.io_threads))) as pool:
            return list(zip(names, pool.map(read, names)))

    def as_seen(self, job: Job) -> Job:
        """``job`` as it is now: an ``in_progress`` record may be ``abandoned`` or ``stale``."""
        if job.state != "in_progress":
            return job
        process = ProcessId(job.host, job.pid, job.process_start) if job.host and job.pid else None
        seen = process.state() if process else UNKNOWN
        if seen == GONE:
            return attrs.evolve(job, state="abandoned",
                                error=f"process {job.pid} on {job.host} ended without recording an end")
        if seen == UNKNOWN:
            try:
                age = self.clock() - parse_iso(job.started)
            except (TypeError, ValueError):
                return job
            if age > STALE_AFTER:
                where = f"on host {job.host}" if job.host else "by an unknown process"
                return attrs.evolve(job, state="stale",
                                    error=f"in progress {where} for {age.days} days; cannot be checked from here")
        return job
