"""URLs without their secrets: for the notification, for ``notify show``, for messages.

- :func:`strip_password` drops the password (and the query string, where storage
  options sometimes travel) from a vault URL: ``sftp://bob:pw@nas/v`` -> ``sftp://bob@nas/v``.
  A plain local path is returned unchanged.
- :func:`redact` keeps a URL's shape but shows its password and query values as ``***``.
- :func:`where` is only ``host[:port]``: what every message about a webhook names, so a
  token kept in the URL's path or query never reaches a terminal or a log.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "credentials", "redact", "strip_password", "where", "without_credentials"]

REDACTED = "***"


def _netloc(parts, user: str | None, password: str | None) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if user is None:
        return host
    return f"{user}:{password}@{host}" if password is not None else f"{user}@{host}"


def strip_password(url: str) -> str:
    """``url`` without its password and query string."""
    try:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            return url
        return urlunsplit((parts.scheme, _netloc(parts, parts.username, None), parts.path, "", ""))
    except ValueError:  # unparsable: say nothing rather than leak
        return REDACTED


def redact(url: str) -> str:
    """``url`` with the password and every query value replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = REDACTED if parts.password is not None else None
        query = urlencode([(k, REDACTED) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, _netloc(parts, parts.username, password), parts.path, query, ""))
    except ValueError:
        return REDACTED


def where(url: str) -> str:
    """``host[:port]`` of ``url``."""
    try:
        return _netloc(urlsplit(url), None, None) or "?"
    except ValueError:
        return "?"


def credentials(url: str) -> tuple[str, str] | None:
    """``(user, password)`` written in ``url``, or None."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


def without_credentials(url: str) -> str:
    """``url`` with no user or password (what is actually requested)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, _netloc(parts, None, None), parts.path, parts.query, parts.fragment))
