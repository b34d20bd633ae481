"""Storage options from the user's configuration: a config file and the environment.

Storage options are the keyword arguments of the fsspec filesystem behind a vault URL
(``endpoint_url``, ``key``, ``secret``, ``client_keys``, ``known_hosts`` ...), plus the
vault's own ``concurrency``.  They come from three places; a later one overrides an
earlier one key by key:

1. **The config file** ``$STRONGROOM_HOME/config.toml`` (``~/.config/strongroom``
   by default), one table per vault URL prefix; every table whose prefix matches
   applies, longer prefixes over shorter ones::

       [storage."s3://backups"]
       endpoint_url = "https://minio.example.net:9000"
       key = "backup-writer"
       secret = { from_env = "MINIO_SECRET" }      # or { from_file = "/run/secrets/minio" }

   A prefix matches a URL equal to it or continuing it after a ``/``.
2. **The environment**: ``STRONGROOM_STORAGE_OPTIONS``, a JSON object applied to every
   vault URL (``{"key": "...", "secret": "..."}``), for CI jobs and containers.
3. **Explicit options**: ``--storage-option KEY=VALUE`` on the command line, or
   ``storage_options=`` of :meth:`Vault.open` / :meth:`Vault.create`.

The same file may name the vault a command opens when given neither ``--vault`` nor
``STRONGROOM_VAULT``: ``default_vault = "s3://backups/main"`` at its top
(:func:`default_vault`), before any table.

A value written ``{ from_env = "VAR" }`` or ``{ from_file = "PATH" }`` is read from that
environment variable or file (trailing newline removed) when the store is opened, so
the secret itself need not sit in the config file.  Secrets are never written into the
vault; :func:`redact_options` is how options are shown (values of secret-looking keys
become ``***``).

:func:`storage_options_for` returns a :class:`StorageOptions`: the options, plus where
each came from (``origins``), so that the store can name the place of an option it
does not take (:class:`~strongroom.errors.UnknownStorageOption`) instead of ignoring it.  Command lines are visible to other users of a machine (``ps``), so
pass secrets through the config file or the environment, not ``--storage-option``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import UsageError
from .home import strongroom_home

__all__ = [
    "CONFIG_NAME",
    "STORAGE_OPTIONS_ENV",
    "StorageOptions",
    "config_path",
    "default_vault",
    "parse_storage_option",
    "redact_options",
    "storage_options_for",
]

CONFIG_NAME = "config.toml"
STORAGE_OPTIONS_ENV = "STRONGROOM_STORAGE_OPTIONS"

_SECRET_KEY = re.compile(
    r"secret|passw|passphrase|token|credential|key$|^key|_key|sas|signature|connection_string",
    re.IGNORECASE,
)
#: keys that look secret by name but hold none
_NOT_SECRET = frozenset({"known_hosts", "client_keys"})


class StorageOptions(dict):
    """Storage options (a plain ``dict`` of them) that also say where each came from:
    ``origins[key]`` is the config file's path, :data:`STORAGE_OPTIONS_ENV`, or
    ``"given"`` (the command line, or ``storage_options=`` from Python)."""

    def __init__(self, options: dict[str, Any] | None = None, origins: dict[str, str] | None = None) -> None:
        super().__init__(options or {})
        self.origins: dict[str, str] = dict(origins or {})


def config_path() -> Path:
    """Where the config file is: ``$STRONGROOM_HOME/config.toml``."""
    return strongroom_home() / CONFIG_NAME


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(message=f"cannot read {path}: {exc}") from None


def default_vault() -> str | None:
    """The config file's ``default_vault = "URL"``: the vault of a command given neither
    ``--vault`` nor ``STRONGROOM_VAULT`` (None without one; UsageError if it is not text)."""
    path = config_path()
    value = _load_file(path).get("default_vault")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(message=f"{path}: default_vault must be a vault URL in quotes")
    return os.path.expanduser(value.strip())


def _matches(prefix: str, url: str) -> bool:
    prefix = prefix.rstrip("/")
    url = url.rstrip("/")
    return url == prefix or url.startswith(prefix + "/")


def _resolve(key: str, value: Any, where: str) -> Any:
    if isinstance(value, dict) and len(value) == 1 and set(value) <= {"from_env", "from_file"}:
        if "from_env" in value:
            var = value["from_env"]
            if var not in os.environ:
                raise UsageError(message=f"storage option {key!r} ({where}) wants environment variable {var}, which is not set")
            return os.environ[var]
        try:
            return Path(os.path.expanduser(value["from_file"])).read_text().rstrip("\n")
        except OSError as exc:
            raise UsageError(message=f"storage option {key!r} ({where}): cannot read {value['from_file']}: {exc.strerror}") from None
    return value


def _from_env() -> dict[str, Any]:
    raw = os.environ.get(STORAGE_OPTIONS_ENV)
    if not raw:
        return {}
    try:
        options = json.loads(raw)
    except ValueError as exc:
        raise UsageError(message=f"{STORAGE_OPTIONS_ENV} is not valid JSON ({exc.msg})") from None
    if not isinstance(options, dict):
        raise UsageError(message=f"{STORAGE_OPTIONS_ENV} must be a JSON object of storage options")
    return options


def storage_options_for(url: str, explicit: dict[str, Any] | None = None) -> StorageOptions:
    """The storage options for vault ``url``: config file, environment, then ``explicit``.

    References (``{from_env = ...}``, ``{from_file = ...}``) are resolved; the result
    says where each option came from (:class:`StorageOptions`).
    """
    path = config_path()
    tables = _load_file(path).get("storage", {})
    if not isinstance(tables, dict):
        raise UsageError(message=f"{path}: 'storage' must be a table of URL prefixes")
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for prefix in sorted((p for p in tables if _matches(p, url)), key=len):
        table = tables[prefix]
        if not isinstance(table, dict):
            raise UsageError(message=f"{path}: [storage.{json.dumps(prefix)}] must be a table")
        merged.update(table)
        sources.update(dict.fromkeys(table, str(path)))
    env = _from_env()
    merged.update(env)
    sources.update(dict.fromkeys(env, STORAGE_OPTIONS_ENV))
    merged.update(explicit or {})
    sources.update(dict.fromkeys(explicit or {}, "given"))
    resolved = {key: _resolve(key, value, sources[key]) for key, value in merged.items()}
    return StorageOptions(resolved, sources)


def parse_storage_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line -> (key, value).

    VALUE ``true``/``false`` becomes a bool, ``none`` None, an integer an int, text
    starting with ``[`` or ``{`` is read as JSON; anything else stays a string.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        # the text itself is not shown: it may be a secret typed in the wrong place
        raise UsageError(message="a storage option must look like KEY=VALUE, with KEY a name")
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered == "none":
        return key, None
    if re.fullmatch(r"[+-]?\d+", value.strip()):
        return key, int(value)
    if value.strip()[:1] in ("[", "{"):
        try:
            return key, json.loads(value)
        except ValueError as exc:
            raise UsageError(message=f"storage option {key}: invalid JSON ({exc.msg})") from None
    return key, value


def is_secret_key(key: str) -> bool:
    """Whether an option named ``key`` holds a secret (shown as ``***``)."""
    return key not in _NOT_SECRET and bool(_SECRET_KEY.search(key))


def redact_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` fit to show: secret-looking values replaced by ``***``, recursively."""
    shown: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_key(str(key)):
            shown[key] = "***"
        elif isinstance(value, dict):
            shown[key] = redact_options(value)
        else:
            shown[key] = value
    return shown
