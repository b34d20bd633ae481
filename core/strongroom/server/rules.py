"""The vault's security rules, enforced by the server on what a request writes or deletes.

:mod:`.authorize` decides by role and object kind; what it cannot see is in the content,
which the server reads with its own key slot of the vault (documents already stored with
``repo.get_document``, a document being put by opening its envelope).  :class:`VaultRules`
refuses (a :class:`~.authorize.Decision` with status 403), whatever the role:

- an operator's first version of an item id that already has versions (changing an item
  needs a contributor), an operator's point status that is not ``active`` or that makes
  a soft-deleted point active again (an undelete), and an
  operator's job record of a job other than a backup, a restore or a verify
  (:data:`OPERATOR_JOBS`, a drill being a restore: prune, repair, an item's stop are a contributor's);
- a settings document that breaks the history rules against the settings in force
  (:func:`strongroom.services.settings._breaks_rules`: an irreversible state undone, a
  weakening without the guard's ticket in ``authorized_by``, data keys dropped or
  reordered), or that changes the data keys (``vault key rotate``) below the owner role;
- a point soft-deleted by ``points delete`` or ``items stop --delete-data`` while
  immutability keeps it (not expired), or without the guard's ticket when a guard is linked;
- an item version that deletes the item's data without the guard's ticket;
- a point header deleted before its purge time (soft delete on: it must be soft-deleted
  and past ``purge_at``), or before it expires (immutability on), or, with soft delete off
  and a guard linked, without a ``points.delete`` or ``items.delete-data`` ticket unless it
  expired;
- a key slot removed, or the vault identity deleted, without the guard's ticket
  (``key.remove``, ``vault.delete``) when a guard is linked;
- a vault head deleted while it is one of the newest eight (older ones are superseded:
  any role from operator on trims them, as every client does after writing its head);
- a shortening of retention: a policy version that keeps any kind of point for fewer
  periods than the one in force, or prune soft-deleting a point that has not expired
  (``prune --keep-last``): refused while immutability is on, and needing a
  ``retention.shorten`` ticket (whatever its parameters) while a guard is linked.

A ticket comes in the request's ``X-Strongroom-Ticket`` header (the client's
:mod:`strongroom.storage.ticket`); it must verify for the operation the server infers,
with its parameters, unexpired, and its nonce must be recorded (``tickets/<nonce>``: the
client's security service records it before the operation writes anything).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Callable

import attrs

from ..errors import IntegrityError, ObjectNotFound, StrongroomError, TicketInvalid
from ..models import DELETED, RecoveryPoint, VaultSettings, parse_iso
from ..policy.security import SecuritySettings
from ..repository.envelope import KIND_DOCUMENT
from ..services.pointstatus import ACTIVE, SOFT_DELETED, PointStatus
from ..services.settings import _breaks_rules, newest_settings, parse_settings
from ..services.tickets import verify_ticket
from .authorize import Action, Decision
from .roles import at_least

__all__ = ["OPERATOR_JOBS", "VaultRules"]

#: The jobs an operator runs (their job records); every other job (prune, repair, an
#: item's stop or resume ...) is a contributor's.
OPERATOR_JOBS = frozenset({"backup", "restore", "verify", "drill"})


class VaultRules:
    """The content checks of one hosted vault (``vault``: opened with the server's key)."""

    def __init__(self, vault, clock: Callable[[], dt.datetime]) -> None:
        self.vault = vault
        self.repo = vault.repo
        self.clock = clock

    # --- entry point ---------------------------------------------------------------------

    def check(self, role: str, action: Action, name: str, body: bytes | None, ticket: str | None) -> Decision | None:
        """A refusal, or None when the vault's rules let the request through."""
        top = name.partition("/")[0]
        try:
            if action is Action.CREATE and top == "items":
                return self._item(role, name, body, ticket)
            if action is Action.CREATE and top == "point-status":
                return self._status(role, name, body, ticket)
            if action is Action.CREATE and top == "jobs" and not at_least(role, "contributor"):
                return self._job(name, body)
            if action in (Action.CREATE, Action.OVERWRITE) and top == "settings":
                return self._settings(role, name, body)
            if action is Action.CREATE and top == "policies":
                return self._policy(name, body, ticket)
            if action is Action.DELETE and top == "points":
                return self._delete_point(name, ticket)
            if action is Action.DELETE and top == "heads":
                return self._delete_head(name)
            if action is Action.DELETE and top == "keys":
                return self._guarded("key.remove", {"slot": name.partition("/")[2]}, ticket, f"remove key slot {name}")
            if action is Action.DELETE and name == "strongroom.json":
                return self._guarded("vault.delete", {}, ticket, "delete the vault")
        except (IntegrityError, ValueError, KeyError, TypeError) as exc:
            return Decision(False, 400, None, f"write {name}: its content is not valid ({exc})")
        return None

    # --- the checks -------------------------------------------------------------------------

    def _item(self, role: str, name: str, body: bytes | None, ticket: str | None) -> Decision | None:
        item_id = name.split("/")[1]
        earlier = self.repo.list_names(f"items/{item_id}/")
        if earlier and not at_least(role, "contributor"):
            return Decision(False, 403, "contributor", f"change item {item_id} (a new version of an existing item)")
        doc = self._open(name, body)
        if doc.get("state") == DELETED and earlier:
            before = self.repo.get_document(max(earlier))
            if before.get("state") != DELETED:
                return self._guarded("items.delete-data", {"item": str(doc.get("name"))}, ticket,
                                     f"delete the data of item {doc.get('name')}")
        return None

    def _job(self, name: str, body: bytes | None) -> Decision | None:
        kind = str(self._open(name, body).get("type"))
        if kind not in OPERATOR_JOBS:
            return Decision(False, 403, "contributor", f"run a {kind} job")
        return None

    def _status(self, role: str, name: str, body: bytes | None, ticket: str | None) -> Decision | None:
        status = PointStatus.from_dict(self._open(name, body))
        _, item_id, point_id, _ = name.split("/")
        if status.state != ACTIVE and not at_least(role, "contributor"):
            return Decision(False, 403, "contributor", f"soft-delete point {point_id}")
        if not at_least(role, "contributor"):
            newest = self._newest_status(item_id, point_id)
            if newest is not None and newest.state == SOFT_DELETED:
                return Decision(False, 403, "contributor", f"undelete point {point_id}")
        if status.state != SOFT_DELETED:
            return None
        point = self._point(item_id, point_id)
        if status.deleted_by == "prune: expired":
            if point.expires_at is not None and parse_iso(point.expires_at) <= self.clock():
                return None  # expired by its retention: prune's to soft-delete
            what = f"prune point {point_id} before it expires (a shortening of retention)"
            return self._immutable(point, what) or self._guarded_any("retention.shorten", ticket, what)
        item = self._item_name(item_id)
        if status.deleted_by == "points delete":
            operation, params = "points.delete", {"item": item, "point": point_id}
        else:
            operation, params = "items.delete-data", {"item": item}
        refused = self._immutable(point, f"soft-delete point {point_id}")
        return refused or self._guarded(operation, params, ticket, f"soft-delete point {point_id}")

    def _policy(self, name: str, body: bytes | None, ticket: str | None) -> Decision | None:
        """A policy version that keeps any kind of point for fewer periods than the one in
        force shortens retention: refused while immutability is on, and needing a
        ``retention.shorten`` ticket while a guard is linked."""
        new = self._open(name, body)
        policy = name.split("/")[1]
        earlier = self.repo.list_names(f"policies/{policy}/")
        if not earlier or new.get("deleted") or not isinstance(new.get("retention"), dict):
            return None
        old = self.repo.get_document(max(earlier))
        before = old.get("retention") if isinstance(old.get("retention"), dict) else {}
        shorter = [tag for tag in ("daily", "weekly", "monthly", "yearly")
                   if int(new["retention"].get(tag, 0) or 0) < int(before.get(tag, 0) or 0)]
        if not shorter or old.get("deleted"):
            return None
        what = f"shorten policy {policy}'s retention ({', '.join(shorter)})"
        if self._security().immutability.on:
            return Decision(False, 403, None, f"{what}: immutability lets retention only grow")
        return self._guarded_any("retention.shorten", ticket, what)

    def _settings(self, role: str, name: str, body: bytes | None) -> Decision | None:
        current = newest_settings(self.repo, self.vault.vault_id)
        new: VaultSettings = parse_settings(self._open(name, body))
        reason = _breaks_rules(current, new, self.vault.vault_id)
        if reason is not None:
            return Decision(False, 403, None, f"write settings {name}: {reason}")
        if new.data_keys != current.data_keys and not at_least(role, "owner"):
            return Decision(False, 403, "owner", f"change the data keys (settings {name}): vault key rotate")
        return None

    def _delete_head(self, name: str) -> Decision | None:
        """Only a vault head that the newest :data:`~strongroom.services.head.KEEP` supersede
        goes (each client trims them after writing its own); the newest are rollback evidence."""
        from ..services.head import HEAD_PREFIX, KEEP

        newest = sorted(self.repo.list_names(HEAD_PREFIX))[-KEEP:]
        if name in newest:
            return Decision(False, 403, None, f"delete vault head {name}: it is one of the newest {KEEP}")
        return None

    def _delete_point(self, name: str, ticket: str | None) -> Decision | None:
        _, item_id, point_id = name.split("/")
        try:
            point = self._point(item_id, point_id)
        except ObjectNotFound:
            return None  # deleting what is gone changes nothing
        status = self._newest_status(item_id, point_id)
        now = self.clock()
        what = f"delete point header {name}"
        security = self._security()
        if status is not None and status.state == SOFT_DELETED:
            if status.purge_at and parse_iso(status.purge_at) <= now:
                return self._immutable(point, what)
            return Decision(False, 403, None, f"{what} before its purge time ({status.purge_at[:19]})")
        if security.soft_delete.on:
            return Decision(False, 403, None, f"{what}: soft delete is on, the point must be soft-deleted first")
        refused = self._immutable(point, what)
        if refused is not None:
            return refused
        if point.expires_at is not None and parse_iso(point.expires_at) <= now:
            return None
        item = self._item_name(item_id)
        first = self._guarded("points.delete", {"item": item, "point": point_id}, ticket, what)
        if first is None:
            return None
        if self._guarded("items.delete-data", {"item": item}, ticket, what) is None:
            return None
        return first

    # --- helpers ----------------------------------------------------------------------------

    def _security(self) -> SecuritySettings:
        return SecuritySettings.from_dict(newest_settings(self.repo, self.vault.vault_id).security)

    def _open(self, name: str, body: bytes | None) -> dict:
        raw = self.repo.envelope.open(body or b"", name.encode(), kind=KIND_DOCUMENT)
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise IntegrityError(what=name, reason="not a JSON object")
        return doc

    def _point(self, item_id: str, point_id: str) -> RecoveryPoint:
        point = RecoveryPoint.from_dict(self.repo.get_document(f"points/{item_id}/{point_id}"))
        status = self._newest_status(item_id, point_id)
        return point if status is None else _with_expiry(point, status.expires_at)

    def _newest_status(self, item_id: str, point_id: str) -> PointStatus | None:
        for name in sorted(self.repo.list_names(f"point-status/{item_id}/{point_id}/"), reverse=True):
            try:
                return PointStatus.from_dict(self.repo.get_document(name))
            except StrongroomError:
                continue
        return None

    def _item_name(self, item_id: str) -> str:
        versions = self.repo.list_names(f"items/{item_id}/")
        return str(self.repo.get_document(max(versions)).get("name")) if versions else item_id

    def _immutable(self, point: RecoveryPoint, what: str) -> Decision | None:
        if not self._security().immutability.on:
            return None
        expires = point.expires_at
        if expires is None or parse_iso(expires) > self.clock():
            until = "it is kept forever" if expires is None else f"it expires at {expires[:19]}"
            return Decision(False, 403, None, f"{what}: immutability keeps it ({until})")
        return None

    def _guarded_any(self, operation: str, ticket: str | None, what: str) -> Decision | None:
        """Like :meth:`_guarded`, for an operation whose parameters the server cannot infer
        (a retention shortening: the client's ``policy=``, ``item=``, ``floors=`` or
        ``keep_last=``): the ticket must be the guard's, for this vault and operation, and used."""
        guard = self._security().guard
        if not guard.linked:
            return None
        if not ticket or _ticket_operation(ticket) != operation:
            return Decision(False, 403, None, f"{what}: the vault's guard requires a {operation} ticket")
        try:
            params = json.loads(_ticket_payload(ticket)).get("params", {})
        except ValueError:
            params = {}
        return self._guarded(operation, dict(params) if isinstance(params, dict) else {}, ticket, what)

    def _guarded(self, operation: str, params: dict[str, str], ticket: str | None, what: str) -> Decision | None:
        guard = self._security().guard
        if not guard.linked:
            return None
        if not ticket:
            return Decision(False, 403, None, f"{what}: the vault's guard requires a {operation} ticket")
        try:
            checked = verify_ticket(ticket, guard.raw_key, vault_id=self.vault.vault_id, operation=operation,
                                    params=params, now=self.clock())
        except TicketInvalid as exc:
            return Decision(False, 403, None, f"{what}: {exc}")
        if not self.repo.store.exists(f"tickets/{checked.nonce}"):
            return Decision(False, 403, None, f"{what}: the ticket's use is not recorded")
        return None


def _ticket_payload(ticket: str) -> bytes:
    """A ticket's payload, unverified (only to read which parameters to verify it with)."""
    import base64

    try:
        payload = ticket.strip().split(".")[1]
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (IndexError, ValueError):
        return b"{}"


def _ticket_operation(ticket: str) -> str:
    try:
        doc = json.loads(_ticket_payload(ticket))
        return str(doc.get("operation", "")) if isinstance(doc, dict) else ""
    except ValueError:
        return ""


def _with_expiry(point: RecoveryPoint, expires_at: str | None) -> RecoveryPoint:
    return attrs.evolve(point, expires_at=expires_at)
