"""Verify: checking a vault, its documents, its structure and (with ``read_data``) its packs.

:meth:`VerifyService.verify` is a ``verify`` job around the engine's
:class:`~strongroom.engine.verify.Verifier`: the whole vault is listed once; the index
is loaded tolerantly (damaged index files are reported, not fatal); every
recovery-point header, point status and settings document is read (a damaged one is a
problem); the key slots are checked (:func:`check_key_slots`); then the structure, the
trailer of every pack not read whole and, with ``read_data``, every pack on storage are
checked.  The job fails when anything is wrong.

Given the vault's audit ``journal`` (:mod:`.journal`), verify walks its chain: an entry
changed, damaged or missing (a gap) is a problem.  Settings documents are read as the
vault reads them (:func:`.settings.read_history`): a damaged one, and one that is not
taken because it breaks the security rules (undoes an irreversible setting, or weakens
security under a guard without its ticket), is a problem, never a crash.

Objects whose names are not the vault's (*foreign objects*, :mod:`strongroom.repository.names`:
a sync tool's ``data/ab/desktop.ini``, a stray file) are notes, never problems: the
first :data:`FOREIGN_SHOWN` by name, then how many more.  Verify neither reads nor
removes them.

``subset`` (``N/M`` or ``N%``, :class:`~strongroom.engine.subset.Subset`) reads only some
packs; the structure is always checked in full.  For ``N%`` the last pack read is kept
as a cursor in ``cursor_file`` (one small JSON file per vault in the client's home
folder), so repeated runs go round every pack; a cursor that cannot be read starts from
the first pack, one that cannot be saved is a note.  Nothing is written to the vault but
the job record.

``secondary`` (a geo vault's, reached only when something is damaged or missing:
:class:`~strongroom.services.heal.Advisor`): each damaged point header, point status or
settings document, each damaged blob without an intact copy here and each missing pack
says whether the secondary holds an intact copy ("healable from the secondary: run
'strongroom vault repair --apply'"), and so does a note for each document the vault head
lists that is gone.  Nothing is written to either side.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import attrs

from ..errors import IntegrityError, ObjectNotFound, UsageError
from ..models import RecoveryPoint
from ..repository.names import vault_names
from .points import POINT_PREFIX
from .pointstatus import STATUS_PREFIX, PointStatus
from .settings import read_history

if TYPE_CHECKING:
    from ..engine.subset import Subset
    from ..engine.verify import VerifyReport
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from .head import Rollback
    from .heal import Secondary
    from .jobs import JobLog
    from .journal import Journal
    from .keys import KeySlots

__all__ = ["FOREIGN_SHOWN", "VerifyService", "check_key_slots", "foreign_notes", "read_documents", "with_rollback"]


def with_rollback(report: VerifyReport, found: Rollback | None) -> VerifyReport:
    """``report`` carrying ``found``, when something was found."""
    if found is None or not found.found:
        return report
    from ..engine.verify import VerifyWithHead  # the verify engine: imported by a verify only

    fields = {f.name: getattr(report, f.name) for f in attrs.fields(type(report)) if f.init}
    return VerifyWithHead(**fields, rollback=found)


#: Foreign objects named one by one in verify's notes; the rest are counted.
FOREIGN_SHOWN = 20


def read_documents(repo: Repository, prefix: str, parse: Callable[[dict], object],
                   names: Iterable[str] | None = None) -> tuple[list, list[tuple[str, str]]]:
    """(parsed documents, [(name, problem)]) of every document under ``prefix`` (of
    ``names``, when the caller has listed them; foreign objects are left out); one that
    fails to decrypt or to parse is a problem (one deleted meanwhile is skipped)."""
    good: list = []
    bad: list[tuple[str, str]] = []
    listed = repo.list_names(prefix) if names is None else [n for n in names if n.startswith(prefix)]
    for name in sorted(listed):
        try:
            good.append(parse(repo.get_document(name)))
        except ObjectNotFound:
            continue
        except IntegrityError as exc:
            bad.append((name, str(exc)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            bad.append((name, f"Integrity error: {name} is damaged (malformed: {exc})."))
    return good, bad


def foreign_notes(foreign: Iterable[str]) -> list[str]:
    """Verify's notes about foreign objects: the first :data:`FOREIGN_SHOWN` by name, then a count."""
    names = sorted(foreign)
    notes = [f"{name}: not an object of this vault (a foreign object: another program's file, a sync tool's"
             " copy?): never read; remove it if nothing else needs it" for name in names[:FOREIGN_SHOWN]]
    if len(names) > FOREIGN_SHOWN:
        notes.append(f"... and {len(names) - FOREIGN_SHOWN} more foreign object(s), {len(names)} in all")
    return notes


def check_key_slots(keys: KeySlots) -> tuple[list[str], list[str]]:
    """(notes, problems) about the key slots: every object under ``keys/`` must be a slot of
    this vault under its own name (a foreign or malformed one is a problem); every slot this
    client can open without asking (the local key here, a passphrase given in the
    environment) must unwrap this master key (a problem if its key is here and it does not);
    a slot it cannot check, or of the old format, is a note."""
    return keys.check()


