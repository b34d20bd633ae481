"""The server folder: its configuration, its users, their tokens and roles.

Layout (``docs/server.md``)::

    DIR/server.toml   [server] listen, tls_cert, tls_key, session_minutes, jobs_minutes;
                      [vaults.NAME] storage = URL; [vaults.NAME.storage_options]
                      (a secret as { from_env = "VAR" }, read when the store is opened)
    DIR/tls/          cert.pem, key.pem (0600): self-signed by ``server init`` unless given
    DIR/users.json    (0600) users, tokens, role assignments
    DIR/home/         the server's STRONGROOM_HOME (its key slots of the hosted vaults)
    DIR/audit.log     refused requests that name no hosted vault, one JSON line each

Promises: a token is ``srv_<id>_<secret>`` with 32 random bytes of secret from
:mod:`secrets`; only the SHA-256 of the secret is stored, and it is compared in constant
time.  ``users.json`` is written atomically (a temporary file renamed over it, mode 0600)
under an exclusive lock, so concurrent admin commands do not lose each other's changes;
both files are re-read when they change, so admin commands take effect on a running
server at its next request.  Refuses: unknown users and tokens, bad names, bad roles,
expiry dates in the past (one line, exit code 3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs

from ..models import iso, utcnow
from .errors import ServerDirError, UnknownServerToken, UnknownServerUser
from .roles import check_role, highest

__all__ = [
    "Assignment", "HostedConfig", "Principal", "ServerConfig", "ServerDir", "TokenInfo", "UserBook",
    "check_name", "parse_expires",
]

CONFIG_NAME = "server.toml"
USERS_NAME = "users.json"
AUDIT_NAME = "audit.log"
HOME_NAME = "home"
DEFAULT_LISTEN = "127.0.0.1:8443"
TOKEN_PREFIX = "srv_"
ALL_VAULTS = "*"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_TOKEN = re.compile(r"srv_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})\Z")


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a good user or vault name (letters, digits, ``._-``, at most 64)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ServerDirError(message=f"bad {kind} name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def parse_expires(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """``30d``, ``12h``, ``2w`` from ``now``, or an ISO date/time (UTC unless it says); None for none."""
    if text is None or text in ("", "never"):
        return None
    m = re.fullmatch(r"(\d{1,5})([hdw])", text.strip())
    if m:
        hours = int(m.group(1)) * {"h": 1, "d": 24, "w": 24 * 7}[m.group(2)]
        if hours == 0:
            raise ServerDirError(message=f"--expires {text}: the token would expire at once")
        return now + dt.timedelta(hours=hours)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ServerDirError(message=f"--expires {text!r}: expected a duration (30d, 12h, 2w) or a date"
                                     " (2030-01-31 or 2030-01-31T12:00:00+00:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when <= now:
        raise ServerDirError(message=f"--expires {text}: that is in the past")
    return when


# --- the configuration ------------------------------------------------------------------


@attrs.frozen
class HostedConfig:
    """One hosted vault of ``server.toml``: its storage URL and options (secrets as
    ``{"from_env": "VAR"}``, resolved by :meth:`resolved_options`)."""

    name: str
    storage: str
    storage_options: dict = attrs.field(factory=dict, repr=False)

    def resolved_options(self) -> dict:
        """The storage options with every ``{from_env = VAR}`` replaced by the variable's value."""
        out = {}
        for key, value in self.storage_options.items():
            if isinstance(value, dict) and set(value) == {"from_env"}:
                var = value["from_env"]
                if var not in os.environ:
                    raise ServerDirError(message=f"vault '{self.name}': storage option {key} needs environment"
                                                 f" variable {var}, which is not set")
                value = os.environ[var]
            out[key] = value
        return out


@attrs.frozen
class ServerConfig:
    """``server.toml`` as read."""

    listen: str = DEFAULT_LISTEN
    tls_cert: str = "tls/cert.pem"
    tls_key: str = "tls/key.pem"
    session_minutes: int = 60
    #: How often the server's own jobs (prune, object locks, verify, missed schedules) look
    #: at each hosted vault (:mod:`.jobs`); 0: never.
    jobs_minutes: int = 15
    vaults: dict = attrs.field(factory=dict)  # name -> HostedConfig

    @classmethod
    def from_dict(cls, doc: dict) -> ServerConfig:
        server = doc.get("server", {})
        vaults = {}
        for name, v in doc.get("vaults", {}).items():
            if not isinstance(v, dict) or not isinstance(v.get("storage"), str):
                raise ServerDirError(message=f"{CONFIG_NAME}: [vaults.{name}] needs storage = URL")
            vaults[name] = HostedConfig(name, v["storage"], dict(v.get("storage_options", {})))
        return cls(listen=str(server.get("listen", DEFAULT_LISTEN)), tls_cert=str(server.get("tls_cert", "tls/cert.pem")),
                   tls_key=str(server.get("tls_key", "tls/key.pem")),
                   session_minutes=int(server.get("session_minutes", 60)),
                   jobs_minutes=int(server.get("jobs_minutes", 15)), vaults=vaults)

    def to_toml(self) -> str:
        lines = ["[server]", f"listen = {_q(self.listen)}", f"tls_cert = {_q(self.tls_cert)}",
                 f"tls_key = {_q(self.tls_key)}", f"session_minutes = {int(self.session_minutes)}",
                 f"jobs_minutes = {int(self.jobs_minutes)}"]
        for name, v in sorted(self.vaults.items()):
            lines += ["", f"[vaults.{_q(name)}]", f"storage = {_q(v.storage)}"]
            if v.storage_options:
                lines += ["", f"[vaults.{_q(name)}.storage_options]"]
                lines += [f"{_q(k)} = {_value(val)}" for k, val in sorted(v.storage_options.items())]
        return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return json.dumps(str(text))  # a JSON string is a TOML basic string


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_q(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return _q(value)


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); a one-line error otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServerDirError(message=f"bad listen address {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8443")
    return host.strip("[]"), int(port)


