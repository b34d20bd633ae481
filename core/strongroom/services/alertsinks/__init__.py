"""Alert sinks: where alerts are sent, as plugins register them and users configure them.

A **sink type** (:class:`SinkType`) is what a plugin registers with the
``strongroom_register_alert_sinks(registry)`` hook: a name, the options it takes (which
are required, which are secret), a check of their values and ``send(options, document)``,
which sends one alert document or raises (:class:`SinkFailed`, with a one-line reason
that holds no secret).  The built-in ``alerts`` plugin (:mod:`.builtin`, essential)
registers ``command``, ``webhook`` and ``email``.

A **sink** (:class:`SinkConfig`) is a named, configured use of a type, added with
``strongroom alerts sink add NAME --type TYPE --option K=V ... --category C``.  The
sinks are stored encrypted in the vault as one versioned document,
``alert-sinks/<time-id>``; a change appends a new one, and the newest that decrypts and
parses is in force (a damaged newest one falls back to the one before, so damaging the
configuration does not silence the sinks).

**Security alerts cannot be switched off**: ``category`` chooses which *job* alerts a
sink receives (``all`` or ``job``: every one; ``security``: none), and every sink
receives every security alert whatever its category.  Removing a sink is itself a
security alert, sent to every sink, the removed one included, before it is removed
(``before_remove``).

The document every sink is given (:func:`alert_document`), version 1::

    {"version": 1, "alert": {alert_id, time, category, kind, severity, summary, details,
                             item, dedupe, host},
     "vault": {"id": ..., "name": ..., "url": ...}, "sent": "<ISO 8601 time>"}

The vault's URL is sent without a password or a query (which may hold a token).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.parse
from typing import TYPE_CHECKING, Callable, ContextManager, Mapping

import attrs

from ...errors import IntegrityError, ObjectNotFound, StrongroomError, UnknownName
from ...models import iso, stored_fields
from ...registry import NAME_PATTERN
from ..alerts import AlertError, Delivery
from ..versions import version_name

if TYPE_CHECKING:
    from ...registry import Registry
    from ...repository.repository import Repository
    from ..alerts import Alert

__all__ = [
    "DOCUMENT_VERSION", "SINK_CATEGORIES", "SINKS_PREFIX", "InvalidSink", "SinkBook", "SinkConfig", "SinkExists",
    "SinkFailed", "SinkNotFound", "SinkType", "alert_document", "encode", "safe_url",
]

SINKS_PREFIX = "alert-sinks/"
DOCUMENT_VERSION = 1
#: What ``--category`` may say: which job alerts a sink receives (security ones: always).
SINK_CATEGORIES = ("all", "job", "security")
REDACTED = "***"


class SinkFailed(Exception):
    """A sink could not send an alert; the message is one line and holds no secret."""


class InvalidSink(AlertError):
    """Invalid alert sink '{sink}': {reason}"""

    exit_code = 57


class SinkNotFound(AlertError):
    """No alert sink '{sink}' ('strongroom alerts sink list' shows them)."""

    exit_code = 57


class SinkExists(AlertError):
    """Alert sink '{sink}' already exists; remove it first."""

    exit_code = 57


@attrs.frozen
class SinkType:
    """A kind of sink, as a plugin registers it (see the module docstring).

    ``options`` maps each option's name to a line of help; ``check(options)`` raises
    ValueError with a reason for a bad value; ``send(options, document)`` returns a short
    success detail or raises."""

    name: str
    description: str
    send: Callable[[Mapping[str, str], dict], str]
    options: Mapping[str, str] = attrs.field(factory=dict)
    required: frozenset[str] = frozenset()
    secret: frozenset[str] = frozenset()
    check: Callable[[Mapping[str, str]], None] | None = None

    def validate(self, sink: str, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InvalidSink(sink=sink, reason=f"type {self.name} takes no option '{unknown[0]}'"
                                                f" (it takes {', '.join(sorted(self.options))})")
        missing = sorted(self.required - set(options))
        if missing:
            raise InvalidSink(sink=sink, reason=f"type {self.name} needs --option {missing[0]}=...")
        if self.check is not None:
            try:
                self.check(options)
            except ValueError as exc:
                raise InvalidSink(sink=sink, reason=str(exc)) from None


@attrs.frozen
class SinkConfig:
    """One configured sink."""

    name: str
    type: str
    options: dict = attrs.field(factory=dict)
    category: str = attrs.field(default="all", validator=attrs.validators.in_(SINK_CATEGORIES))
    added: str = ""

    def receives(self, category: str) -> bool:
        """Whether alerts of ``category`` go to this sink: security ones always."""
        return category == "security" or self.category in ("all", category)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "options": dict(self.options), "category": self.category,
                "added": self.added}

    def shown(self, secret: frozenset[str]) -> dict:
        """For ``sink list``: secret option values replaced by ``***``."""
        doc = self.to_dict()
        doc["options"] = {k: (REDACTED if k in secret else v) for k, v in sorted(self.options.items())}
        return doc

    @classmethod
    def from_dict(cls, doc: object) -> SinkConfig:
        fields = stored_fields(cls, doc, "alert sink")
        options = fields.get("options", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
            raise IntegrityError(what="alert sink", reason="options that are not text")
        if NAME_PATTERN.fullmatch(fields["name"]) is None:
            raise IntegrityError(what="alert sink", reason=f"a malformed name {fields['name']!r}")
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise IntegrityError(what="alert sink", reason=str(exc)) from None


def safe_url(url: str) -> str:
    """``url`` without a password, a query or a fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def alert_document(alert: Alert, vault: Mapping[str, str], sent: dt.datetime) -> dict:
    """The document sinks are given (see the module docstring)."""
    return {"version": DOCUMENT_VERSION, "alert": alert.stored(),
            "vault": {"id": vault.get("id", ""), "name": vault.get("name", ""), "url": safe_url(vault.get("url", ""))},
            "sent": iso(sent)}


