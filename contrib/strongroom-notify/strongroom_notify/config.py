"""The notification configuration: ``$STRONGROOM_HOME/notify.toml`` and ``STRONGROOM_NOTIFY_URL``.

:func:`load_config` promises one of three answers:

- ``None``: no file and no ``STRONGROOM_NOTIFY_URL``; the plugin then does nothing at all;
- a :class:`NotifyConfig`, every value checked;
- :class:`~strongroom_notify.errors.NotifyConfigError`, one line naming the file and the
  first problem: unreadable TOML, an unknown key, an unknown job state in ``on``, a URL
  that is not http(s), a timeout that is not a positive number, an empty ``argv``.

``STRONGROOM_NOTIFY_URL``, when set, is the webhook's URL: it replaces ``webhook.url`` of
the file, or makes a webhook with the default timeout when the file has none (or there is
no file).  Header values are kept as :class:`HeaderValue`: a literal (held as a
:class:`strongroom.Secret`), an environment variable's name or a file's path, read only
when a notification is sent.  Nothing secret is ever part of a ``repr`` or a message.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import attrs
from strongroom import Secret

from strongroom_notify.errors import NotifyConfigError

__all__ = [
    "CONFIG_NAME", "DEFAULT_ON", "FINISHED_STATES", "URL_ENV", "CommandConfig", "HeaderValue",
    "NotifyConfig", "WebhookConfig", "config_path", "load_config",
]

CONFIG_NAME = "notify.toml"
URL_ENV = "STRONGROOM_NOTIFY_URL"
#: The states a finished job can be in (strongroom.Job's states, less ``in_progress``).
FINISHED_STATES = ("completed", "completed_with_warnings", "failed", "cancelled")
DEFAULT_ON = frozenset({"failed", "completed_with_warnings"})
WEBHOOK_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class HeaderError(Exception):
    """A header value could not be read (a message without the value)."""


@attrs.frozen
class HeaderValue:
    """One header's value: exactly one of a literal, ``from_env`` or ``from_file``."""

    literal: Secret | None = None
    from_env: str | None = None
    from_file: str | None = None

    def resolve(self, environ: Mapping[str, str]) -> str:
        """The value to send; :class:`HeaderError` if its variable or file is missing."""
        if self.literal is not None:
            value = self.literal.value.decode()
        elif self.from_env is not None:
            value = environ.get(self.from_env)
            if not value:
                raise HeaderError(f"environment variable {self.from_env} is not set")
        else:
            try:
                value = Path(self.from_file).read_text().strip()  # type: ignore[arg-type]
            except OSError as exc:
                raise HeaderError(f"cannot read {self.from_file}: {exc.strerror or type(exc).__name__}") from None
            except UnicodeDecodeError:
                raise HeaderError(f"{self.from_file} is not UTF-8 text") from None
        if "\n" in value or "\r" in value:
            raise HeaderError("the value has a line break")
        return value

    def describe(self) -> Any:
        """How ``notify show`` prints it: the literal as ``***``, where it comes from otherwise."""
        if self.literal is not None:
            return "***"
        return {"from_env": self.from_env} if self.from_env is not None else {"from_file": self.from_file}


@attrs.frozen
class WebhookConfig:
    url: str = attrs.field(repr=False)
    timeout: float = WEBHOOK_TIMEOUT
    headers: tuple[tuple[str, HeaderValue], ...] = ()


@attrs.frozen
class CommandConfig:
    argv: tuple[str, ...]
    timeout: float = COMMAND_TIMEOUT


@attrs.frozen
class NotifyConfig:
    """What notifies (job states and types) and where to (the sinks)."""

    source: str
    on: frozenset[str] = DEFAULT_ON
    types: frozenset[str] | None = None  # None: every job type
    webhook: WebhookConfig | None = None
    command: CommandConfig | None = None

    def wants(self, job_type: str, state: str) -> bool:
        """Does a job of this type that ended in this state send a notification?"""
        return state in self.on and (self.types is None or job_type in self.types)


def config_path(home: Path) -> Path:
    return Path(home) / CONFIG_NAME


