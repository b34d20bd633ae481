"""Run the ``strongroom`` command with every put to the vault's storage slowed down.

``python slow_puts.py SECONDS ARG...`` runs ``strongroom ARG...`` (the same entry point
as the installed command) with each store ``put`` preceded by a sleep of SECONDS, so that
a test that SIGKILLs it can land between two writes of its choice.  Nothing else changes:
the writes, their order and their content are the command's own.
"""

from __future__ import annotations

import sys

from strongroom import vault as vault_module
from strongroom.cli import main
from strongroom.storage import FaultPlan, FaultyStore, RetryingStore, open_store


def _slowed(seconds: float):
    plan = FaultPlan(seed=0, delay=1.0, delay_seconds=seconds, operations={"put"})

    def slowed_open_store(url, storage_options=None, *, create=False, retry=True, **kwargs):
        slow = FaultyStore(open_store(url, storage_options, create=create, retry=False, **kwargs), plan)
        return RetryingStore(slow) if retry else slow

    return slowed_open_store


if __name__ == "__main__":
    vault_module.open_store = _slowed(float(sys.argv[1]))
    main(sys.argv[2:])
