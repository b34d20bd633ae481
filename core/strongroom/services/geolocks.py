"""Object locks on a geo secondary: copies locked as the vault's own writes are, and kept locked.

While the vault's immutability is on (:class:`~strongroom.policy.security.Immutability`)
and the *secondary's* storage has S3 object lock, the rules of
:mod:`strongroom.services.objectlocks` hold there too:

- :func:`secondary_lock_policy`: how each copy is locked (by the replication's
  :class:`~strongroom.storage.locking.LockingStore`): the vault's mode (GOVERNANCE while
  immutability is ``enabled``, COMPLIANCE once ``locked``) for ``lock_days`` from the
  copy; transient objects never.  None when immutability is off or the secondary's storage
  has no object lock.
- :func:`extend_secondary_locks`: after a complete replication, when due (no extension
  yet in this mode and span, or the last one older than a third of the span), the
  retain-until date of every object the vault still needs
  (:meth:`ObjectLockService.needed <strongroom.services.objectlocks.ObjectLockService.needed>`:
  not garbage, not transient) moves to now + the span on the secondary, as the vault's
  extension does on its own storage; objects the secondary lacks are skipped.  The last
  extension (mode, span, time) is kept in ``state_file`` on this machine.

Dates are the real time (``locks.lock_clock``), compared with the storage's own.  A
deletion the secondary's lock refuses is left for a later run by the replication.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ObjectNotFound
from ..storage.base import Store
from ..storage.capabilities import capabilities_of, object_lock_of
from ..storage.locking import LockPolicy, lock_object

__all__ = ["extend_secondary_locks", "secondary_lock_policy"]


def secondary_lock_policy(locks: Any, store: Store) -> LockPolicy | None:
    """How copies to ``store`` are locked under ``locks`` (the vault's
    :class:`~strongroom.services.objectlocks.ObjectLockService`); see the module docstring."""
    imm = locks.immutability()
    if not imm.on or imm.lock_mode is None:
        return None
    if not capabilities_of(store).object_lock or not object_lock_of(store).enabled:
        return None
    return LockPolicy(imm.lock_mode, imm.lock_days * locks.day)


def extend_secondary_locks(locks: Any, store: Store, state_file: Path | None) -> int | None:
    """Extend the locks of the objects the vault still needs on ``store`` when due; how many
    were extended, None when none was due (see the module docstring)."""
    policy = secondary_lock_policy(locks, store)
    if policy is None:
        return None
    now = locks.lock_clock()
    last = _read(state_file)
    if last.get("mode") == policy.mode and last.get("span") == policy.span.total_seconds():
        try:
            if now - dt.datetime.fromisoformat(last["at"]) < policy.span / 3:
                return None
        except (KeyError, TypeError, ValueError):
            pass  # unreadable: extend
    names, _, _ = locks.needed()
    until = policy.until(now)

    def extend(name: str) -> int:
        try:
            lock_object(store, name, until, policy.mode)
        except ObjectNotFound:
            return 0  # not replicated yet: locked when it is copied
        return 1

    from .replication import DaemonPool

    with DaemonPool(max(1, min(capabilities_of(store).concurrency, len(names))), "replicate-lock") as pool:
        extended = sum(pool.map(extend, names))
    _write(state_file, {"at": now.isoformat(), "mode": policy.mode, "span": policy.span.total_seconds()})
    return extended


def _read(state_file: Path | None) -> dict:
    if state_file is None:
        return {}
    try:
        found = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(state_file: Path | None, state: dict) -> None:
    if state_file is None:
        return
    try:
        state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_file)
    except OSError:
        pass  # the next run extends again
