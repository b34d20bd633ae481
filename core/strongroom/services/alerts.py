"""Alerts: what went wrong or was attempted, kept in the vault and sent to the alert sinks.

An :class:`Alert` is raised by the vault itself, never by a user: a failed backup,
restore, verify or prune (category ``job``), a missed schedule (``job``), a rollback of
the storage and every security event: a weakened setting, a refused critical operation,
a removed alert sink (category ``security``).  :meth:`AlertBook.raise_alert` promises:

- the alert is written first, as one encrypted document ``alerts/<time-id>-<alert-id>``
  (:mod:`strongroom.repository.names`), and never rewritten; what happens to it later
  (delivered, acknowledged, resolved) is appended as *events*,
  ``alert-events/<alert-id>/<time-id>``;
- then it is handed to ``deliver`` (every configured sink: :mod:`.alertsinks`); the
  outcome of each sink is appended as a ``delivered`` event, and every failed sink is
  warned through ``notify``;
- **it never raises into the operation that raised it**: an alert that cannot be
  written is still delivered (and warned), and a sink that fails is recorded, not
  raised;
- with a ``dedupe`` key, no second alert is raised while an *open* one (neither
  acknowledged nor resolved) has the same key: one overdue item is one alert until it
  is acknowledged or the item recovers (:meth:`AlertBook.resolve`).

There is no setting that stops alerts from being raised; sinks choose job alerts only
(:mod:`.alertsinks`: every sink receives every security alert).

Reading (:meth:`AlertBook.list`): an object under ``alerts/`` or ``alert-events/`` that is
not the vault's (a foreign object) is never read; one that does not decrypt or parse, or
whose alert id is not the one its name gives, is skipped and described in ``problems``.
Listing writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
import socket
from typing import TYPE_CHECKING, Callable, ContextManager, Iterable

import attrs

from ..errors import IntegrityError, NotFound, ObjectNotFound, StorageError, StrongroomError, UsageError
from ..models import damaged, iso, new_id, stored_fields, stored_time, time_id, utcnow
from .versions import version_name

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = [
    "ALERT_PREFIX", "CATEGORIES", "EVENT_PREFIX", "SEVERITIES", "Acknowledgement", "Alert", "AlertBook",
    "AlertError", "AlertNotFound", "AmbiguousAlert", "Delivery", "DeliveryFailed", "alert_digest", "trial_alert",
]

ALERT_PREFIX = "alerts/"
EVENT_PREFIX = "alert-events/"
CATEGORIES = ("security", "job")
SEVERITIES = ("info", "warning", "error", "critical")
#: The severity of an alert raised without one.
DEFAULT_SEVERITY = {"security": "critical", "job": "error"}
EVENTS = ("delivered", "acknowledged", "resolved")
KIND_RE = re.compile(r"[a-z][a-z0-9.-]{0,63}")
_ALERT_ID = re.compile(r"[0-9a-f]{16}")

_log = logging.getLogger("strongroom.alerts")


# --- errors ------------------------------------------------------------------------------


class AlertError(StrongroomError):
    """{message}"""

    exit_code = 56


class AlertNotFound(AlertError, NotFound):
    """No alert '{alert}' in this vault ('strongroom alerts --all' lists them)."""

    exit_code = 56


class AmbiguousAlert(AlertError, NotFound):
    """Alert id prefix '{alert}' matches {count} alerts; give more digits."""

    exit_code = 56


class DeliveryFailed(AlertError):
    """{count} alert sink(s) failed: {failed}"""

    exit_code = 59


# --- records -----------------------------------------------------------------------------


@attrs.frozen
class Delivery:
    """What one sink did with one alert: ``ok`` and a one-line detail without secrets."""

    sink: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return {"sink": self.sink, "ok": self.ok, "detail": self.detail}


@attrs.frozen
class Acknowledgement:
    by: str
    at: str

    def to_dict(self) -> dict:
        return {"by": self.by, "at": self.at}


def _check_kind(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or KIND_RE.fullmatch(value) is None:
        raise ValueError(f"invalid alert kind {value!r}: lower-case letters, digits, '.' and '-'")


@attrs.frozen
class Alert:
    """One alert.  The fields up to ``host`` are stored; the last three are what its
    events say (filled in by :meth:`AlertBook.list`)."""

    alert_id: str
    time: str
    category: str = attrs.field(validator=attrs.validators.in_(CATEGORIES))
    kind: str = attrs.field(validator=_check_kind)
    severity: str = attrs.field(validator=attrs.validators.in_(SEVERITIES))
    summary: str
    details: dict = attrs.field(factory=dict)
    item: str | None = None
    dedupe: str | None = None
    host: str = ""
    acknowledged: Acknowledgement | None = None
    resolved: str | None = None
    deliveries: tuple[Delivery, ...] = ()

    @property
    def open(self) -> bool:
        """Neither acknowledged nor resolved."""
        return self.acknowledged is None and self.resolved is None

    def stored(self) -> dict:
        """The document written to the vault (no events)."""
        return {"alert_id": self.alert_id, "time": self.time, "category": self.category, "kind": self.kind,
                "severity": self.severity, "summary": self.summary, "details": self.details, "item": self.item,
                "dedupe": self.dedupe, "host": self.host}

    def to_dict(self) -> dict:
        """The alert as ``strongroom alerts --json`` prints it and sinks receive it."""
        return {**self.stored(),
                "acknowledged": self.acknowledged.to_dict() if self.acknowledged else None,
                "resolved": self.resolved,
                "deliveries": [d.to_dict() for d in self.deliveries]}

    @classmethod
    def from_stored(cls, doc: object, name: str) -> Alert:
        """The alert stored as ``name``; IntegrityError if malformed or not the one the name gives."""
        what = f"alert {name}"
        fields = stored_fields(cls, doc, what, skip=frozenset({"acknowledged", "resolved", "deliveries"}))
        stored_time(fields["time"], "time", what)
        if not name.endswith("-" + fields["alert_id"]):
            raise damaged(what, "its alert id is not the one its name gives")
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise damaged(what, str(exc)) from None


def trial_alert(now: dt.datetime) -> Alert:
    """The alert ``strongroom alerts test`` sends to every sink (never stored)."""
    return Alert(alert_id=new_id(8), time=iso(now), category="job", kind="alerts.test", severity="info",
                 summary="a test alert from strongroom: this sink works", host=socket.gethostname())


def alert_digest(*parts: object) -> str:
    """A short, stable dedupe key part for findings given as text (a rollback's lines)."""
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


# --- the book ----------------------------------------------------------------------------


class AlertBook:
    """The alerts of one vault (see the module docstring).

    ``deliver(alert)`` sends an alert to every sink and says how each did;
    ``notify`` receives one line per problem (a sink that failed, an alert not written);
    ``journal(operation, params)`` records an acknowledgement around it (the audit journal)."""

    def __init__(self, repo: Repository, clock: Callable[[], dt.datetime] = utcnow,
                 deliver: Callable[[Alert], Iterable[Delivery]] | None = None, *,
                 notify: Callable[[str], None] | None = None,
                 journal: Callable[[str, dict], ContextManager[object]] | None = None) -> None:
        self.repo = repo
        self.clock = clock
        self.deliver = deliver or (lambda alert: ())
        self.notify = notify or _log.warning
        self.journal = journal or (lambda operation, params: contextlib.nullcontext())
        # alerts and events are never rewritten: a document read once is not read again
        self._read_before: dict[str, object] = {}

    # --- raising -----------------------------------------------------------------------

    def raise_alert(self, category: str, kind: str, summary: str, *, details: dict | None = None,
                    item: str | None = None, dedupe: str | None = None,
                    severity: str | None = None) -> Alert | None:
        """Record and deliver an alert; None when an open alert has the same ``dedupe`` key.

        ``category`` (``security`` or ``job``), ``kind`` and ``severity`` are checked
        (ValueError for a wrong one: a bug of the caller); nothing else raises."""
        now = self.clock()
        alert = Alert(alert_id=new_id(8), time=iso(now), category=category, kind=kind,
                      severity=severity or DEFAULT_SEVERITY.get(category, "error"), summary=_one_line(summary),
                      details=dict(details or {}), item=item, dedupe=dedupe, host=socket.gethostname())
        if dedupe is not None:
            try:
                if any(a.dedupe == dedupe and a.open for a in self.list()):
                    return None
            except StrongroomError as exc:  # cannot tell: raise it again rather than miss it
                self.notify(f"alerts could not be listed to skip a repeated alert ({exc})")
        name = f"{ALERT_PREFIX}{time_id(now)}-{alert.alert_id}"
        try:
            self.repo.put_document(name, alert.stored())
        except StrongroomError as exc:
            self.notify(f"{category} alert '{alert.summary}' could not be written to the vault ({exc});"
                        " it is sent to the sinks all the same")
        return self._deliver(alert)

    def _deliver(self, alert: Alert) -> Alert:
        try:
            deliveries = tuple(self.deliver(alert))
        except Exception as exc:  # the sinks' configuration could not be read, or a bug: never the caller's
            deliveries = (Delivery("(all sinks)", False, _one_line(str(exc)) or type(exc).__name__),)
        for failed in (d for d in deliveries if not d.ok):
            self.notify(f"alert sink '{failed.sink}' failed: {failed.detail} (alert {alert.alert_id}: {alert.summary})")
        if deliveries:
            self._event(alert.alert_id, "delivered", deliveries=[d.to_dict() for d in deliveries])
        return attrs.evolve(alert, deliveries=deliveries)

    def _event(self, alert_id: str, event: str, **fields: object) -> bool:
        doc = {"alert_id": alert_id, "event": event, "at": iso(self.clock()), **fields}
        try:
            self.repo.put_document(version_name(self.repo.store, f"{EVENT_PREFIX}{alert_id}/", self.clock()), doc)
        except StrongroomError as exc:
            self.notify(f"the {event} event of alert {alert_id} could not be written ({exc})")
            return False
        return True

    def send(self, alert: Alert) -> Alert:
        """Deliver ``alert`` again (``strongroom alerts test`` raises, then reads the outcome)."""
        return self._deliver(alert)

    # --- acknowledging and resolving -----------------------------------------------------

    def ack(self, alert_id: str, by: str) -> Alert:
        """Acknowledge the alert whose id is or starts with ``alert_id`` (AlertNotFound,
        AmbiguousAlert); an acknowledged alert is acknowledged again without change."""
        alert = self.find(alert_id)
        if alert.acknowledged is not None:
            return alert
        with self.journal("alerts.ack", {"alert_id": alert.alert_id, "kind": alert.kind, "by": by}):
            if not self._event(alert.alert_id, "acknowledged", by=by):
                raise AlertError(message=f"alert {alert.alert_id} could not be acknowledged:"
                                         " the vault cannot be written")
        return attrs.evolve(alert, acknowledged=Acknowledgement(by, iso(self.clock())))

    def resolve(self, dedupe: str) -> list[Alert]:
        """Resolve every open alert with the ``dedupe`` key: what it said is over (the
        overdue item ran).  They stay listed until acknowledged.  Never raises."""
        try:
            found = [a for a in self.list() if a.dedupe == dedupe and a.open]
        except StrongroomError as exc:
            self.notify(f"alerts could not be listed to resolve {dedupe} ({exc})")
            return []
        for alert in found:
            self._event(alert.alert_id, "resolved")
        return found

    def find(self, prefix: str) -> Alert:
        prefix = prefix.strip().lower()
        if not prefix or not re.fullmatch(r"[0-9a-f]{1,16}", prefix):
            raise UsageError(message=f"alert id '{prefix}' is not an alert id (up to 16 hex digits)")
        matches = [a for a in self.list(include_acknowledged=True) if a.alert_id.startswith(prefix)]
        if not matches:
            raise AlertNotFound(alert=prefix)
        if len(matches) > 1:
            raise AmbiguousAlert(alert=prefix, count=len(matches))
        return matches[0]

    # --- reading -----------------------------------------------------------------------

    def list(self, *, include_acknowledged: bool = False, problems: list[str] | None = None) -> list[Alert]:
        """The alerts, oldest first, with what their events say: the open ones, and
        resolved ones not yet acknowledged; every one with ``include_acknowledged``.
        A damaged alert or event is left out and described in ``problems``."""
        problems = problems if problems is not None else []
        events = self._events(problems)
        alerts = []
        names = sorted(self.repo.list_names(ALERT_PREFIX))
        for name, found in self._read(names):
            if isinstance(found, StrongroomError):
                problems.append(f"{name}: {found}")
                continue
            try:
                alert = Alert.from_stored(found, name)
            except IntegrityError as exc:
                problems.append(str(exc))
                continue
            alert = _apply(alert, events.get(alert.alert_id, []))
            if include_acknowledged or alert.acknowledged is None:
                alerts.append(alert)
        return alerts

    def _events(self, problems: list[str]) -> dict[str, list[dict]]:
        by_alert: dict[str, list[dict]] = {}
        names = sorted(self.repo.list_names(EVENT_PREFIX))
        for name, found in self._read(names):
            alert_id = name.split("/")[1]
            if isinstance(found, StrongroomError):
                problems.append(f"{name}: {found}")
            elif not _valid_event(found, alert_id):
                problems.append(f"alert event {name} is damaged (malformed)")
            else:
                by_alert.setdefault(alert_id, []).append(found)
        return by_alert


    def _read(self, names: list[str]) -> list[tuple[str, object]]:
        """Each named document, or the error that kept it from being read (not kept: a
        storage error may pass)."""
        out: list[tuple[str, object]] = []
        for name in names:
            if name not in self._read_before:
                try:
                    self._read_before[name] = self.repo.get_document(name)
                except (IntegrityError, ObjectNotFound, StorageError) as exc:
                    out.append((name, exc))
                    continue
            out.append((name, self._read_before[name]))
        return out


def _valid_event(doc: object, alert_id: str) -> bool:
    if not isinstance(doc, dict) or doc.get("alert_id") != alert_id or doc.get("event") not in EVENTS:
        return False
    try:
        stored_time(doc.get("at"), "at", "alert event")
    except IntegrityError:
        return False
    if doc["event"] == "acknowledged":
        return isinstance(doc.get("by"), str)
    if doc["event"] == "delivered":
        found = doc.get("deliveries")
        return isinstance(found, list) and all(
            isinstance(d, dict) and isinstance(d.get("sink"), str) and isinstance(d.get("ok"), bool)
            and isinstance(d.get("detail"), str) for d in found)
    return True


def _apply(alert: Alert, events: list[dict]) -> Alert:
    """``alert`` as its events (in name order: oldest first) leave it."""
    acknowledged, resolved, deliveries = None, None, alert.deliveries
    for event in events:
        if event["event"] == "acknowledged" and acknowledged is None:
            acknowledged = Acknowledgement(event["by"], event["at"])
        elif event["event"] == "resolved" and resolved is None:
            resolved = event["at"]
        elif event["event"] == "delivered":
            deliveries = tuple(Delivery(d["sink"], d["ok"], d["detail"]) for d in event["deliveries"])
    return attrs.evolve(alert, acknowledged=acknowledged, resolved=resolved, deliveries=deliveries)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:500] if lines else ""
