"""Frozen records of the vault: configuration, settings, items, recovery points, jobs.

Every record converts to and from the JSON document stored (encrypted) in the vault
with ``to_dict``/``from_dict``; change one with ``attrs.evolve``.  Fields added after
format 1 was first written have defaults, so older documents still read.  ``from_dict``
raises IntegrityError for a malformed document (see "reading stored documents" below),
never another exception.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import attrs

from .errors import IntegrityError

#: The newest vault format: what new vaults get and ``vault upgrade`` moves a vault to.
#: This version reads and writes every format from 1 to this one (docs/formats.md):
#: 1 writes every blob with a clear header; 2 writes blobs without one, padded.
FORMAT_VERSION = 3
# Features this version of strongroom can read and write.  A vault listing a feature
# not in this set is refused (see strongroom.json in docs/formats.md).
#: ``zero-runs``: the chunker cuts runs of zero bytes out of chunks (its ``zero_run``
#: setting), which a strongroom without it cannot parse; every new vault has it.
ZERO_RUNS_FEATURE = "zero-runs"
KNOWN_FEATURES: frozenset[str] = frozenset({ZERO_RUNS_FEATURE})

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


# --- reading stored documents --------------------------------------------------------
#
# A document read from the vault may be damaged, written by a buggy version or by a
# newer one: every ``from_dict`` below checks the JSON types of the fields it knows and
# raises IntegrityError (naming the document and the field) for a wrong one, never
# another exception.  Unknown fields are left out (:func:`known_fields`).

#: Ids in stored documents (vault, item, point, job ids): safe as object-name components.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A vault id: 16 random bytes as lowercase hex (it names the local key file, so it is
#: checked wherever it is read: strongroom.json, key slots, recovery kits).
VAULT_ID = re.compile(r"[0-9a-f]{32}")
#: A blob id: 32 bytes as lowercase hex.
_BLOB_ID = re.compile(r"[0-9a-f]{64}")
#: Integers in stored documents fit 64 bits (signed, or unsigned for inode numbers).
_INT_RANGE = (-(2**63), 2**64 - 1)


def damaged(what: str, reason: str) -> IntegrityError:
    """The error for a malformed stored document ``what``."""
    return IntegrityError(what=what, reason=reason)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _stored_value(value: object, annotation: str, field: str, what: str) -> object:
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise damaged(what, f"field '{field}' is null")
    for kind in kinds:
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                raise damaged(what, f"field '{field}' is out of range")
            return value
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) > 2**63 or not math.isfinite(value):  # the first test: ints beyond floats
                raise damaged(what, f"field '{field}' is out of range")
            return float(value)
        if kind.startswith("dict") and isinstance(value, dict):
            return value
        if kind == "tuple[str, ...]" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise damaged(what, f"field '{field}' must be a list of text")
            return tuple(value)
        if kind not in ("str", "bool", "int", "float", "None", "tuple[str, ...]") and not kind.startswith("dict"):
            raise TypeError(f"no stored form known for field type {annotation!r}")  # a programming error
    raise damaged(what, f"field '{field}' must be {annotation.replace('tuple[str, ...]', 'list[str]')}, not {_json_type(value)}")


def stored_fields(cls: type, doc: object, what: str, *, skip: frozenset[str] = frozenset()) -> dict:
    """The fields of record ``cls`` from stored document ``doc``, each checked against
    its annotation (``str``, ``int``, ``float``, ``bool``, ``dict``, ``tuple[str, ...]``
    from a list, ``... | None``); fields in ``skip`` are left to the caller.  A document
    that is not a JSON object, lacks a field without a default or has one of the wrong
    type raises IntegrityError; unknown keys are left out."""
    if not isinstance(doc, dict):
        raise damaged(what, f"not a JSON object but {_json_type(doc)}")
    out = {}
    for field in attrs.fields(cls):
        if field.name in skip or not field.init:
            continue
        if field.name not in doc:
            if field.default is attrs.NOTHING:
                raise damaged(what, f"no field '{field.name}'")
            continue
        out[field.name] = _stored_value(doc[field.name], str(field.type), field.name, what)
    return out


def stored_time(value: object, field: str, what: str, *, optional: bool = False) -> str | None:
    """``value`` if it is an ISO 8601 time with a time zone (or None when ``optional``);
    IntegrityError otherwise."""
    if value is None and optional:
        return None
    try:
        moment = parse_iso(value)  # type: ignore[arg-type]
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        moment.astimezone(dt.timezone.utc)
    except (TypeError, ValueError, OverflowError) as exc:
        raise damaged(what, f"field '{field}' is not a time ({exc})") from None
    return value  # type: ignore[return-value]


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
        """IntegrityError for a malformed document (a vault id that is not a safe name
        included: it names the local key file)."""
        fields = stored_fields(cls, doc, "strongroom.json")
        if not VAULT_ID.fullmatch(fields["vault_id"]):
            raise damaged("strongroom.json", "field 'vault_id' is not a vault id (32 lowercase hex digits)")
        if fields.get("format", FORMAT_VERSION) < 1:
            raise damaged("strongroom.json", "field 'format' is below 1")
        return cls(**fields)


_DATA_KEY_ID = re.compile(r"[0-9a-f]{8}")


@attrs.frozen
class VaultSettings:
    """Encrypted settings fixed at creation (chunker) or changed later (name, floors, prune, security).

    ``retention_floors`` (None: off) is the least retention any policy may have, as a
    :class:`~strongroom.policy.retention.RetentionFloors` document.  ``prune`` holds the
    prune settings (:class:`~strongroom.policy.prunesettings.PruneSettings` document).
    """

    name: str
    chunker: dict
    compression_level: int = 3
    retention_floors: dict | None = None
    prune: dict = attrs.field(factory=dict)
    #: The vault format, authenticated (strongroom.json's is clear): writers use the
    #: higher of the two, so editing strongroom.json cannot make them write format 1.
    format: int = 1
    #: Soft delete, immutability and the guard link
    #: (:class:`~strongroom.policy.security.SecuritySettings` document; empty: the defaults).
    security: dict = attrs.field(factory=dict)
    #: The guard tickets that authorized this document's weakening of ``security``
    #: (:mod:`strongroom.services.settings` checks them when it reads the history).
    authorized_by: tuple[str, ...] = ()
    #: How the storage keeps copies (:class:`~strongroom.policy.redundancy.Redundancy`
    #: document; empty: local).
    redundancy: dict = attrs.field(factory=dict)
    #: The data keys added by ``vault key rotate`` (format 3), as 8 hex digits each, oldest
    #: first: the last one is the current data key (none: the master key's own).  Each is
    #: the object ``datakeys/<id>`` (:mod:`strongroom.repository.datakeys`).
    data_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "VaultSettings":
        """IntegrityError for a malformed document (the chunker, prune settings and floors
        are checked by their own records: :func:`strongroom.services.settings.parse_settings`)."""
        if isinstance(doc, dict) and doc.get("prune", 0) is None:
            doc = {**doc, "prune": {}}  # written so by early versions
        fields = stored_fields(cls, doc, "settings")
        if not -(2**17) <= fields.get("compression_level", 3) <= 22:
            raise damaged("settings", "field 'compression_level' is not a zstd level")
        if not 1 <= fields.get("format", 1) <= 2**16:
            raise damaged("settings", "field 'format' is not a format")
        keys = fields.get("data_keys", ())
        if len(keys) > 4096 or len(set(keys)) != len(keys) or not all(_DATA_KEY_ID.fullmatch(k) for k in keys):
            raise damaged("settings", "field 'data_keys' is not a list of distinct data key ids")
        return cls(**fields)


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
    backup; ``user_tags`` the tags given to ``backup --tag``, ``host`` and ``paths`` where
    and from what the point was made.  Later changes (retention re-evaluated, state) live
    in point status documents
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
    #: the operator's tags (``backup --tag``); ``tags`` are retention's.  Headers written
    #: before these three fields read as none, "" and none.
    user_tags: tuple[str, ...] = ()
    #: the host that made the point, and the source paths it read (for ``points --host``
    #: and ``--path``; a workload without paths records none)
    host: str = ""
    paths: tuple[str, ...] = ()

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
        doc["user_tags"] = list(self.user_tags)
        doc["paths"] = list(self.paths)
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "RecoveryPoint":
        """IntegrityError for a malformed header: a field of the wrong type, ids that are
        not safe names, a root that is not a blob id, times that are not ISO 8601."""
        what = "point header"
        fields = stored_fields(cls, doc, what)
        for name in ("point_id", "item_id", "parent"):
            if fields.get(name) is not None and not _SAFE_ID.fullmatch(fields[name]):
                raise damaged(what, f"field '{name}' is not an id")
        if not _BLOB_ID.fullmatch(fields["root"]):
            raise damaged(what, "field 'root' is not a blob id")
        for name, value in fields.get("stats", {}).items():  # counters: shown, summed, compared
            _stored_value(value, "float", f"stats/{name}", what)
        stored_time(fields["created"], "created", what)
        for name in ("expires_at", "retain_until"):
            stored_time(fields.get(name), name, what, optional=True)
        return cls(**fields)


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
#: The kinds of job strongroom records (``strongroom jobs --type``).
JOB_TYPES = ("backup", "restore", "verify", "repair", "prune", "drill", "stop", "resume", "undelete", "update")


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
        """IntegrityError for a malformed job record (a field of the wrong type, an
        unknown state, times that are not ISO 8601)."""
        what = "job record"
        fields = stored_fields(cls, doc, what)
        if fields["state"] not in JOB_STATES:
            raise damaged(what, f"unknown state {fields['state']!r}")
        stored_time(fields["started"], "started", what)
        stored_time(fields.get("ended"), "ended", what, optional=True)
        return cls(**fields)


# --- the vault head ------------------------------------------------------------------
#
# What must not go backwards, as of one commit (strongroom.services.head; the document
# is described in docs/formats.md, "Vault heads").

_TIME_ID = "[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}"
#: The name of a vault head: ``heads/<time-id>``.
HEAD_NAME = re.compile(rf"heads/{_TIME_ID}")
#: The objects a vault head keeps track of: point headers, key slots, and versions of
#: the settings, of items, of policies and of point statuses.
HEAD_TRACKED = re.compile(
    rf"points/[0-9a-f]{{16}}/[0-9a-f]{{16}}|keys/[0-9a-f]{{16}}|settings/{_TIME_ID}"
    rf"|items/[0-9a-f]{{16}}/{_TIME_ID}|policies/[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}/{_TIME_ID}"
    rf"|point-status/[0-9a-f]{{16}}/[0-9a-f]{{16}}/{_TIME_ID}"
)
#: An index file's name: ``index/<time-id>``.
INDEX_NAME = re.compile(rf"index/{_TIME_ID}")
_STAMP = re.compile(r"[0-9]{8}T[0-9]{12}Z")


@attrs.frozen
class IndexGeneration:
    """The index files as the last operation that removed some left them.

    ``generation`` counts those operations (prune, rebuild-index, repair); ``floor`` is
    the time (a time id's stamp, ``20261121T113008123456Z``) at which that operation
    listed ``files``, the index files it left; ``retired`` the files it or its
    predecessors removed whose names are less than a day older than ``floor`` (older
    ones are told by their names alone: :mod:`strongroom.services.head`).
    """

    generation: int
    floor: str
    files: frozenset[str] = frozenset()
    retired: frozenset[str] = frozenset()

    def to_dict(self) -> dict:
        return {"generation": self.generation, "floor": self.floor,
                "files": sorted(n[len("index/"):] for n in self.files),
                "retired": sorted(n[len("index/"):] for n in self.retired)}

    @classmethod
    def from_dict(cls, doc: object, what: str) -> "IndexGeneration":
        if not isinstance(doc, dict):
            raise damaged(what, "field 'index' is not an object")
        generation, floor = doc.get("generation"), doc.get("floor")
        if isinstance(generation, bool) or not isinstance(generation, int) or not 1 <= generation < 2**63:
            raise damaged(what, "field 'index/generation' is not a count")
        if not isinstance(floor, str) or not _STAMP.fullmatch(floor):
            raise damaged(what, "field 'index/floor' is not a time")
        try:
            time_of(floor)
        except ValueError:
            raise damaged(what, "field 'index/floor' is not a time") from None
        files = [_named("index/", n, INDEX_NAME, "index/files", what) for n in _text_list(doc.get("files", []), "index/files", what)]
        retired = [_named("index/", n, INDEX_NAME, "index/retired", what)
                   for n in _text_list(doc.get("retired", []), "index/retired", what)]
        return cls(generation, floor, frozenset(files), frozenset(retired))


@attrs.frozen
class VaultHead:
    """One vault head: ``heads/<time-id>``, written after a commit (see the section's note).

    ``serial`` is one more than the highest serial of the heads it merges, named in
    ``previous``; ``objects`` the tracked objects (:data:`HEAD_TRACKED`) that must be
    on storage; ``removed`` the tracked objects removed on purpose, with when (their
    tombstones); ``index`` the index generation (None: none recorded yet).
    """

    serial: int
    written: str
    operation: str
    previous: tuple[str, ...] = ()
    objects: frozenset[str] = frozenset()
    removed: dict[str, str] = attrs.field(factory=dict)
    index: IndexGeneration | None = None

    def to_dict(self) -> dict:
        removed: dict[str, dict[str, str]] = {}
        for name, when in sorted(self.removed.items()):
            folder, _, base = name.rpartition("/")
            removed.setdefault(folder + "/", {})[base] = when
        return {"format": 1, "serial": self.serial, "written": self.written, "operation": self.operation,
                "previous": list(self.previous), "objects": _grouped(self.objects), "removed": removed,
                "index": self.index.to_dict() if self.index is not None else None}

    @classmethod
    def from_dict(cls, doc: object, what: str) -> "VaultHead":
        """IntegrityError for a malformed head (names it does not track included)."""
        if not isinstance(doc, dict):
            raise damaged(what, "not a JSON object")
        serial = doc.get("serial")
        if isinstance(serial, bool) or not isinstance(serial, int) or not 1 <= serial < 2**63:
            raise damaged(what, "field 'serial' is not a count")
        written = stored_time(doc.get("written"), "written", what)
        operation = doc.get("operation")
        if not isinstance(operation, str) or len(operation) > 64:
            raise damaged(what, "field 'operation' is not a short text")
        previous = _text_list(doc.get("previous", []), "previous", what)
        if not all(HEAD_NAME.fullmatch(n) for n in previous):
            raise damaged(what, "field 'previous' names something that is not a vault head")
        objects = _ungrouped(doc.get("objects", {}), "objects", what)
        removed: dict[str, str] = {}
        folders = doc.get("removed", {})
        if not isinstance(folders, dict):
            raise damaged(what, "field 'removed' is not an object")
        for folder, entries in folders.items():
            if not isinstance(entries, dict):
                raise damaged(what, "field 'removed' holds something that is not an object")
            for base, when in entries.items():
                name = _named(folder, base, HEAD_TRACKED, "removed", what)
                removed[name] = stored_time(when, "removed", what)  # type: ignore[assignment]
        index = doc.get("index")
        return cls(serial, written, operation, tuple(previous), frozenset(objects), removed,  # type: ignore[arg-type]
                   IndexGeneration.from_dict(index, what) if index is not None else None)


def _grouped(names: frozenset[str]) -> dict[str, list[str]]:
    """``{"points/<item-id>/": [point ids], "keys/": [...]}``: names by folder, compactly."""
    out: dict[str, list[str]] = {}
    for name in sorted(names):
        folder, _, base = name.rpartition("/")
        out.setdefault(folder + "/", []).append(base)
    return out


def _ungrouped(doc: object, field: str, what: str) -> list[str]:
    if not isinstance(doc, dict):
        raise damaged(what, f"field '{field}' is not an object")
    return [_named(folder, base, HEAD_TRACKED, field, what)
            for folder, bases in doc.items() for base in _text_list(bases, field, what)]


def _text_list(value: object, field: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise damaged(what, f"field '{field}' is not a list of text")
    return value


def _named(folder: object, base: str, pattern: re.Pattern[str], field: str, what: str) -> str:
    name = f"{folder}{base}"
    if not isinstance(folder, str) or not pattern.fullmatch(name):
        raise damaged(what, f"field '{field}' names an object it cannot hold ({name[:80]!r})")
    return name