# --- users, tokens and roles ------------------------------------------------------------


@attrs.frozen
class Principal:
    """Who a request comes from: the user, the token used, and the user's roles (vault
    name or ``*`` -> role) when the token was checked."""

    user: str
    token_id: str
    roles: dict = attrs.field(factory=dict)

    def role_for(self, vault: str) -> str | None:
        """The user's role on ``vault`` (the stronger of its own and the ``*`` one), None for none."""
        return highest([r for r in (self.roles.get(vault), self.roles.get(ALL_VAULTS)) if r])


@attrs.frozen
class Assignment:
    user: str
    vault: str
    role: str


@attrs.frozen
class TokenInfo:
    token_id: str
    user: str
    created: str
    expires: str | None
    revoked: str | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked:
            return "revoked"
        if self.expires and dt.datetime.fromisoformat(self.expires) <= now:
            return "expired"
        return "active"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


_DUMMY_HASH = _hash("no such token")


class _Watched:
    """A file's parsed content, re-read when its size, mtime or inode changes."""

    def __init__(self, path: Path, parse: Callable[[bytes], Any], missing: Callable[[], Any]) -> None:
        self.path, self._parse, self._missing = path, parse, missing
        self._sig: tuple | None = None
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        try:
            st = self.path.stat()
            sig: tuple | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            sig = None
        with self._lock:
            if self._value is None or sig != self._sig:
                if sig is None:
                    self._value = self._missing()
                else:
                    self._value = self._parse(self.path.read_bytes())
                self._sig = sig
            return self._value


def _empty_users() -> dict:
    return {"version": 1, "users": {}, "tokens": {}, "roles": {}}


def _parse_users(raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ServerDirError(message=f"{USERS_NAME} is not JSON: restore it from a copy") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ServerDirError(message=f"{USERS_NAME} is not a strongroom server user book")
    for key in ("users", "tokens", "roles"):
        doc.setdefault(key, {})
    return doc


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a new file beside ``path`` (``mode``), fsync it, rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class UserBook:
    """``users.json``: users, tokens (hashes only), role assignments (see the module docstring)."""

    def __init__(self, path: Path, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.path = Path(path)
        self.clock = clock
        self._file = _Watched(self.path, _parse_users, _empty_users)

    # --- reading ---------------------------------------------------------------------

    def _doc(self) -> dict:
        return self._file.get()

    def users(self) -> list[str]:
        return sorted(self._doc()["users"])

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo(tid, t["user"], t["created"], t.get("expires"), t.get("revoked"))
                for tid, t in sorted(self._doc()["tokens"].items(), key=lambda kv: kv[1]["created"])]

    def assignments(self) -> list[Assignment]:
        return [Assignment(user, vault, role) for user, roles in sorted(self._doc()["roles"].items())
                for vault, role in sorted(roles.items())]

    def authenticate(self, token: str | None, now: dt.datetime) -> Principal | None:
        """The principal of ``token``; None when it is missing, malformed, unknown, wrong,
        revoked, expired or its user is gone."""
        m = _TOKEN.match(token) if isinstance(token, str) else None
        doc = self._doc()
        record = doc["tokens"].get(m.group(1)) if m else None
        secret = m.group(2) if m else "x"
        good = hmac.compare_digest(_hash(secret), record["hash"] if record else _DUMMY_HASH)
        if not (m and record and good) or record.get("revoked"):
            return None
        if record.get("expires") and dt.datetime.fromisoformat(record["expires"]) <= now:
            return None
        user = record["user"]
        if user not in doc["users"]:
            return None
        return Principal(user=user, token_id=m.group(1), roles=dict(doc["roles"].get(user, {})))

    # --- changing --------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[dict]:
        """The newest document under an exclusive lock; written atomically after the block."""
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = _parse_users(self.path.read_bytes()) if self.path.exists() else _empty_users()
            yield doc
            write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())
        finally:
            os.close(fd)

    def add_user(self, name: str) -> None:
        check_name("user", name)
        with self._change() as doc:
            if name in doc["users"]:
                raise ServerDirError(message=f"user '{name}' already exists")
            doc["users"][name] = {"created": iso(self.clock())}

    def create_token(self, user: str, expires: dt.datetime | None = None) -> str:
        """A new token for ``user``, returned once (only its hash is kept)."""
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with self._change() as doc:
            if user not in doc["users"]:
                raise UnknownServerUser(user=user)
            doc["tokens"][token_id] = {"user": user, "hash": _hash(secret), "created": iso(self.clock()),
                                       "expires": iso(expires) if expires else None, "revoked": None}
        return f"{TOKEN_PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> None:
        with self._change() as doc:
            record = doc["tokens"].get(token_id)
            if record is None:
                raise UnknownServerToken(token_id=token_id)
            if not record.get("revoked"):
                record["revoked"] = iso(self.clock())

    def assign(self, user: str, vault: str, role: str) -> None:
        check_role(role)
        if vault != ALL_VAULTS:
            check_name("vault", vault)
        with self._change() as doc:
            if user not in doc["users"]:
                raise UnknownServerUser(user=user)
            doc["roles"].setdefault(user, {})[vault] = role

    def unassign(self, user: str, vault: str) -> None:
        with self._change() as doc:
            if user not in doc["users"]:
                raise UnknownServerUser(user=user)
            roles = doc["roles"].get(user, {})
            if vault not in roles:
                raise ServerDirError(message=f"user '{user}' has no role on vault '{vault}'")
            del roles[vault]
            if not roles:
                doc["roles"].pop(user, None)


