"""Where this machine keeps strongroom's own files: the key store and the config file.

``$STRONGROOM_HOME`` if set, else ``~/.config/strongroom``.  It holds ``keys/`` (the
local key slots' keys, mode 0600) and ``config.toml`` (storage options, see
:mod:`strongroom.config`); plugins may keep their own files beside them.
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
