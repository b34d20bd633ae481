"""The vault's security rules in force: who may weaken protection, delete early, or unlink the guard.

:class:`SecurityService` is the one place the other services ask before a critical
operation (:data:`~strongroom.policy.security.OPERATIONS`):

- :meth:`~SecurityService.authorize` lets an operation through when the vault has no
  guard, or when it is given a guard ticket (:mod:`.tickets`) signed for this vault, this
  operation and exactly these parameters, unexpired and never used before (its use is
  recorded, :meth:`.journal.Journal.use_ticket`).  Otherwise it journals the refusal,
  raises a security alert and raises :class:`~strongroom.errors.TicketRequired` or
  :class:`~strongroom.errors.TicketInvalid`.
- :meth:`~SecurityService.change` writes new security settings: never one that undoes an
  irreversible state (:class:`~strongroom.errors.IrreversibleSetting`), and a weakening only
  once :meth:`authorize` allowed it; the ticket is kept in the settings document
  (``authorized_by``) so that every reader can check it (:mod:`.settings`).  A weakening
  raises a security alert.
- :meth:`~SecurityService.rehearsal` (and ``authorize(..., dry_run=True)``): the same
  checks for a ``--dry-run``, writing nothing: no ticket use, no journal entry, no alert;
  a refusal raises the error the real run would.
- :meth:`~SecurityService.require_deletable`: while immutability is on, a point may not be
  deleted before it expires (:class:`~strongroom.errors.ImmutabilityViolation`).
- :meth:`~SecurityService.refuse` journals and alerts any other refusal a service makes.

Security alerts go to ``alert`` (``(category, kind, summary, *, details)``, the vault's
alerts), which cannot be turned off.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Callable, Iterator

from ..errors import ImmutabilityViolation, IrreversibleSetting, SecurityError, TicketRequired, UsageError
from ..models import parse_iso
from ..policy.security import OPERATIONS, SecuritySettings, irreversible_change, weakenings
from ..storage.ticket import set_ticket
from .tickets import verify_ticket

if TYPE_CHECKING:
    from ..models import RecoveryPoint
    from .journal import Journal
    from .settings import SettingsBook

__all__ = ["SecurityService", "WEAKENING_ALERTS"]

#: The security alert each weakening raises: (kind, summary).
WEAKENING_ALERTS = {
    "soft-delete.disable": ("soft-delete.disabled", "soft delete was disabled"),
    "soft-delete.shorten": ("soft-delete.shortened", "soft delete's retention was shortened"),
    "immutability.disable": ("immutability.disabled", "immutability was disabled or its lock shortened"),
    "guard.unlink": ("guard.unlinked", "the vault's guard was unlinked"),
}


class SecurityService:
    """The security settings of one vault and the checks made with them."""

    def __init__(self, vault_id: str, book: SettingsBook, journal: Journal, clock: Callable[[], dt.datetime],
                 alert: Callable[..., object]) -> None:
        self.vault_id = vault_id
        self.book = book
        self.journal = journal
        self.clock = clock
        self.alert = alert
        self._rehearsing = False

    @contextlib.contextmanager
    def rehearsal(self) -> Iterator[None]:
        """Within: every check as usual, nothing written (a dry run; see the module docstring)."""
        before, self._rehearsing = self._rehearsing, True
        try:
            yield
        finally:
            self._rehearsing = before

    @property
    def settings(self) -> SecuritySettings:
        return SecuritySettings.from_dict(self.book.current.security)

    # --- critical operations ---------------------------------------------------------------

    def authorize(self, operation: str, params: dict[str, str], ticket: str | None, *,
                  dry_run: bool = False) -> str | None:
        """Allow ``operation`` with ``params`` (see the module docstring); the ticket's nonce,
        or None when the vault has no guard.  ``dry_run``: check only, write nothing."""
        if dry_run and not self._rehearsing:
            with self.rehearsal():
                return self.authorize(operation, params, ticket)
        if operation not in OPERATIONS:
            raise UsageError(message=f"unknown critical operation {operation!r}")
        params = {str(k): str(v) for k, v in params.items()}
        guard = self.settings.guard
        if not guard.linked:
            return None
        try:
            if ticket is None:
                shown = "".join(f" --param {k}={v}" for k, v in sorted(params.items()))
                raise TicketRequired(operation=operation, what=OPERATIONS[operation], params=shown)
            checked = verify_ticket(ticket, guard.raw_key, vault_id=self.vault_id, operation=operation,
                                    params=params, now=self.clock())
            if self._rehearsing:
                self.journal.check_ticket(checked.nonce, operation)
                return checked.nonce
            self.journal.use_ticket(checked.nonce, operation)
        except SecurityError as exc:
            self.refuse(operation, params, exc)
        set_ticket(ticket)  # a server hosting the vault checks it again (storage.ticket)
        self.journal.record(operation, params, "succeeded", detail="authorized by the guard's ticket",
                            ticket=checked.nonce)
        return checked.nonce

    def refuse(self, operation: str, params: dict, error: SecurityError) -> None:
        """Journal a refused critical operation, raise a security alert, raise ``error``."""
        from contextlib import suppress

        from ..errors import StrongroomError

        if self._rehearsing:
            raise error
        with suppress(StrongroomError, OSError):  # the refusal stands even if storage fails now
            self.journal.record(operation, params, "refused", detail=str(error))
        with suppress(StrongroomError, OSError):
            self.alert("security", "operation.refused", f"refused {operation}: {error}",
                       details={"operation": operation, "params": dict(params), "error": type(error).__name__})
        raise error

    def change(self, new: SecuritySettings, *, ticket: str | None = None, operation: str = "security.change",
               params: dict | None = None) -> SecuritySettings:
        """Put ``new`` in force (see the module docstring)."""
        old = self.settings
        params = dict(params or {})
        reason = irreversible_change(old, new)
        if reason is not None:
            self.refuse(operation, params, IrreversibleSetting(reason=reason))
        needed = weakenings(old, new)
        if len(needed) > 1 and old.guard.linked:
            raise UsageError(message="change one protection at a time: each weakening needs its own ticket")
        used = [self.authorize(op, op_params, ticket) for op, op_params in needed]
        with self.journal.operation(operation, {**params, **_summary(new)}):
            self.book.update(security=new.to_dict(), authorized_by=(ticket,) if ticket and any(used) else ())
        for op, _ in needed:
            kind, summary = WEAKENING_ALERTS[op]
            self.alert("security", kind, summary, details={"before": old.to_dict(), "after": new.to_dict()})
        return new

    def require_deletable(self, point: RecoveryPoint, now: dt.datetime | None = None, *,
                          operation: str = "points.delete") -> None:
        """ImmutabilityViolation (journaled, alerted) if immutability forbids deleting ``point`` now."""
        if not self.settings.immutability.on:
            return
        now = now or self.clock()
        expires = point.expires_at
        if expires is None or parse_iso(expires) > now:
            until = "it is kept forever" if expires is None else f"it expires at {expires[:19]}"
            self.refuse(operation, {"point": point.point_id},
                        ImmutabilityViolation(reason=f"point {point.point_id} may not be deleted before it expires ({until})"))


def _summary(settings: SecuritySettings) -> dict[str, object]:
    return {"soft_delete": settings.soft_delete.state, "soft_delete_days": settings.soft_delete.days,
            "immutability": settings.immutability.state, "guard": settings.guard.linked}