def encode(document: dict) -> bytes:
    """The document as UTF-8 JSON, as the built-in sinks send it."""
    return json.dumps(document, ensure_ascii=False, default=str).encode()


class SinkBook:
    """The configured sinks of one vault, and delivery to them (see the module docstring).

    ``vault()`` gives the vault's ``id``, ``name`` and ``url`` for the documents;
    ``journal(operation, params)`` records a change around it (the audit journal: the
    sink's name, type and category, never its options)."""

    def __init__(self, repo: Repository, types: Registry[SinkType], clock: Callable[[], dt.datetime],
                 vault: Callable[[], Mapping[str, str]],
                 before_remove: Callable[[SinkConfig], None] = lambda sink: None,
                 journal: Callable[[str, dict], ContextManager[object]] | None = None) -> None:
        self.repo = repo
        self.types = types
        self.clock = clock
        self.vault = vault
        self.before_remove = before_remove
        self.journal = journal or (lambda operation, params: contextlib.nullcontext())

    # --- configuration -----------------------------------------------------------------

    def list(self, problems: list[str] | None = None) -> list[SinkConfig]:
        """The sinks in force, by name: those of the newest document that reads; the
        damaged newer ones are described in ``problems``."""
        problems = problems if problems is not None else []
        for name in sorted(self.repo.list_names(SINKS_PREFIX), reverse=True):
            try:
                doc = self.repo.get_document(name)
                if not isinstance(doc, dict) or not isinstance(doc.get("sinks"), list):
                    raise IntegrityError(what=name, reason="malformed (no list of sinks)")
                return sorted((SinkConfig.from_dict(s) for s in doc["sinks"]), key=lambda s: s.name)
            except (IntegrityError, ObjectNotFound) as exc:
                problems.append(f"{name}: {exc}")
        return []

    def _write(self, sinks: list[SinkConfig]) -> None:
        name = version_name(self.repo.store, SINKS_PREFIX, self.clock())
        self.repo.put_document(name, {"version": DOCUMENT_VERSION, "sinks": [s.to_dict() for s in sinks]})

    def sink_type(self, sink: str, type_name: str) -> SinkType:
        try:
            return self.types.get(type_name)
        except UnknownName as exc:
            raise InvalidSink(sink=sink, reason=str(exc).rstrip(".")) from None

    def add(self, name: str, type_name: str, options: Mapping[str, str], category: str = "all") -> SinkConfig:
        """Add a sink (InvalidSink for a bad name, type, option or category; SinkExists)."""
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None or len(name) > 64:
            raise InvalidSink(sink=name, reason="a name is lower-case letters, digits, '-' and '_', starting with a letter")
        if category not in SINK_CATEGORIES:
            raise InvalidSink(sink=name, reason=f"category {category!r} is not one of {', '.join(SINK_CATEGORIES)}")
        self.sink_type(name, type_name).validate(name, options)
        sinks = self.list()
        if any(s.name == name for s in sinks):
            raise SinkExists(sink=name)
        sink = SinkConfig(name, type_name, dict(options), category, iso(self.clock()))
        with self.journal("alerts.sink-add", {"sink": name, "type": type_name, "category": category}):
            self._write([*sinks, sink])
        return sink

    def remove(self, name: str, *, dry_run: bool = False) -> SinkConfig:
        """Remove a sink (SinkNotFound); ``before_remove`` is told first.  ``dry_run``: the
        sink that would go, nothing written and no alert."""
        sinks = self.list()
        found = next((s for s in sinks if s.name == name), None)
        if found is None:
            raise SinkNotFound(sink=name)
        if dry_run:
            return found
        self.before_remove(found)
        with self.journal("alerts.sink-remove", {"sink": name, "type": found.type, "category": found.category}):
            self._write([s for s in sinks if s.name != name])
        return found

    def secret_options(self, sink: SinkConfig) -> frozenset[str]:
        """The options of ``sink`` never shown (every option when its type is unknown)."""
        try:
            return self.types.get(sink.type).secret
        except UnknownName:
            return frozenset(sink.options)

    # --- delivery ----------------------------------------------------------------------

    def deliver(self, alert: Alert, *, every_sink: bool = False) -> list[Delivery]:
        """Send ``alert`` to every sink that receives its category (to every sink with
        ``every_sink``: ``alerts test``); one :class:`~strongroom.services.alerts.Delivery`
        per sink, failures included, and one for a damaged configuration."""
        problems: list[str] = []
        sinks = self.list(problems)
        out = [Delivery("(configuration)", False, f"alert sinks not read: {p}") for p in problems[:1]]
        document = alert_document(alert, self.vault(), self.clock())
        for sink in sinks:
            if every_sink or sink.receives(alert.category):
                out.append(self._send(sink, document))
        return out

    def _send(self, sink: SinkConfig, document: dict) -> Delivery:
        try:
            kind = self.types.get(sink.type)
        except UnknownName:
            return Delivery(sink.name, False, f"sink type '{sink.type}' is not installed (no plugin registers it)")
        try:
            return Delivery(sink.name, True, _line(kind.send(dict(sink.options), document)) or "sent")
        except SinkFailed as exc:
            return Delivery(sink.name, False, _line(str(exc)) or "failed")
        except StrongroomError as exc:
            return Delivery(sink.name, False, _line(str(exc)))
        except Exception as exc:  # a plugin's bug must not fail the operation that raised the alert
            return Delivery(sink.name, False, f"{type(exc).__name__}: {_line(str(exc))}")


def _line(text: object) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
