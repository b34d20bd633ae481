"""The two sinks, a webhook and a command: each sends one notification or says why not.

``sink.send(body, job)`` returns a short success detail or raises :class:`SinkFailed`
with a one-line reason that holds no secret: a webhook is named by ``host[:port]`` only
(never its path, query, user or password, nor a header value), a command by its program
(``argv[0]``) only.

- :class:`WebhookSink` POSTs the JSON body (``Content-Type: application/json``) with the
  stdlib's ``urllib.request``.  It tries 3 times, waiting 0.25 s then 0.5 s, when the
  connection fails or the server answers 5xx; a timeout or any other answer is final.
  Redirects are not followed (a POST turned into a GET would look delivered).  A user
  and password in the URL are sent as HTTP basic authentication.
- :class:`CommandSink` runs ``argv`` (no shell) with the body on stdin and the job in
  ``STRONGROOM_JOB_ID``, ``_TYPE``, ``_STATE``, ``_ITEM`` and ``_ERROR`` (empty when the
  job has none), added to the environment.  Its output is captured, never shown; only
  the last line of its stderr is quoted when it fails.  A command still running at the
  timeout is killed with its process group.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping

import attrs

from strongroom_notify import __version__
from strongroom_notify.config import CommandConfig, HeaderError, WebhookConfig
from strongroom_notify.urls import credentials, where, without_credentials

__all__ = ["CommandSink", "Delivery", "SinkFailed", "WebhookSink"]

TRIES = 3
BACKOFF = (0.25, 0.5)  # seconds before the 2nd and the 3rd try


class SinkFailed(Exception):
    """A sink could not deliver; the message is one line and safe to print."""


@attrs.frozen
class Delivery:
    """What happened to one notification in one sink."""

    sink: str
    ok: bool
    detail: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        return None  # urllib then raises HTTPError with the 3xx code


@attrs.define
class WebhookSink:
    config: WebhookConfig
    environ: Mapping[str, str] = attrs.field(factory=lambda: os.environ, repr=False)
    sleep: Callable[[float], None] = time.sleep
    name: str = "webhook"

    def send(self, body: bytes, job: dict[str, Any]) -> str:
        host = where(self.config.url)
        request = urllib.request.Request(
            without_credentials(self.config.url), data=body, method="POST", headers=self._headers())
        opener = urllib.request.build_opener(_NoRedirect)
        for attempt in range(1, TRIES + 1):
            tries = f" ({attempt} tries)" if attempt > 1 else ""
            try:
                with opener.open(request, timeout=self.config.timeout) as response:
                    response.read(1 << 16)
                    return f"HTTP {response.status} from {host}" + tries
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code >= 500 and attempt < TRIES:
                    self.sleep(BACKOFF[attempt - 1])
                    continue
                hint = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
                raise SinkFailed(f"HTTP {exc.code} from {host}{hint}{tries}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, TimeoutError):
                    raise SinkFailed(f"no answer from {host} within {self.config.timeout:g} s{tries}") from None
                if attempt < TRIES:
                    self.sleep(BACKOFF[attempt - 1])
                    continue
                raise SinkFailed(f"cannot reach {host}: {_why(reason)} ({TRIES} tries)") from None
        raise AssertionError("unreachable")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": f"strongroom-notify/{__version__}"}
        userinfo = credentials(self.config.url)
        if userinfo is not None:
            token = base64.b64encode(f"{userinfo[0]}:{userinfo[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        for name, value in self.config.headers:
            try:
                headers[name] = value.resolve(self.environ)
            except HeaderError as exc:
                raise SinkFailed(f"header {name}: {exc}") from None
        return headers


def _why(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, str):
        return reason
    text = str(reason).splitlines()[0] if str(reason) else ""
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__


@attrs.define
class CommandSink:
    config: CommandConfig
    environ: Mapping[str, str] = attrs.field(factory=lambda: os.environ, repr=False)
    name: str = "command"

    def send(self, body: bytes, job: dict[str, Any]) -> str:
        program = self.config.argv[0]
        try:
            proc = subprocess.Popen(
                list(self.config.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**self.environ, **job_environment(job)}, start_new_session=True,
            )
        except FileNotFoundError:
            raise SinkFailed(f"{program} not found") from None
        except PermissionError:
            raise SinkFailed(f"{program} is not executable") from None
        except OSError as exc:
            raise SinkFailed(f"cannot run {program}: {exc.strerror or type(exc).__name__}") from None
        try:
            _, err = proc.communicate(body, timeout=self.config.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise SinkFailed(f"{program} did not finish within {self.config.timeout:g} s") from None
        if proc.returncode < 0:
            raise SinkFailed(f"{program} was killed by signal {-proc.returncode}")
        if proc.returncode > 0:
            last = next((line for line in reversed(err.decode(errors="replace").splitlines()) if line.strip()), "")
            said = f": {last.strip()[:200]}" if last else ""
            raise SinkFailed(f"{program} exited with code {proc.returncode}{said}")
        return f"{program} exited with code 0"


def job_environment(job: dict[str, Any]) -> dict[str, str]:
    """The ``STRONGROOM_JOB_*`` variables a command sink gets."""
    error = job.get("error") or ""
    return {
        "STRONGROOM_JOB_ID": str(job.get("job_id") or ""),
        "STRONGROOM_JOB_TYPE": str(job.get("type") or ""),
        "STRONGROOM_JOB_STATE": str(job.get("state") or ""),
        "STRONGROOM_JOB_ITEM": str(job.get("item") or ""),
        "STRONGROOM_JOB_ERROR": error.splitlines()[0] if error else "",
    }


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass  # a descendant that left the group still holds the pipes; do not wait for it
