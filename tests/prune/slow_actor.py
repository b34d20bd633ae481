"""Run one prune or one backup in this process on a slowed-down store (used as a child process).

    python slow_actor.py URL DELAY prune GRACE
    python slow_actor.py URL DELAY backup ITEM

Every storage operation first sleeps DELAY seconds, so the operation takes long enough
for a test to start another process beside it, or to kill it, at a chosen step.  Prints
the prune report or the new point's id as JSON; exits with the error's exit code.
"""

from __future__ import annotations

import json
import sys
import time

import strongroom.vault as vault_module
from strongroom.errors import StrongroomError
from strongroom.vault import Vault


class SlowStore:
    """Delays every operation of the store it wraps."""

    def __init__(self, inner, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _slow(self, name):
        operation = getattr(self.inner, name)

        def call(*args, **kwargs):
            time.sleep(self.delay)
            return operation(*args, **kwargs)

        return call

    def put(self, *args, **kwargs):
        return self._slow("put")(*args, **kwargs)

    def get(self, *args, **kwargs):
        return self._slow("get")(*args, **kwargs)

    def get_range(self, *args, **kwargs):
        return self._slow("get_range")(*args, **kwargs)

    def size(self, *args, **kwargs):
        return self._slow("size")(*args, **kwargs)

    def exists(self, *args, **kwargs):
        return self._slow("exists")(*args, **kwargs)

    def list(self, *args, **kwargs):
        return self._slow("list")(*args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._slow("delete")(*args, **kwargs)


def main(url: str, delay: str, action: str, arg: str) -> int:
    opener = vault_module.open_store
    vault_module.open_store = lambda *a, **k: SlowStore(opener(*a, **k), float(delay))
    try:
        vault = Vault.open(url)
        if action == "prune":
            print(json.dumps(vault.prune(grace=float(arg)).to_dict()))
        else:
            print(json.dumps({"point": vault.backup(arg).point_id}))
    except StrongroomError as exc:
        print(f"strongroom: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