def load_config(home: Path, environ: Mapping[str, str] | None = None) -> NotifyConfig | None:
    """The configuration in effect for ``home`` and ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    path = config_path(home)
    env_url = environ.get(URL_ENV) or None
    exists = path.exists()
    if not exists and env_url is None:
        return None
    doc: dict[str, Any] = {}
    source = URL_ENV
    if exists:
        source = str(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise NotifyConfigError(source=source, reason=f"cannot read it: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise NotifyConfigError(source=source, reason=f"not valid TOML: {exc}") from None
    try:
        return _parse(doc, source, env_url)
    except _Bad as bad:
        raise NotifyConfigError(source=source, reason=str(bad)) from None


class _Bad(Exception):
    """One problem in the document; :func:`load_config` adds where it is."""


def _parse(doc: dict[str, Any], source: str, env_url: str | None) -> NotifyConfig:
    _known_keys(doc, {"on", "types", "webhook", "command"}, "")
    webhook_doc = _table(doc, "webhook")
    if env_url is not None:
        webhook_doc = {**(webhook_doc or {}), "url": env_url}
    where = URL_ENV if env_url is not None else "webhook.url"
    command_doc = _table(doc, "command")
    return NotifyConfig(
        source=source + (f" and {URL_ENV}" if env_url is not None and source != URL_ENV else ""),
        on=_states(doc.get("on", sorted(DEFAULT_ON))),
        types=None if "types" not in doc else frozenset(_strings(doc["types"], "types")),
        webhook=None if webhook_doc is None else _webhook(webhook_doc, where),
        command=None if command_doc is None else _command(command_doc),
    )


def _known_keys(table: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        where = f" in [{prefix}]" if prefix else ""
        raise _Bad(f"unknown key '{unknown[0]}'{where} (known: {', '.join(sorted(known))})")


def _table(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, dict):
        raise _Bad(f"'{name}' must be a table ([{name}])")
    return value


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Bad(f"'{name}' must be a list of names")
    return value


def _states(value: Any) -> frozenset[str]:
    names = _strings(value, "on")
    if "all" in names:
        return frozenset(FINISHED_STATES)
    for name in names:
        if name not in FINISHED_STATES:
            raise _Bad(f"unknown job state '{name}' in 'on' (known: all, {', '.join(FINISHED_STATES)})")
    return frozenset(names)


def _timeout(table: dict[str, Any], name: str, default: float) -> float:
    value = table.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _Bad(f"{name}.timeout must be a positive number of seconds")
    return float(value)


def _webhook(table: dict[str, Any], where: str) -> WebhookConfig:
    _known_keys(table, {"url", "timeout", "headers"}, "webhook")
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise _Bad("[webhook] needs a url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Bad(f"{where} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        scheme = f"'{parts.scheme}'" if parts.scheme else "no scheme"
        raise _Bad(f"{where} must be an http:// or https:// URL with a host (it has {scheme})")
    headers = table.get("headers", {})
    if not isinstance(headers, dict):
        raise _Bad("webhook.headers must be a table of header names and values")
    return WebhookConfig(url=url, timeout=_timeout(table, "webhook", WEBHOOK_TIMEOUT),
                         headers=tuple((name, _header(name, value)) for name, value in headers.items()))


def _header(name: str, value: Any) -> HeaderValue:
    if not HEADER_NAME.match(name):
        raise _Bad(f"{name!r} is not a valid HTTP header name")
    if isinstance(value, str):
        return HeaderValue(literal=Secret(value.encode()))
    if isinstance(value, dict) and len(value) == 1:
        (kind, ref), = value.items()
        if kind in ("from_env", "from_file") and isinstance(ref, str) and ref:
            return HeaderValue(**{kind: ref})
    raise _Bad(f"webhook header '{name}' must be a string, {{ from_env = \"VAR\" }} or {{ from_file = \"PATH\" }}")


def _command(table: dict[str, Any]) -> CommandConfig:
    _known_keys(table, {"argv", "timeout"}, "command")
    argv = table.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
        raise _Bad("command.argv must be a non-empty list of strings, the program first")
    return CommandConfig(argv=tuple(argv), timeout=_timeout(table, "command", COMMAND_TIMEOUT))
