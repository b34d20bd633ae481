"""The server's own jobs: what each hosted vault needs when no client is around.

A vault on a server is backed up by its clients, which hold the sources; the vault's own
upkeep is the server's (as Azure runs retention and monitoring in the service).  Every
``interval`` seconds :class:`ServerJobs` goes through the hosted vaults, each with a fresh
view opened with the server's key slot, and:

- raises a ``schedule.missed`` alert for an item past its schedule (and resolves those
  that ran since);
- runs the prune when its schedule says it is due (``strongroom prune settings``), which
  soft-deletes expired points, purges those past their purge time and frees data; the
  prune's lease and run claims keep several servers (or a client's ``run-due``) from
  pruning the same slot twice;
- extends the S3 object locks of what live points need when that is due (immutability);
- verifies the vault once every ``verify_every`` (a day by default), reading a share of
  the packs each time (``verify_subset``, 15 % by default, from where the last one
  stopped), so all data is read within a week; problems raise a ``verify.problems`` alert.

Each of these is a job of the vault (``jobs``, the dashboard), recorded with the server's
host; one vault's failure is reported and never stops the others.  :meth:`ServerJobs.run_once`
is one pass (tests call it); :meth:`ServerJobs.start` runs passes on a thread until
:meth:`ServerJobs.stop`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

import attrs

from ..errors import StrongroomError
from ..models import parse_iso

if TYPE_CHECKING:
    from .app import ServerState

__all__ = ["ServerJobs", "VaultUpkeep"]


@attrs.frozen
class VaultUpkeep:
    """What one pass did for one vault."""

    vault: str
    pruned: bool = False
    prune: str = ""
    verified: bool = False
    verify: str = ""
    alerts: int = 0
    error: str = ""


class ServerJobs:
    """The server's upkeep of its hosted vaults (see the module docstring)."""

    def __init__(self, state: ServerState, *, interval: float = 900.0,
                 verify_every: dt.timedelta = dt.timedelta(days=1), verify_subset: str = "15%") -> None:
        self.state = state
        self.interval = interval
        self.verify_every = verify_every
        self.verify_subset = verify_subset
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._verified: dict[str, dt.datetime] = {}  # vault -> when this server last verified it
        #: Passes finished by the thread (:meth:`start`).
        self.passes = 0

    def run_once(self) -> list[VaultUpkeep]:
        """One pass over every hosted vault."""
        return [self._upkeep(name) for name in self.state.hosted.names() if not self._stop.is_set()]

    def _upkeep(self, name: str) -> VaultUpkeep:
        try:
            vault = self.state.hosted.vault(name).reopen()  # a view of its own: routes share the cached one
            vault.clock = self.state.clock
            report = vault.run_due(kinds=("prune",), should_stop=self._stop.is_set)
            alerts = len([a for a in vault.alerts.list() if a.kind == "schedule.missed"])
            prune = next((r for r in report.results if r[0] == "prune"), None)
            verified, verify = False, ""
            if self._verify_due(name, vault):
                self._verified[name] = self.state.clock()
                result = vault.verify(subset=self.verify_subset)
                verified, verify = True, f"{len(result.problems)} problem(s)"
            return VaultUpkeep(vault=name, pruned=prune is not None and prune[2] == "completed",
                               prune=" ".join(prune[2:]) if prune else "",
                               verified=verified, verify=verify, alerts=alerts)
        except StrongroomError as exc:
            return VaultUpkeep(vault=name, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _verify_due(self, name: str, vault) -> bool:
        """Whether the last verify (this server's, else the newest verify job) is older than
        ``verify_every``."""
        last = self._verified.get(name)
        if last is None:
            jobs = vault.jobs.list(type_="verify", last=1)
            try:
                last = parse_iso(jobs[-1].started) if jobs else None
            except ValueError:
                last = None
        return last is None or self.state.clock() - last >= self.verify_every

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Run a pass now and every ``interval`` seconds, on a daemon thread."""
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # noqa: BLE001 - a bug in one pass must not end the upkeep
                    pass
                self.passes += 1
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="strongroom-server-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Start nothing new; wait a while for a pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