class VerifyService:
    """Checks one vault (and its key slots, when given ``key_slots``; what went backwards,
    when given ``check_head``, the vault head's check: :mod:`.head`)."""

    def __init__(self, repo: Repository, index: IndexState, jobs: JobLog,
                 clock: Callable[[], dt.datetime], cursor_file: Path | None = None,
                 key_slots: KeySlots | None = None, check_head: Callable[[], Rollback] | None = None,
                 journal: Journal | None = None, vault_id: str | None = None) -> None:
        self.repo = repo
        self.index = index
        self.jobs = jobs
        self.clock = clock
        self.cursor_file = cursor_file
        self.check_head = check_head
        self.key_slots = key_slots
        self.journal = journal
        self.vault_id = vault_id

    def verify(self, *, read_data: bool = False, subset: str | None = None,
               progress: Callable[[str], None] | None = None,
               secondary: Callable[[], Secondary | None] | None = None) -> VerifyReport:
        from ..engine.subset import Subset
        from ..engine.verify import Verifier
        from .heal import Advisor

        chosen = None
        if subset is not None:
            try:
                chosen = Subset.parse(subset)
            except ValueError as exc:
                raise UsageError(message=f"--read-data-subset: {exc}") from None
            read_data = True
        with self.jobs.running("verify", None, read_data=read_data, subset=subset) as run:
            foreign: set[str] = set()
            listed = vault_names(self.repo.store.list(""), foreign)  # one listing of everything
            rollback = self.check_head() if self.check_head is not None else None
            problems = self.index.load(tolerant=True)
            problems += [f"rollback: {line}" for line in (rollback.lines if rollback else ())]
            notes: list[str] = foreign_notes(foreign)
            advisor = Advisor(secondary, notes) if secondary is not None else None
            points, bad = read_documents(self.repo, POINT_PREFIX, RecoveryPoint.from_dict, listed)
            bad += read_documents(self.repo, STATUS_PREFIX, PointStatus.from_dict, listed)[1]
            problems += [f"{name}: {problem}{advisor.document(name) if advisor else ''}" for name, problem in bad]
            problems += self._settings_problems()
            if advisor is not None and rollback is not None:
                notes += [f"{name}: gone from the vault{advisor.document(name)}"
                          for name in rollback.missing if not name.startswith("keys/")]
            if self.journal is not None:
                problems += [f"journal: {line}" for line in self.journal.verify().problems]
            if self.key_slots is not None:
                key_notes, key_problems = check_key_slots(self.key_slots)
                notes += key_notes
                problems += key_problems
            cursor: dict = {}
            select = self._selector(chosen, notes, cursor) if chosen is not None else None
            packs = {name.rsplit("/", 1)[-1] for name in listed if name.startswith("data/")}
            report = Verifier(self.repo, progress=progress).run(
                points, read_data=read_data, select=select, subset=subset, on_storage=packs,
                elsewhere=advisor.blobs if advisor is not None else None)
            if chosen is not None and chosen.rotates:
                self._save_cursor(cursor.get("after"), notes)  # once the packs were read
            report = attrs.evolve(report, problems=tuple(problems) + report.problems,
                                  notes=report.notes + tuple(notes), foreign_objects=len(foreign))
            run.end("completed" if report.ok else "failed",
                    error=None if report.ok else f"{len(report.problems)} problem(s)",
                    bytes=report.bytes_read, details={"problems": list(report.problems[:100])})
        return with_rollback(report, rollback)

    def _settings_problems(self) -> list[str]:
        """Damaged settings documents, and those not taken under the security rules."""
        try:
            history = read_history(self.repo, self.vault_id)
        except IntegrityError as exc:
            return [f"settings: {exc}"]
        return list(history.damaged) + [f"{line} (not taken: the settings before it stay in force)"
                                        for line in history.rejected]

    def _selector(self, subset: Subset, notes: list[str], cursor: dict) -> Callable[[set[str]], list[str]]:
        """The packs ``subset`` reads; for ``N%``, the cursor to save is left in ``cursor["after"]``."""
        def select(on_storage: set[str]) -> list[str]:
            before = self._load_cursor() if subset.rotates else None
            packs, cursor["after"] = subset.select(on_storage, before)
            notes.append(f"read-data-subset {subset.text}: {len(packs)} of {len(on_storage)} pack(s)"
                         + (f", after pack {before}" if before else ""))
            return packs
        return select

    def _load_cursor(self) -> str | None:
        if self.cursor_file is None:
            return None
        try:
            cursor = json.loads(self.cursor_file.read_text()).get("cursor")
        except (OSError, ValueError, AttributeError):
            return None
        return cursor if isinstance(cursor, str) else None

    def _save_cursor(self, cursor: str | None, notes: list[str]) -> None:
        if self.cursor_file is None or cursor is None:
            return
        try:
            self.cursor_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cursor_file.with_name(self.cursor_file.name + ".tmp")
            tmp.write_text(json.dumps({"cursor": cursor, "saved": self.clock().isoformat()}))
            os.replace(tmp, self.cursor_file)
        except OSError as exc:
            notes.append(f"could not save the subset cursor in {self.cursor_file} ({exc.strerror or exc}):"
                         " the next run reads the same packs")
