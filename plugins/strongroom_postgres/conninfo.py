"""Server connections: libpq parameters and a reference to the password, never the password.

A :class:`Connection` is what an item stores: libpq keywords (``host``, ``port``,
``user``, ``dbname``, ``sslmode``...) parsed from ``--dsn`` or built from
``--host/--port/--user``, and a :class:`PasswordRef` saying where the password is at
run time:

``ref``       a secret reference (``strongroom.secrets``): ``--password-ref REF`` with
              ``env:VAR``, ``file:PATH`` or a plugin's ``SCHEME:...``; ``--password-env
              VAR`` and ``--password-file F`` are the same as ``env:VAR`` and ``file:F``
              (items stored with the older kinds ``env`` and ``file`` read as these);
``passfile``  libpq's password file (``--passfile``: ``~/.pgpass`` or ``$PGPASSFILE``);
``none``      libpq's defaults (trust, peer, ``$PGPASSWORD``, ``~/.pgpass``).

Only the reference is stored.  It is checked when given (a malformed reference or an
unknown scheme: ``InvalidSecretReference``, exit 35) and resolved every time a tool is
started, by the secret providers the workload was given (``Workload.secrets``), so a
changed password is used by the next run; one that cannot be read is
``SecretNotAvailable`` (exit 36).  A DSN that holds a password is refused.  The password
reaches the PostgreSQL tools only through the environment of the child process
(``PGPASSWORD``, which only the child's user can read; the variable an ``env:``
reference names is left out of it), never a command line or a file,
so it is neither stored in the vault nor shown in ``ps``, job records, logs or error
messages.  The tools always get ``-w`` (never prompt) and a 10 s connect timeout unless
the DSN sets one.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Mapping

import attrs

from strongroom import SecretNotAvailable, SecretResolver, UsageError


SECRET_KEYS = frozenset({"password", "sslpassword"})
CONNECT_TIMEOUT = "10"
_SCHEMES = ("postgresql://", "postgres://")  # either, in any case


def _uri_scheme(dsn: str) -> str | None:
    """The scheme ``dsn`` starts with (as written), or None: not a connection URI."""
    lowered = dsn[:len(_SCHEMES[0])].lower()
    return next((dsn[:len(s)] for s in _SCHEMES if lowered.startswith(s)), None)


def parse_dsn(dsn: str) -> dict[str, str]:
    """libpq keywords of a connection URI or a ``key=value`` string."""
    dsn = dsn.strip()
    return _parse_uri(dsn) if _uri_scheme(dsn) else _parse_keywords(dsn)


def _parse_uri(dsn: str) -> dict[str, str]:
    rest = dsn[len(_uri_scheme(dsn) or ""):]
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


#: The options that say where the password is, and the reference each gives.
_PASSWORD_OPTIONS = (("password_ref", "--password-ref", "{}"), ("password_env", "--password-env", "env:{}"),
                     ("password_file", "--password-file", "file:{}"), ("passfile", "--passfile", ""))


@attrs.frozen
class PasswordRef:
    """Where the password is found at run time (see the module docstring)."""

    kind: str = attrs.field(default="none", validator=attrs.validators.in_({"none", "ref", "passfile"}))
    #: the secret reference (kind ``ref``)
    value: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, object], secrets: SecretResolver) -> "PasswordRef | None":
        """From ``--password-ref``, ``--password-env``, ``--password-file`` or ``--passfile``
        (None if none is given); a reference is checked by *secrets*, nothing is read."""
        given = [(flag, template, options.get(key)) for key, flag, template in _PASSWORD_OPTIONS
                 if options.get(key)]
        if len(given) > 1:
            raise UsageError(message="give only one of " + ", ".join(f for _, f, _ in _PASSWORD_OPTIONS[:-1])
                             + " and --passfile")
        if not given:
            return None
        flag, template, value = given[0]
        if flag == "--passfile":
            return cls("passfile")
        return cls("ref", secrets.check(template.format(value)))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, doc: Mapping | None) -> "PasswordRef":
        if not doc:
            return cls()
        kind, value = doc.get("kind", "none"), str(doc.get("value") or "")
        if kind in ("env", "file"):  # stored before secret references: the same as env:VAR, file:PATH
            return cls("ref", f"{kind}:{value}")
        return cls(kind, value)

    def describe(self) -> str:
        return {"ref": f"password from {self.value}", "passfile": "password from .pgpass", "none": ""}[self.kind]

    def environment(self, secrets: SecretResolver) -> dict[str, str | None]:
        """Variables to set (a None value: to remove) in the tools' environment; a
        reference is resolved now."""
        if self.kind == "ref":
            secret = secrets.resolve(self.value)
            if b"\0" in secret.value:
                raise SecretNotAvailable(ref=self.value, reason="the secret holds a NUL byte, which no password can")
            env: dict[str, str | None] = {"PGPASSWORD": os.fsdecode(secret.value)}
            scheme, _, name = self.value.partition(":")
            if scheme == "env" and name != "PGPASSWORD":
                env[name] = None  # the tools get the password once, as PGPASSWORD
            return env
        if self.kind == "passfile":
            return {"PGPASSWORD": None}
        return {}


@attrs.frozen
class Connection:
    """libpq parameters of a server (no password) and the reference to its password.

    ``secrets`` resolves the reference when a tool is started: the workload's resolver
    (every registered scheme); by default the built-in ``env`` and ``file`` only.
    """

    params: tuple[tuple[str, str], ...]
    password: PasswordRef = PasswordRef()
    secrets: SecretResolver = attrs.field(factory=SecretResolver.builtin, eq=False, repr=False)

    @classmethod
    def from_options(cls, options: Mapping[str, object], *, base: "Connection | None" = None,
                     secrets: SecretResolver | None = None) -> "Connection":
        """From ``--dsn`` or ``--host/--port/--user`` (over ``base``'s parameters, if given)."""
        if secrets is None:
            secrets = base.secrets if base is not None else SecretResolver.builtin()
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
                message=f"the connection string holds a {sorted(secret)[0]}: pass it with --password-ref,"
                " --password-env, --password-file or --passfile instead (no secret is ever stored)"
            )
        password = PasswordRef.from_options(options, secrets)
        if password is None:
            password = base.password if base is not None else PasswordRef()
        return cls(tuple(params.items()), password, secrets)

    def to_dict(self) -> dict:
        return {"params": dict(self.params), "password": self.password.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping, secrets: SecretResolver | None = None) -> "Connection":
        return cls(tuple(dict(doc.get("params", {})).items()), PasswordRef.from_dict(doc.get("password")),
                   SecretResolver.builtin() if secrets is None else secrets)

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
        """The environment for a PostgreSQL tool: ours, plus the password (resolved now), no prompt."""
        env = dict(os.environ)
        for key, value in self.password.environment(self.secrets).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if "connect_timeout" not in dict(self.params):
            env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
        return env
