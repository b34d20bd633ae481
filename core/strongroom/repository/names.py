"""Which objects on storage are the vault's: every name listed from storage is classified here.

Whoever can write to the storage can put anything there: a sync tool's ``desktop.ini``
in ``data/ab/``, a conflicted copy, a file of another program.  Such a *foreign object*
must never reach a parser, a ``pack_name`` or the store's name check as if it were the
vault's.  So every lister takes a listing through :func:`vault_names` (or
:meth:`Repository.list_names <strongroom.repository.repository.Repository.list_names>`),
which keeps the names of :data:`KINDS` and leaves the others out, remembering them where
the caller asks (verify lists them; a backup warns once).  A foreign object is never
read, changed or deleted.

The kinds, each a prefix and the exact shape of its names (``<id>``: 16 lowercase hex
digits; ``<time-id>``: ``YYYYMMDDTHHMMSSffffffZ-`` and 8 hex digits)::

    strongroom.json                                   vault identity (clear JSON)
    keys/<slot-id>                                    key slot (clear JSON; format 1 ids
                                                      may be any [A-Za-z0-9_-]{1,64})
    settings/<time-id>                                settings document
    datakeys/<key-id>                                 data key (8 hex digits; format 3)
    data/<xx>/<pack-id>                               pack (32 hex digits, xx its first two)
    index/<time-id>                                   index file
    items/<item-id>/<time-id>                         item version
    points/<item-id>/<point-id>                       point header
    point-status/<item-id>/<point-id>/<time-id>       point status
    policies/<policy-name>/<time-id>                  policy version
    jobs/<job-id>/<time-id>                           job record (a job id is a time id)
    runs/<item-id or prune>/<slot>/<time-id>          run claim (slot: YYYYMMDDTHHMMSSZ)
    runs/<item-id>/drill/<slot>/<time-id>             run claim of an item's scheduled drill
    prune/<time-id>/mark, prune/<time-id>/sweep       prune mark and sweep
    leases/<time-id>                                  lease
    heads/<time-id>                                   vault head
    alerts/<time-id>-<id>                             alert (never rewritten)
    alert-events/<id>/<time-id>                       an alert's delivery, acknowledgement
                                                      or resolution
    alert-sinks/<time-id>                             alert sink configuration
    journal/<day>/<time-id>                           audit journal entry (day: YYYYMMDD)
    tickets/<nonce>                                   a guard ticket's use (32 hex digits)
    quarantine/<any name above>                       an object moved aside (never read)

Bounds: each kind read whole has a largest size (:attr:`Kind.max_size`; the vault
identity and key slots are read, and bounded, by their own modules):
:data:`DOCUMENT_MAX` for documents, what the envelope lets them hold for index files,
prune marks and sweeps (:data:`LARGE_MAX`: they list blobs), :data:`PACK_MAX` for a pack
read whole.  :meth:`Repository.read_whole
<strongroom.repository.repository.Repository.read_whole>` enforces them before it reads,
so an object planted with a size of gigabytes costs no allocation of that size and is an
IntegrityError naming it.  A new kind of object is added to :data:`KINDS`; until it is,
its objects are foreign.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

__all__ = [
    "DOCUMENT_MAX",
    "KINDS",
    "LARGE_MAX",
    "PACK_MAX",
    "Kind",
    "is_vault_name",
    "kind_of",
    "vault_names",
]

_MIB = 1024 * 1024

#: The largest stored document (settings, items, policies, points, statuses, jobs,
#: claims, leases, heads): real ones have a few KiB; a prune job's record some MiB at most.
DOCUMENT_MAX = 16 * _MIB
#: Index files, prune marks and sweeps hold one entry per blob or pack: as much as an
#: envelope may (256 MiB of plaintext, ``envelope.max_plaintext``, stored uncompressed at
#: worst), and a MiB for the envelope's header and tag.  (This module imports no crypto:
#: the command line's light start-up lists names.)
LARGE_MAX = 257 * _MIB
#: A pack read whole (verify --read-data, repair): a writer closes a pack once its
#: blobs reach 8 MiB (PACK_TARGET_SIZE), so the largest is that, one more blob of the
#: largest size (64 MiB) and a trailer listing a blob per 38 bytes: about 82 MiB.
PACK_MAX = 128 * _MIB

_ID = "[0-9a-f]{16}"
_TIME_ID = "[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}"


@attrs.frozen
class Kind:
    """One kind of vault object: its prefix, the exact shape of its names, and the
    largest object of the kind a reader takes whole (None: never read whole)."""

    label: str
    prefix: str
    pattern: str  # a regular expression, compiled at the first match (not by every command's start)
    max_size: int | None = None
    document: bool = False  # an encrypted JSON document (Repository.get_document)

    def matches(self, name: str) -> bool:
        compiled = _COMPILED.get(self.pattern)
        if compiled is None:
            compiled = _COMPILED.setdefault(self.pattern, re.compile(self.pattern))
        return compiled.fullmatch(name) is not None


_COMPILED: dict[str, re.Pattern[str]] = {}


KINDS: tuple[Kind, ...] = (
    Kind("vault identity", "strongroom.json", r"strongroom\.json"),
    Kind("key slot", "keys/", r"keys/[A-Za-z0-9_-]{1,64}"),
    Kind("settings document", "settings/", rf"settings/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("data key", "datakeys/", r"datakeys/[0-9a-f]{8}", DOCUMENT_MAX, document=True),
    Kind("pack", "data/", r"data/([0-9a-f]{2})/\1[0-9a-f]{30}", PACK_MAX),
    Kind("index file", "index/", rf"index/{_TIME_ID}", LARGE_MAX),
    Kind("item", "items/", rf"items/{_ID}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("point header", "points/", rf"points/{_ID}/{_ID}", DOCUMENT_MAX, document=True),
    Kind("point status", "point-status/", rf"point-status/{_ID}/{_ID}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("policy", "policies/", rf"policies/[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("job record", "jobs/", rf"jobs/{_TIME_ID}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("run claim", "runs/", rf"runs/(?:{_ID}(?:/drill)?|prune)/[0-9]{{8}}T[0-9]{{6}}Z/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("prune mark or sweep", "prune/", rf"prune/{_TIME_ID}/(?:mark|sweep)", LARGE_MAX, document=True),
    Kind("lease", "leases/", rf"leases/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("vault head", "heads/", rf"heads/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("alert", "alerts/", rf"alerts/{_TIME_ID}-{_ID}", DOCUMENT_MAX, document=True),
    Kind("alert event", "alert-events/", rf"alert-events/{_ID}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("alert sinks", "alert-sinks/", rf"alert-sinks/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("journal entry", "journal/", rf"journal/[0-9]{{8}}/{_TIME_ID}", DOCUMENT_MAX, document=True),
    Kind("used guard ticket", "tickets/", r"tickets/[0-9a-f]{32}", DOCUMENT_MAX, document=True),
    Kind("quarantined object", "quarantine/", r"quarantine/.+"),
)

_BY_TOP = {kind.prefix.partition("/")[0]: kind for kind in KINDS}
_QUARANTINE = _BY_TOP["quarantine"]


def kind_of(name: str) -> Kind | None:
    """The kind of the vault object called ``name``, or None for a foreign object."""
    if not isinstance(name, str):
        return None
    kind = _BY_TOP.get(name.partition("/")[0])
    if kind is None or not kind.matches(name):
        return None
    if kind is _QUARANTINE:  # an object moved aside keeps its name: one of the others
        inner = kind_of(name[len(kind.prefix):])
        return kind if inner is not None and inner is not _QUARANTINE else None
    return kind


def is_vault_name(name: str) -> bool:
    """Whether ``name`` has the shape of one of the vault's objects."""
    return kind_of(name) is not None


def vault_names(names: Iterable[str], foreign: set[str] | None = None) -> list[str]:
    """The names in ``names`` that are the vault's, in the order given; the foreign ones
    are added to ``foreign`` when it is given."""
    kept = []
    for name in names:
        if kind_of(name) is not None:
            kept.append(name)
        elif foreign is not None:
            foreign.add(name)
    return kept
