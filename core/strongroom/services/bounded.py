"""Work waited for a bounded time, in a daemon thread, and given up cleanly when late.

:func:`run_bounded` runs ``work()`` in a daemon thread of its own and waits ``limit`` seconds
at most (None or infinite: until done).  What it promises:

- **The caller's wait is the bound**, whatever ``work`` does (a store retrying a server out
  of reach, a connection that never answers): the thread is a daemon, so it never holds up
  the exit of the process either.
- **Work left behind is abandoned, not forgotten**: at the bound its abandon event is set
  (:func:`strongroom.storage.retry.abandoning`), in the thread's context and in every
  context copied from it (the :class:`~strongroom.services.replication.DaemonPool` threads
  run their calls in their submitter's context).  From then on its storage calls are not
  retried and log nothing: it ends at its next failure, and never writes its retry warnings
  into a command the process runs later.  :func:`given_up` lets its own loops stop early.
- Its result, or its exception (re-raised in the caller's thread), when done in time;
  :class:`Late` when not.
"""

from __future__ import annotations

import contextvars
import math
import threading
from typing import Any, Callable, TypeVar

from ..storage.retry import abandoned, abandoning

__all__ = ["Late", "given_up", "run_bounded"]

T = TypeVar("T")


class Late(Exception):
    """``work`` was not done within the bound; it goes on, abandoned."""


def given_up() -> bool:
    """Whether the bounded work running in this context was abandoned by its caller."""
    return abandoned()


def run_bounded(work: Callable[[], T], limit: float | None, *, name: str) -> T:
    """``work()`` in a daemon thread named ``name``, waited ``limit`` seconds at most (see the
    module docstring); :class:`Late` when it is not done by then."""
    event = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        with abandoning(event):
            try:
                box["result"] = work()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name=name, daemon=True)
    thread.start()
    thread.join(None if limit is None or math.isinf(limit) else limit)
    if thread.is_alive():
        event.set()
        raise Late(name)
    if "error" in box:
        raise box["error"]
    return box["result"]