# --- the folder -------------------------------------------------------------------------


class ServerDir:
    """A server folder (see the module docstring); ``.config`` and ``.users`` are re-read
    when their files change."""

    def __init__(self, path: str | os.PathLike, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.path = Path(path).absolute()
        self._config = _Watched(self.path / CONFIG_NAME, self._parse_config, self._no_config)
        self.users = UserBook(self.path / USERS_NAME, clock)

    def _no_config(self) -> ServerConfig:
        raise ServerDirError(message=f"{self.path} is not a strongroom server folder (no {CONFIG_NAME}):"
                                     " create one with 'strongroom server init DIR'")

    def _parse_config(self, raw: bytes) -> ServerConfig:
        try:
            return ServerConfig.from_dict(tomllib.loads(raw.decode()))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise ServerDirError(message=f"{self.path / CONFIG_NAME}: {exc}") from None

    @property
    def config(self) -> ServerConfig:
        return self._config.get()

    @property
    def home(self) -> Path:
        """The server's STRONGROOM_HOME: its key slots of the hosted vaults, its state files."""
        return self.path / HOME_NAME

    @property
    def audit_log(self) -> Path:
        return self.path / AUDIT_NAME

    def resolve(self, relative: str) -> Path:
        """A path of ``server.toml`` (relative to the folder unless absolute)."""
        return self.path / relative

    def check(self) -> ServerDir:
        """This folder, if it holds a readable ``server.toml``."""
        self.config
        return self

    @classmethod
    def init(cls, path: str | os.PathLike, *, listen: str = DEFAULT_LISTEN, tls_cert: str | None = None,
             tls_key: str | None = None, clock: Callable[[], dt.datetime] = utcnow) -> tuple[ServerDir, str]:
        """A new server folder at ``path`` (missing or empty) and the admin's token (shown once):
        ``server.toml``, a self-signed certificate unless ``tls_cert``/``tls_key`` are given,
        ``users.json`` with user ``admin`` (owner of every vault), ``home/``."""
        from .tls import make_self_signed

        host, _ = split_listen(listen)
        root = Path(path).absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ServerDirError(message=f"{root} is not an empty folder: a server folder is made in a new one")
        if (tls_cert is None) != (tls_key is None):
            raise ServerDirError(message="give both --tls-cert and --tls-key, or neither")
        for given in (tls_cert, tls_key):
            if given is not None and not Path(given).is_file():
                raise ServerDirError(message=f"{given}: no such file")
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        (root / HOME_NAME).mkdir(mode=0o700)
        if tls_cert is None:
            (root / "tls").mkdir(mode=0o700)
            make_self_signed(root / "tls" / "cert.pem", root / "tls" / "key.pem", host)
            cert, key = "tls/cert.pem", "tls/key.pem"
        else:
            cert, key = str(Path(tls_cert).absolute()), str(Path(tls_key).absolute())
        sdir = cls(root, clock)
        sdir.write_config(ServerConfig(listen=listen, tls_cert=cert, tls_key=key))
        sdir.users.add_user("admin")
        sdir.users.assign("admin", ALL_VAULTS, "owner")
        return sdir, sdir.users.create_token("admin")

    def write_config(self, config: ServerConfig) -> None:
        write_atomic(self.path / CONFIG_NAME, config.to_toml().encode(), 0o600)

    def add_vault(self, name: str, storage: str, storage_options: dict) -> None:
        check_name("vault", name)
        config = self.config
        if name in config.vaults:
            raise ServerDirError(message=f"this server already hosts a vault '{name}'")
        vaults = dict(config.vaults)
        vaults[name] = HostedConfig(name, storage, dict(storage_options))
        self.write_config(attrs.evolve(config, vaults=vaults))
