"""When this client last opened a vault with each key slot ("last used here").

Recorded outside the vault, in ``$STRONGROOM_HOME/state/<vault-id>.slots.json``
(``{"<slot id>": "<iso time>", ...}``, mode 0600), because writing to the vault on every
open would be wrong for read-only and immutable vaults, and would tell whoever reads the
storage who opens it when.  It is this machine's memory only: another client's use of a
slot is not seen, and ``vault key list`` says "last used here".

Recording never fails an open: a file that cannot be read is started again, one that
cannot be written is left as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from ..models import iso, utcnow

__all__ = ["last_uses", "record_use"]

#: Slots remembered per vault at most (the oldest uses are forgotten first).
MAX_SLOTS = 256


def _path(home: Path, vault_id: str) -> Path:
    return Path(home) / "state" / f"{vault_id}.slots.json"


def last_uses(home: Path, vault_id: str) -> dict[str, str]:
    """``{slot id: time}`` of this client's last open of vault ``vault_id`` with each slot."""
    try:
        doc = json.loads(_path(home, vault_id).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)}


def record_use(home: Path, vault_id: str, slot_id: str, when: dt.datetime | None = None) -> None:
    """Remember that this client opened vault ``vault_id`` with slot ``slot_id`` now."""
    uses = last_uses(home, vault_id)
    uses[slot_id] = iso(when or utcnow())
    if len(uses) > MAX_SLOTS:
        uses = dict(sorted(uses.items(), key=lambda kv: kv[1])[-MAX_SLOTS:])
    path = _path(home, vault_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(uses, out, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass
