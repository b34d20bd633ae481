"""Server connections: libpq parameters and a reference to the password, never the password.

A :class:`Connection` is what an item stores: libpq keywords (``host``, ``port``,
``user``, ``dbname``, ``sslmode``...) parsed from ``--dsn`` or built from
``--host/--port/--user``, and a :class:`PasswordRef` saying where the password is at
run time:

``env``       the name of an environment variable (``--password-env VAR``);
``file``      the path of a file holding the password (``--password-file F``);
``passfile``  libpq's password file (``--passfile``: ``~/.pgpass`` or ``$PGPASSFILE``);
``none``      libpq's defaults (trust, peer, ``$PGPASSWORD``, ``~/.pgpass``).

A DSN that holds a password is refused.  The password reaches the PostgreSQL tools only
through the environment of the child process (``PGPASSWORD``), never a command line, so
it is neither stored in the vault nor shown in ``ps``, job records or error messages.
The tools always get ``-w`` (never prompt) and a 10 s connect timeout unless the DSN
sets one.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Mapping

import attrs

from strongroom import UsageError

from .errors import PostgresConnectFailed

SECRET_KEYS = frozenset({"password", "sslpassword"})
CONNECT_TIMEOUT = "10"
_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)


def parse_dsn(dsn: str) -> dict[str, str]:
    """libpq keywords of a connection URI or a ``key=value`` string."""
    dsn = dsn.strip()
    return _parse_uri(dsn) if _URI.match(dsn) else _parse_keywords(dsn)


def _parse_uri(dsn: str) -> dict[str, str]:
    rest = _URI.sub("", dsn, count=1)
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    params: dict[str, str] = {}
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if user:
            params["user"] = urllib.parse.unquote(user)
        if sep:
            params["password"] = urllib.parse.unquote(password)
    hosts, ports = [], []
    for spec in filter(None, netloc.split(",")):
        if spec.startswith("["):
            host, _, tail = spec[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else ""
        else:
            host, _, port = spec.partition(":")
        hosts.append(urllib.parse.unquote(host))
        ports.append(port)
    if any(hosts):
        params["host"] = ",".join(hosts)
    if any(ports):
        params["port"] = ",".join(ports)
    if path:
        params["dbname"] = urllib.parse.unquote(path)
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        params[key] = value
    return params


def _parse_keywords(dsn: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(dsn)
    while i < n:
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=" or not key:
            raise UsageError(message=f"malformed connection string near {dsn[start:start + 20]!r}")
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and dsn[i] == "'":
            i += 1
            while i < n and dsn[i] != "'":
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
            if i >= n:
                raise UsageError(message="malformed connection string: unterminated quoted value")
            i += 1
        else:
            while i < n and not dsn[i].isspace():
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
        params[key] = "".join(value)
    return params


def render(params: Mapping[str, str]) -> str:
    """A libpq ``key='value'`` connection string."""
    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quote(str(value))}" for key, value in params.items())


@attrs.frozen
class PasswordRef:
    """Where the password is found at run time (see the module docstring)."""

    kind: str = attrs.field(default="none", validator=attrs.validators.in_({"none", "env", "file", "passfile"}))
    value: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> "PasswordRef | None":
        given = [(kind, options.get(key)) for kind, key in
                 (("env", "password_env"), ("file", "password_file"), ("passfile", "passfile"))
                 if options.get(key)]
        if len(given) > 1:
            raise UsageError(message="give only one of --password-env, --password-file and --passfile")
        if not given:
            return None
        kind, value = given[0]
        if kind == "file":
            value = os.path.abspath(str(value))
        return cls(kind, "" if kind == "passfile" else str(value))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, doc: Mapping | None) -> "PasswordRef":
        return cls(**doc) if doc else cls()

    def describe(self) -> str:
        return {"env": f"password from ${self.value}", "file": f"password from {self.value}",
                "passfile": "password from .pgpass", "none": ""}[self.kind]

    def environment(self, server: str) -> dict[str, str | None]:
        """Variables to set (a None value: to remove) in the tools' environment."""
        if self.kind == "env":
            if os.environ.get(self.value) is None:
                raise PostgresConnectFailed(
                    server=server, reason=f"environment variable {self.value} (the password) is not set")
            return {"PGPASSWORD": os.environ[self.value]}
        if self.kind == "file":
            try:
                with open(self.value, encoding="utf-8") as fh:
                    password = fh.readline().rstrip("\r\n")
            except OSError as exc:
                raise PostgresConnectFailed(
                    server=server, reason=f"cannot read the password file {self.value} ({exc.strerror or exc})"
                ) from None
            return {"PGPASSWORD": password}
        if self.kind == "passfile":
            return {"PGPASSWORD": None}
        return {}


@attrs.frozen
class Connection:
    """libpq parameters of a server (no password) and the reference to its password."""

    params: tuple[tuple[str, str], ...]
    password: PasswordRef = PasswordRef()

    @classmethod
    def from_options(cls, options: Mapping[str, object], *, base: "Connection | None" = None) -> "Connection":
        """From ``--dsn`` or ``--host/--port/--user`` (over ``base``'s parameters, if given)."""
        dsn = options.get("dsn")
        params = dict(base.params) if base is not None and not dsn else {}
        if dsn:
            params = parse_dsn(str(dsn))
        for key in ("host", "port", "user"):
            if options.get(key) not in (None, ""):
                params[key] = str(options[key])
        secret = SECRET_KEYS & set(params)
        if secret:
            raise UsageError(
                message=f"the connection string holds a {sorted(secret)[0]}: pass it with --password-env,"
                " --password-file or --passfile instead (no secret is ever stored)"
            )
        password = PasswordRef.from_options(options)
        if password is None:
            password = base.password if base is not None else PasswordRef()
        return cls(tuple(params.items()), password)

    def to_dict(self) -> dict:
        return {"params": dict(self.params), "password": self.password.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping) -> "Connection":
        return cls(tuple(dict(doc.get("params", {})).items()), PasswordRef.from_dict(doc.get("password")))

    @property
    def maintenance_db(self) -> str | None:
        return dict(self.params).get("dbname")

    def conninfo(self, dbname: str | None = None) -> str:
        params = dict(self.params)
        if dbname is not None:
            params["dbname"] = dbname
        return render(params)

    def describe(self) -> str:
        """``user@host:port`` for messages (no secret is ever part of it)."""
        params = dict(self.params)
        host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "local socket"
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        user = params.get("user")
        return f"{user + '@' if user else ''}{host}:{port}"

    def environment(self) -> dict[str, str]:
        """The environment for a PostgreSQL tool: ours, plus the password, no prompt."""
        env = dict(os.environ)
        for key, value in self.password.environment(self.describe()).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if "connect_timeout" not in dict(self.params):
            env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
        return env
