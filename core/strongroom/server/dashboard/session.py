"""Dashboard sessions: a signed, expiring cookie that names a token, and CSRF tokens.

A user logs in with a server token (:meth:`UserBook.authenticate`); the session cookie
then holds the token's *id* (never the token), the user, a random nonce and the expiry
(``session_minutes`` of ``server.toml`` from the login), signed with HMAC-SHA256 under
the dashboard key ``DIR/dashboard.key`` (32 random bytes, 0600, made on first use).
The cookie is ``HttpOnly; Secure; SameSite=Strict; Path=/dashboard``.

:meth:`Sessions.principal` promises that a session counts only while its signature is
good, it has not expired, and its token is still active (not revoked, not expired) and
belongs to a user who still exists; the roles are read afresh from the user book on
every request, so a role removed by ``strongroom server role remove`` takes effect at
once.  The CSRF token of a form is an HMAC of the session's nonce: a POST whose token
does not match its session is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

import attrs

from ..serverdir import Principal, write_atomic

__all__ = ["COOKIE", "KEY_NAME", "Session", "Sessions"]

COOKIE = "strongroom_session"
KEY_NAME = "dashboard.key"
COOKIE_PATH = "/dashboard"


@attrs.frozen
class Session:
    user: str
    token_id: str
    nonce: str
    expires: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(folder: Path) -> bytes:
    """The dashboard key of the server folder, made (0600) the first time."""
    path = Path(folder) / KEY_NAME
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) != 32:
        write_atomic(path, secrets.token_bytes(32))
        key = path.read_bytes()
    return key


class Sessions:
    """Session cookies and CSRF tokens of one server folder (see the module docstring)."""

    def __init__(self, server_dir: Any) -> None:
        self.dir = server_dir
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self.dir.path)
        return self._key

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.key, b"session:" + payload, hashlib.sha256).digest())

    def minutes(self) -> int:
        return max(int(self.dir.config.session_minutes), 1)

    def issue(self, principal: Principal, now: dt.datetime) -> tuple[str, int]:
        """(the cookie value, its max age in seconds) of a new session of ``principal``."""
        expires = now + dt.timedelta(minutes=self.minutes())
        payload = json.dumps({"u": principal.user, "t": principal.token_id, "n": secrets.token_hex(16),
                              "e": int(expires.timestamp())}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}", self.minutes() * 60

    def read(self, cookie: str | None, now: dt.datetime) -> Session | None:
        """The session of a cookie: None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        try:
            payload = _unb64(body)
            if not hmac.compare_digest(self._sign(payload), signature):
                return None
            doc = json.loads(payload)
            expires = dt.datetime.fromtimestamp(int(doc["e"]), dt.timezone.utc)
            session = Session(str(doc["u"]), str(doc["t"]), str(doc["n"]), expires)
        except (ValueError, KeyError, TypeError):
            return None
        return session if now < session.expires else None

    def principal(self, session: Session | None, now: dt.datetime) -> Principal | None:
        """Who the session is, with the roles in force now; None if its token no longer counts."""
        if session is None:
            return None
        users = self.dir.users
        token = next((t for t in users.tokens() if t.token_id == session.token_id), None)
        if token is None or token.user != session.user or token.state(now) != "active":
            return None
        if session.user not in users.users():
            return None
        roles = {a.vault: a.role for a in users.assignments() if a.user == session.user}
        return Principal(user=session.user, token_id=session.token_id, roles=roles)

    def csrf(self, session: Session) -> str:
        return _b64(hmac.new(self.key, b"csrf:" + session.nonce.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session | None, token: object) -> bool:
        return session is not None and isinstance(token, str) and hmac.compare_digest(self.csrf(session), token)


def cookie_options(max_age: int) -> dict:
    return {"max_age": max_age, "path": COOKIE_PATH, "httponly": True, "secure": True, "samesite": "strict"}

