"""The vault's storage redundancy: ``local``, ``zonal`` or ``geo`` (with a secondary).

A record of the vault settings document (``VaultSettings.redundancy``; an empty document
is ``local``).  It records what the user chose and strongroom checked at the time:

- ``local`` - the store keeps its data in one place (a folder, one disk, one server);
- ``zonal`` - the store itself replicates across failure domains (racks, zones) of one
  site: refused on a local folder or SFTP, accepted on S3-compatible storage (SeaweedFS
  with ``-defaultReplication``, Ceph or MinIO erasure coding, AWS S3 classes), where what
  the storage reports is not uniformly readable, so it is recorded, not verified;
- ``geo`` - a copy in a second location: ``secondary`` (a URL, never equal to the
  primary) is required; the secondary's storage options live in the user's config.

The record is changed only while no item is protected (:meth:`Vault.set_redundancy`).
:func:`check_redundancy` is the rule for a given primary URL; it reads no vault.
"""

from __future__ import annotations

import os

import attrs

from ..errors import IntegrityError, StrongroomError

__all__ = ["KINDS", "ZONAL_SCHEMES", "Redundancy", "RedundancyError", "RedundancyLocked", "check_redundancy"]

KINDS = ("local", "zonal", "geo")
#: URL schemes whose storage can replicate across failure domains by itself.
ZONAL_SCHEMES = ("s3", "s3a")


class RedundancyError(StrongroomError):
    """{message}"""

    exit_code = 15


class RedundancyLocked(RedundancyError):
    """Redundancy can be changed only while no item is protected: {count} item(s) are ('strongroom items list')."""

    exit_code = 16


@attrs.frozen
class Redundancy:
    """How the vault's storage keeps copies: ``kind`` and, for ``geo``, the ``secondary`` URL."""

    kind: str = "local"
    secondary: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"redundancy must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "geo":
            if not isinstance(self.secondary, str) or not self.secondary.strip():
                raise ValueError("geo redundancy needs a secondary URL")
        elif self.secondary is not None:
            raise ValueError(f"{self.kind} redundancy takes no secondary URL")

    def to_dict(self) -> dict:
        doc: dict = {"kind": self.kind}
        if self.secondary is not None:
            doc["secondary"] = self.secondary
        return doc

    @classmethod
    def from_dict(cls, doc: object) -> Redundancy:
        """The record stored as ``doc`` (``{}``: local); IntegrityError when malformed."""
        if not isinstance(doc, dict):
            raise IntegrityError(what="settings", reason="field 'redundancy' is not an object")
        if not doc:
            return cls()
        kind, secondary = doc.get("kind"), doc.get("secondary")
        if not isinstance(kind, str) or not (secondary is None or isinstance(secondary, str)):
            raise IntegrityError(what="settings", reason="field 'redundancy' is malformed")
        try:
            return cls(kind, secondary)
        except ValueError as exc:
            raise IntegrityError(what="settings", reason=f"field 'redundancy': {exc}") from None

    def describe(self) -> str:
        """One line for ``vault info``."""
        return f"geo (secondary {self.secondary})" if self.kind == "geo" else self.kind


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def _normal(url: str) -> str:
    """``url`` without a trailing slash; a local folder (a path or ``file://``) as an absolute path."""
    if _scheme(url) == "file":
        return os.path.abspath(os.path.expanduser(url.split("://", 1)[-1]))
    return url.rstrip("/")


def _same_url(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def check_redundancy(kind: str, secondary: str | None, primary: str) -> Redundancy:
    """The record for ``kind``/``secondary`` on a vault at ``primary``; RedundancyError
    (one line) when the kind is unknown, zonal on a store that cannot replicate, or a geo
    secondary missing or equal to the primary."""
    if kind not in KINDS:
        raise RedundancyError(f"Redundancy must be one of {', '.join(KINDS)}, not '{kind}'.")
    if kind == "zonal" and _scheme(primary) not in ZONAL_SCHEMES:
        raise RedundancyError(
            f"Zonal redundancy is the storage's own replication across failure domains, and a "
            f"{_scheme(primary)} store has none: use an S3-compatible store (SeaweedFS with replication, "
            "Ceph, MinIO erasure coding, AWS S3)."
        )
    if kind != "geo" and secondary is not None:
        raise RedundancyError(f"--secondary is only for geo redundancy, not {kind}.")
    if kind == "geo":
        if not secondary:
            raise RedundancyError("Geo redundancy needs --secondary URL: the store that holds the second copy.")
        if _same_url(secondary, primary):
            raise RedundancyError(
                f"The secondary '{secondary}' is the vault's own URL: give a store in another location.")
    return Redundancy(kind, secondary)
