"""The notification document, version 1, and the bytes a sink sends.

    {"version": 1,
     "vault": {"id": "...", "name": "...", "url": "sftp://bob@nas/vaults/main"},
     "job": {...strongroom.Job.to_dict()...},
     "host": "backup01",
     "sent": "2025-01-31T02:00:07+00:00"}

The vault's URL never carries a password (:func:`strongroom_notify.urls.strip_password`).
A later version may add keys; a key's meaning never changes within a version.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from typing import Any

import attrs

from strongroom_notify.urls import strip_password

__all__ = ["VERSION", "VaultRef", "encode", "notification"]

VERSION = 1


@attrs.frozen
class VaultRef:
    """What a notification says about a vault."""

    vault_id: str
    name: str
    url: str

    @classmethod
    def of(cls, vault: Any) -> VaultRef:
        """From the vault a hook receives: its ``vault_id``, ``settings.name`` and ``url``."""
        return cls(str(vault.vault_id), str(vault.settings.name), strip_password(str(vault.url)))


def notification(vault: VaultRef, job: dict[str, Any], *, host: str | None = None,
                 sent: dt.datetime | None = None) -> dict[str, Any]:
    """The document for ``job`` (a ``Job.to_dict()``) on ``vault``."""
    moment = sent or dt.datetime.now(dt.timezone.utc)
    return {
        "version": VERSION,
        "vault": {"id": vault.vault_id, "name": vault.name, "url": vault.url},
        "job": job,
        "host": host if host is not None else socket.gethostname(),
        "sent": moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def encode(document: dict[str, Any]) -> bytes:
    """UTF-8 JSON, as every sink sends it."""
    return json.dumps(document, default=str, ensure_ascii=False).encode()
