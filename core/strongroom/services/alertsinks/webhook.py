"""The ``webhook`` sink: the alert document POSTed as JSON.

Options: ``url`` (required, ``http://`` or ``https://``), ``token`` (secret: sent as
``Authorization: Bearer <token>``), ``header`` (secret: one extra ``Name: value``
header), ``timeout`` (seconds per attempt, default 10).

It tries up to 3 times, 0.25 s then 0.5 s apart, when the connection fails or the
server answers 5xx; any other answer, or no answer within the timeout, is final.  A
2xx answer is success.  Redirects are not followed (a POST turned into a GET would
look delivered).  Messages name the server as ``host[:port]`` only, never the path,
query, token or header value.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Mapping

from ...version import __version__
from . import SinkFailed, SinkType, encode
from .options import check_timeout, timeout_of

__all__ = ["WEBHOOK"]

TRIES = 3
BACKOFF = (0.25, 0.5)


def _no_redirect_opener():  # noqa: ANN202
    """An opener that follows no redirect.  urllib.request (and http.client, ssl under it)
    is imported here, not at the top: the sink registers at every command's start-up."""
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
            return None  # urllib then raises HTTPError with the 3xx code

    return urllib.request.build_opener(_NoRedirect)


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _check(options: Mapping[str, str]) -> None:
    parts = urllib.parse.urlsplit(options["url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("put credentials in --option token=... or --option header=..., not in the url")
    header = options.get("header")
    if header is not None:
        name, sep, value = header.partition(":")
        if not sep or not name.strip() or not value.strip() or any(c in header for c in "\r\n"):
            raise ValueError("header must be 'Name: value' on one line")
    if "token" in options and any(c in options["token"] for c in "\r\n"):
        raise ValueError("token must be one line")
    check_timeout(options)


def _headers(options: Mapping[str, str]) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": f"strongroom/{__version__}"}
    if options.get("token"):
        headers["Authorization"] = f"Bearer {options['token']}"
    if options.get("header"):
        name, _, value = options["header"].partition(":")
        headers[name.strip()] = value.strip()
    return headers


def send(options: Mapping[str, str], document: dict, sleep=time.sleep) -> str:  # noqa: ANN001
    import http.client
    import urllib.error
    import urllib.request

    url, timeout = options["url"], timeout_of(options)
    host = _where(url)
    request = urllib.request.Request(url, data=encode(document), method="POST", headers=_headers(options))
    opener = _no_redirect_opener()
    for attempt in range(1, TRIES + 1):
        tries = f" ({attempt} tries)" if attempt > 1 else ""
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(1 << 16)
                return f"HTTP {response.status} from {host}{tries}"
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500 and attempt < TRIES:
                sleep(BACKOFF[attempt - 1])
                continue
            hint = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
            raise SinkFailed(f"HTTP {exc.code} from {host}{hint}{tries}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, TimeoutError):
                raise SinkFailed(f"no answer from {host} within {timeout:g} s{tries}") from None
            if attempt < TRIES:
                sleep(BACKOFF[attempt - 1])
                continue
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else type(reason).__name__
            raise SinkFailed(f"cannot reach {host}: {why} ({TRIES} tries)") from None
    raise AssertionError("unreachable")


WEBHOOK = SinkType(
    "webhook", "POST the alert as JSON to a URL", send,
    options={"url": "http:// or https:// URL to POST to",
             "token": "sent as 'Authorization: Bearer TOKEN' (secret)",
             "header": "one more header, 'Name: value' (secret)",
             "timeout": "seconds to wait for an answer (default 10)"},
    required=frozenset({"url"}), secret=frozenset({"token", "header"}), check=_check,
)
