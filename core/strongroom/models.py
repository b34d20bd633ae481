"""Frozen records of the vault: configuration, settings, items, recovery points, jobs.

Every record converts to and from the JSON document stored (encrypted) in the vault
with ``to_dict``/``from_dict``; change one with ``attrs.evolve``.  Fields added after
format 1 was first written have defaults, so older documents still read.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import attrs

FORMAT_VERSION = 1
# Features this version of strongroom can read and write.  A vault listing a feature
# not in this set is refused (see strongroom.json in docs/formats.md).
KNOWN_FEATURES: frozenset[str] = frozenset()

ITEM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Lifecycle states of a protected item (``docs/policies.md``, "Item lifecycle").
PROTECTED = "protected"
STOPPED_RETAIN_FOREVER = "stopped-retain-forever"
STOPPED_RETAIN_POLICY = "stopped-retain-policy"
DELETED = "deleted"
ITEM_STATES = (PROTECTED, STOPPED_RETAIN_FOREVER, STOPPED_RETAIN_POLICY, DELETED)
#: What started a backup: a schedule (``run-due``, ``agent``) or a person (``backup``).
TRIGGERS = ("on_demand", "scheduled")
#: What a restore does about an entry the target already has (restic's ``--overwrite``):
#: replace it ``always``, only ``if-newer`` (the point's was modified later), ``never``.
OVERWRITE_MODES = ("always", "if-newer", "never")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def new_id(nbytes: int = 8) -> str:
    return os.urandom(nbytes).hex()


def time_of(name: str) -> dt.datetime:
    """The moment a time id (or a name ending in one) stands for; ValueError if none."""
    stamp = name.rsplit("/", 1)[-1][:22]
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)


def time_id(moment: dt.datetime | None = None) -> str:
    """A name that sorts by time: ``20261121T113008123456Z-<4 random bytes hex>``."""
    moment = moment or utcnow()
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + new_id(4)


def known_fields(cls: type, doc: dict) -> dict:
    """``doc`` without keys that ``cls`` does not have: documents written by a newer
    version may carry more fields, which this version ignores."""
    names = {f.name for f in attrs.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


def _check_item_name(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not ITEM_NAME_RE.match(value):
        raise ValueError(
            f"invalid item name {value!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )


@attrs.frozen
class VaultConfig:
    """The clear ``strongroom.json`` at the root of a vault: nothing secret."""

    vault_id: str
    format: int = FORMAT_VERSION
    features: tuple[str, ...] = ()
    created: str = ""

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "vault_id": self.vault_id,
            "features": list(self.features),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> "VaultConfig":
        return cls(
            vault_id=str(doc["vault_id"]),
            format=int(doc["format"]),
            features=tuple(doc.get("features", ())),
            created=str(doc.get("created", "")),
        )


@attrs.frozen
class VaultSettings:
    """Encrypted settings fixed at creation (chunker) or changed later (name, floors, prune).

    ``retention_floors`` (None: off) is the least retention any policy may have, as a
    :class:`~strongroom.policy.retention.RetentionFloors` document.  ``prune`` holds the
    prune settings (:class:`~strongroom.policy.prunesettings.PruneSettings` document).
    """

    name: str
    chunker: dict
    compression_level: int = 3
    retention_floors: dict | None = None
    prune: dict = attrs.field(factory=dict)

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "VaultSettings":
        return cls(
            name=doc["name"], chunker=dict(doc["chunker"]),
            compression_level=int(doc.get("compression_level", 3)),
            retention_floors=doc.get("retention_floors"), prune=dict(doc.get("prune") or {}),
        )


@attrs.frozen
class ProtectedItem:
    """A workload source under protection, e.g. some folders of the ``files`` workload."""

    item_id: str
    name: str = attrs.field(validator=_check_item_name)
    workload: str
    source: dict
    state: str = attrs.field(default=PROTECTED, validator=attrs.validators.in_(ITEM_STATES))
    policy: str | None = None
    created: str = ""
    version: str = ""  # name of the document this record was read from

    def to_dict(self) -> dict:
        return {
            "item_id": self.item_id,
            "name": self.name,
            "workload": self.workload,
            "source": self.source,
            "state": self.state,
            "policy": self.policy,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, doc: dict, version: str = "") -> "ProtectedItem":
        return cls(
            item_id=doc["item_id"], name=doc["name"], workload=doc["workload"],
            source=dict(doc["source"]), state=doc.get("state", "protected"),
            policy=doc.get("policy"), created=doc.get("created", ""), version=version,
        )


@attrs.frozen
class RecoveryPoint:
    """The header of one recovery point: small, written once, the commit of a backup.

    ``expires_at`` and ``tags`` are the retention computed when the point was made;
    ``retain_until`` the on-demand backup's own retention; ``trigger`` what started the
    backup.  Later changes (retention re-evaluated, state) live in point status documents
    (:mod:`strongroom.pointstatus`); :meth:`Vault.points` returns headers with the newest
    status applied.
    """

    point_id: str
    item_id: str
    item_name: str
    workload: str
    created: str
    root: str  # hex id of the root tree blob
    parent: str | None = None
    consistency: str = "crash"
    stats: dict = attrs.field(factory=dict)
    warnings: tuple[str, ...] = ()
    expires_at: str | None = None
    tags: tuple[str, ...] = ()
    state: str = "active"
    extra: dict = attrs.field(factory=dict)
    retain_until: str | None = None
    trigger: str = "on_demand"

    @property
    def short_id(self) -> str:
        return self.point_id[:8]

    @property
    def object_name(self) -> str:
        return f"points/{self.item_id}/{self.point_id}"

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["warnings"] = list(self.warnings)
        doc["tags"] = list(self.tags)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "RecoveryPoint":
        doc = dict(doc)
        doc["warnings"] = tuple(doc.get("warnings", ()))
        doc["tags"] = tuple(doc.get("tags", ()))
        return cls(**known_fields(cls, doc))


@attrs.frozen
class DamagedPoint:
    """A recovery point whose header (``points/<item-id>/<point-id>``) cannot be read.

    Listed by ``points`` with ``error`` (one line); never restored, browsed, chosen as
    an item's latest point or as a backup's parent.  Only the ids in the header's name
    are known; ``item_name`` is filled in where the item is.
    """

    point_id: str
    item_id: str
    error: str
    item_name: str = ""
    state = "damaged"

    @property
    def short_id(self) -> str:
        return self.point_id[:8]

    @property
    def object_name(self) -> str:
        return f"points/{self.item_id}/{self.point_id}"

    def to_dict(self) -> dict:
        return {"point_id": self.point_id, "item_id": self.item_id, "item_name": self.item_name,
                "state": self.state, "error": self.error}


#: The states of a job.  ``abandoned`` and ``stale`` are never written: a listing shows
#: them for an ``in_progress`` record whose process is gone (this host) or that is older
#: than any job runs and cannot be checked (another host); see ``services/jobs.py``.
JOB_STATES = ("in_progress", "completed", "completed_with_warnings", "failed", "cancelled", "abandoned", "stale")


@attrs.frozen
class Job:
    """One operation: a backup, restore or verify, with its outcome.

    ``host``, ``pid`` and ``process_start`` name the process that ran it (records
    written before they existed have None); ``local`` is true for a record kept on this
    machine because the vault could not be written.
    """

    job_id: str
    type: str
    state: str = attrs.field(validator=attrs.validators.in_(JOB_STATES))
    started: str
    item: str | None = None
    ended: str | None = None
    point: str | None = None
    bytes: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    details: dict = attrs.field(factory=dict)
    host: str | None = None
    pid: int | None = None
    process_start: str | None = None
    local: bool = False

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["warnings"] = list(self.warnings)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "Job":
        doc = dict(doc)
        doc["warnings"] = tuple(doc.get("warnings", ()))
        return cls(**known_fields(cls, doc))
