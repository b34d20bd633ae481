"""The ``command`` sink: a program run with the alert document as JSON on its stdin.

Options: ``command`` (required: the program and its arguments, split as a POSIX shell
would, but run without a shell), ``timeout`` (seconds, default 10).

The program is a child tied to strongroom (:func:`strongroom.processes.start_child`: it
never inherits strongroom's secrets), in a session of its own, with
``STRONGROOM_ALERT_ID``, ``_CATEGORY``, ``_KIND``, ``_SEVERITY`` and ``_SUMMARY`` added to
its environment.  Exit code 0 is success.  Its output is captured, never shown; when it
fails, only the last line of its stderr is quoted.  A program still running at the
timeout is killed with its process group.  Messages name the program (``argv[0]``) only.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from typing import Mapping

from ...processes import start_child
from . import SinkFailed, SinkType, encode
from .options import check_timeout, timeout_of

__all__ = ["COMMAND"]


def _argv(options: Mapping[str, str]) -> list[str]:
    return shlex.split(options["command"])


def _check(options: Mapping[str, str]) -> None:
    try:
        argv = _argv(options)
    except ValueError as exc:
        raise ValueError(f"command cannot be read ({exc})") from None
    if not argv:
        raise ValueError("command is empty")
    check_timeout(options)


def _environment(document: dict) -> dict[str, str]:
    alert = document.get("alert", {})
    names = {"ID": "alert_id", "CATEGORY": "category", "KIND": "kind", "SEVERITY": "severity", "SUMMARY": "summary"}
    return {**os.environ, **{f"STRONGROOM_ALERT_{var}": str(alert.get(key) or "") for var, key in names.items()}}


def send(options: Mapping[str, str], document: dict) -> str:
    argv, timeout = _argv(options), timeout_of(options)
    program = argv[0]
    try:
        proc = start_child(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=_environment(document),
                           start_new_session=True)
    except FileNotFoundError:
        raise SinkFailed(f"{program} not found") from None
    except PermissionError:
        raise SinkFailed(f"{program} is not executable") from None
    except OSError as exc:
        raise SinkFailed(f"cannot run {program}: {exc.strerror or type(exc).__name__}") from None
    try:
        _, err = proc.communicate(encode(document), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise SinkFailed(f"{program} did not finish within {timeout:g} s") from None
    if proc.returncode < 0:
        raise SinkFailed(f"{program} was killed by signal {-proc.returncode}")
    if proc.returncode > 0:
        last = next((line for line in reversed(err.decode(errors="replace").splitlines()) if line.strip()), "")
        said = f": {last.strip()[:200]}" if last else ""
        raise SinkFailed(f"{program} exited with code {proc.returncode}{said}")
    return f"{program} exited with code 0"


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass  # a descendant that left the group still holds the pipes; do not wait for it


COMMAND = SinkType(
    "command", "run a program with the alert as JSON on its stdin", send,
    options={"command": "the program and its arguments (no shell)",
             "timeout": "seconds it may run (default 10)"},
    required=frozenset({"command"}), check=_check,
)
