"""Where this machine keeps strongroom's own files: keys, configuration, local state.

``$STRONGROOM_HOME`` if set, else ``~/.config/strongroom``.  It holds ``keys/`` (the
local key slots' keys, mode 0600), ``config.toml`` (storage options, see
:mod:`strongroom.config`), ``jobs/<vault-id>/`` (job records of vaults that could not be
written, see :mod:`strongroom.services.jobs`), ``verify/<vault-id>.json`` (where
``verify --read-data-subset N%`` goes on next) and ``state/<vault-id>.json`` (the newest
vault head this machine has seen, see :mod:`strongroom.services.head`); plugins may keep
their own files beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV", "strongroom_home"]

HOME_ENV = "STRONGROOM_HOME"


def strongroom_home() -> Path:
    """The local configuration and key store folder."""
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path.home() / ".config" / "strongroom"
