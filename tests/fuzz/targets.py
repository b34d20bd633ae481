"""The parsers of data read from storage, each as the fuzzers call it.

A :class:`Target` is one parser fed in one way (``mode``): the stored bytes damaged
(``stored bytes``), or the plaintext damaged and sealed again with the vault's own key
so that it passes authentication (``re-sealed bytes``, ``re-sealed JSON``; for the clear
key slots and ``strongroom.json``: ``clear bytes``, ``clear JSON``).  ``attempt`` puts
the damaged object where the parser reads it (a memory store), runs the parser the way
the vault does, and classifies the outcome: ``parsed`` (the result passed ``check``:
well formed, and what the writer would write again) or the name of a clean error (one
of ``errors``, with a one-line message).  Anything else raises :class:`Unclean`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import struct
from typing import Any, Callable

import attrs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import strategies as st

from strongroom.catalog.entry import DIR, TYPES, Entry
from strongroom.catalog.tree import decode_tree, encode_tree, sort_entries
from strongroom.engine.gcstate import Mark, Sweep, read_part
from strongroom.errors import IntegrityError, UnsupportedFormat, VaultKeyError
from strongroom.models import FORMAT_VERSION, Job, RecoveryPoint, VaultConfig, parse_iso, utcnow
from strongroom.registry import Registry
from strongroom.repository import keyring
from strongroom.repository.envelope import KIND_DOCUMENT, KIND_INDEX, KIND_PACK_TRAILER
from strongroom.repository.keyproviders import KeyContext, LocalKeyProvider, PassphraseKeyProvider, PassphraseSource
from strongroom.repository.leases import LeaseInfo, read_leases
from strongroom.repository.masterkey import slot_associated_data
from strongroom.repository.pack import IndexEntry, is_pack_id, pack_name, parse_pack, read_trailer, trailer_name
from strongroom.repository.repository import Repository
from strongroom.repository.indexstate import IndexState
from strongroom.services.points import PointBook
from strongroom.services.pointstatus import PointStatus, load_statuses
from strongroom.services.settings import newest_settings, parse_settings
from strongroom.storage import MemoryStore
from strongroom.vault import _read_config

from .corpus import PASSPHRASE_ENV, Corpus
from .mutations import Mutation, damaged_bytes, damaged_json

_FOOTER = struct.Struct("<I4s")


class Unclean(Exception):
    """A parser raised something other than its clean error, or returned a malformed result."""


@attrs.frozen
class Target:
    """One parser fed in one way; see the module docstring."""

    parser: str
    mode: str
    strategy: st.SearchStrategy[Mutation]
    parse: Callable[[bytes], Any]
    check: Callable[[Any], None]
    errors: tuple[type[BaseException], ...] = (IntegrityError,)

    @property
    def name(self) -> str:
        return f"{self.parser} ({self.mode})"

    def attempt(self, mutation: Mutation) -> str:
        """``"parsed"`` or the clean error's class name; :class:`Unclean` otherwise."""
        try:
            result = self.parse(mutation.data)
        except self.errors as exc:
            message = str(exc)
            if "\n" in message or not message:
                raise Unclean(f"{self.name}: {mutation!r}: {type(exc).__name__} is not one line: {message!r}") from exc
            return type(exc).__name__
        except Exception as exc:
            raise Unclean(f"{self.name}: {mutation!r}: {type(exc).__name__}: {exc}") from exc
        try:
            self.check(result)
        except Exception as exc:
            raise Unclean(f"{self.name}: {mutation!r}: parsed into something malformed: {exc!r}") from exc
        return "parsed"


# --- checks of parse results -----------------------------------------------------------


def _aware(moment: object) -> None:
    assert isinstance(moment, dt.datetime) and moment.tzinfo is not None, moment
    moment.astimezone(dt.timezone.utc)


def _time(text: object, optional: bool = False) -> None:
    if optional and text is None:
        return
    assert isinstance(text, str), text
    _aware(parse_iso(text))


def _strs(values: object) -> None:
    assert isinstance(values, tuple) and all(isinstance(v, str) for v in values), values


def _round_trip(record: Any, parse: Callable[[dict], Any]) -> None:
    """What the writer would store for ``record`` parses back into ``record``."""
    again = parse(json.loads(json.dumps(record.to_dict())))
    assert again == record, (again, record)


def check_index_entries(entries: object, pack_id: str | None = None) -> None:
    assert isinstance(entries, list)
    for e in entries:
        assert isinstance(e, IndexEntry)
        assert isinstance(e.blob_id, bytes) and len(e.blob_id) == 32
        assert isinstance(e.kind, int) and 0 < e.kind < 256
        assert is_pack_id(e.pack_id) and (pack_id is None or e.pack_id == pack_id)
        for n in (e.offset, e.length, e.raw_length):
            assert isinstance(n, int) and 0 <= n < 2**32


def check_trailer(pack_id: str) -> Callable[[Any], None]:
    def check(entries: Any) -> None:
        check_index_entries(entries, pack_id)
        end = 0
        for e in entries:
            assert e.offset == end
            end = e.offset + e.length
    return check


def check_entries(entries: object) -> None:
    assert isinstance(entries, list)
    for e in entries:
        assert isinstance(e, Entry) and e.type in TYPES
        for field in attrs.fields(Entry):
            value = getattr(e, field.name)
            if field.type in ("int", "bool", "str"):
                expected = {"int": int, "bool": bool, "str": str}[field.type]
                assert isinstance(value, expected) and (expected is bool or not isinstance(value, bool)), field.name
        assert all(isinstance(c, bytes) and (len(c) == 32 or (e.chunk_size and not c)) for c in e.chunks)
        assert e.subtree is None or (isinstance(e.subtree, bytes) and len(e.subtree) == 32)
        assert e.type != DIR or e.subtree is not None
        assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in e.xattrs)
        e.name.encode("utf-8", "surrogateescape")  # names are written back as bytes
    assert decode_tree(encode_tree(entries)) == sort_entries(entries)


def check_point(point: Any) -> None:
    assert isinstance(point, RecoveryPoint)
    _time(point.created)
    _time(point.expires_at, optional=True)
    _time(point.retain_until, optional=True)
    _strs(point.warnings)
    _strs(point.tags)
    assert isinstance(point.stats, dict) and isinstance(point.extra, dict)
    bytes.fromhex(point.root)
    _round_trip(point, RecoveryPoint.from_dict)


def check_status(status: Any) -> None:
    assert isinstance(status, PointStatus)
    _time(status.expires_at, optional=True)
    _strs(status.tags)
    _round_trip(status, PointStatus.from_dict)


def check_settings(settings: Any) -> None:
    _round_trip(settings, parse_settings)


def check_job(job: Any) -> None:
    assert isinstance(job, Job)
    _time(job.started)
    _time(job.ended, optional=True)
    _strs(job.warnings)
    _round_trip(job, Job.from_dict)


def check_leases(found: Any) -> None:
    live, expired = found
    for info in live:
        assert isinstance(info, LeaseInfo)
        assert all(isinstance(v, str) for v in (info.name, info.token, info.operation, info.holder))
        _aware(info.expires)
        info.operation.capitalize()
    assert all(isinstance(name, str) for name in expired)
    assert len(live) + len(expired) == 1


def check_gc_part(found: Any) -> None:
    assert isinstance(found, (Mark, Sweep))
    if isinstance(found, Mark):
        _aware(found.marked)
        assert math.isfinite(found.grace) and found.grace >= 0
        found.sweepable(utcnow())
        for blobs in (*found.packs.values(), *found.duplicates.values()):
            assert all(isinstance(b, bytes) and len(b) == 32 for b in blobs)
        assert all(is_pack_id(p) for p in (*found.packs, *found.duplicates))
    else:
        assert all(is_pack_id(p) for p in found.doomed)
    _round_trip(found, type(found).from_dict)


def check_config(config: Any) -> None:
    assert isinstance(config, VaultConfig) and config.format <= FORMAT_VERSION
    _strs(config.features)
    _round_trip(config, VaultConfig.from_dict)


# --- the targets ---------------------------------------------------------------------


def _document_targets(corpus: Corpus, kind: str, parse_doc: Callable[[Repository, str], Any],
                      check: Callable[[Any], None], errors: tuple = (IntegrityError,),
                      setup: Callable[[MemoryStore], None] | None = None) -> list[Target]:
    """The three ways to feed an encrypted JSON document of ``kind`` to ``parse_doc``."""
    name = corpus.documents[kind]
    master = corpus.vault.repo.master
    store = MemoryStore()
    if setup is not None:
        setup(store)
    repo = Repository(store, master)
    sealed = corpus.sealed[name]
    plain = repo.envelope.open(sealed, name.encode(), kind=KIND_DOCUMENT)

    def stored(data: bytes) -> Any:
        store.put(name, data)
        return parse_doc(repo, name)

    def resealed(data: bytes) -> Any:
        store.put(name, bytes(repo.envelope.seal(KIND_DOCUMENT, name.encode(), data)))
        return parse_doc(repo, name)

    return [
        Target(kind, "stored bytes", damaged_bytes(sealed), stored, check, errors),
        Target(kind, "re-sealed bytes", damaged_bytes(bytes(plain)), resealed, check, errors),
        Target(kind, "re-sealed JSON", damaged_json(json.loads(plain)), resealed, check, errors),
    ]


def _pack_targets(corpus: Corpus) -> list[Target]:
    pack_id, pack = corpus.pack_id, corpus.pack
    envelope = corpus.vault.repo.envelope
    trailer_len = _FOOTER.unpack_from(pack, len(pack) - _FOOTER.size)[0]
    start = len(pack) - _FOOTER.size - trailer_len
    plain = bytes(envelope.open(pack[start:-_FOOTER.size], trailer_name(pack_id), kind=KIND_PACK_TRAILER))
    store = MemoryStore()
    check = check_trailer(pack_id)

    def rebuilt(data: bytes) -> bytes:
        sealed = bytes(envelope.seal(KIND_PACK_TRAILER, trailer_name(pack_id), data))
        return pack[:start] + sealed + _FOOTER.pack(len(sealed), b"SRPK")

    def in_memory(data: bytes) -> Any:
        return parse_pack(data, pack_id, envelope)

    def stored(data: bytes) -> Any:
        store.put(pack_name(pack_id), data)
        return read_trailer(store, pack_id, envelope)

    tail = len(pack) - start + 64
    return [
        Target("pack trailer (whole pack)", "stored bytes", damaged_bytes(pack, tail), in_memory, check),
        Target("pack trailer (whole pack)", "re-sealed bytes", damaged_bytes(plain), lambda d: in_memory(rebuilt(d)), check),
        Target("pack trailer (ranged reads)", "stored bytes", damaged_bytes(pack, tail), stored, check),
        Target("pack trailer (ranged reads)", "re-sealed bytes", damaged_bytes(plain), lambda d: stored(rebuilt(d)), check),
    ]


def _index_targets(corpus: Corpus) -> list[Target]:
    name, sealed = corpus.index_name, corpus.index
    master = corpus.vault.repo.master
    store = MemoryStore()
    plain = bytes(Repository(store, master).envelope.open(sealed, name.encode(), kind=KIND_INDEX))

    def load(data: bytes) -> Any:
        store.put(name, data)
        repo = Repository(store, master)
        repo.load_index_files([name])
        return list(repo.index.entries())

    def resealed(data: bytes) -> Any:
        repo = Repository(store, master)
        return load(bytes(repo.envelope.seal(KIND_INDEX, name.encode(), data)))

    return [
        Target("index file", "stored bytes", damaged_bytes(sealed), load, check_index_entries),
        Target("index file", "re-sealed bytes", damaged_bytes(plain), resealed, check_index_entries),
    ]


def _tree_targets(corpus: Corpus) -> list[Target]:
    repo, entry = corpus.vault.repo, corpus.tree_entry
    what = f"tree {entry.blob_id.hex()[:16]}"

    def stored(data: bytes) -> Any:
        return decode_tree(repo.open_blob(entry, data), what=what)

    def written(data: bytes) -> Any:  # a buggy writer's node: its id is the hash of what it wrote
        return decode_tree(data, what=what)

    return [
        Target("tree node", "stored bytes", damaged_bytes(corpus.tree_sealed), stored, check_entries),
        Target("tree node", "written bytes", damaged_bytes(corpus.tree_plain), written, check_entries),
        Target("tree node", "written JSON", damaged_json(json.loads(corpus.tree_plain)), written, check_entries),
    ]


def _with_older(corpus: Corpus, kind: str) -> Callable[[MemoryStore], None]:
    """Put the intact older version of ``kind`` beside the one the fuzzer damages."""
    name = corpus.older[kind]

    def setup(store: MemoryStore) -> None:
        store.put(name, corpus.sealed[name])
    return setup


def _statuses(item_id: str, point_id: str) -> Callable[[Repository, str], Any]:
    def parse(repo: Repository, name: str) -> Any:
        found = load_statuses(repo, item_id)
        return found[point_id]  # the damaged newest status, or the older one: never none
    return parse


def _slot_targets(corpus: Corpus) -> list[Target]:
    vault_id = corpus.vault.vault_id
    providers: Registry[Any] = Registry("key provider")
    providers.add("local", LocalKeyProvider())
    providers.add("passphrase", PassphraseKeyProvider())
    ctx = KeyContext(vault_id=vault_id, home=corpus.home,
                     passphrase=PassphraseSource(env_var=PASSPHRASE_ENV, use_default_env=False))
    real_key_id = corpus.vault.repo.master.key_id
    targets = []
    for provider, (name, raw) in sorted(corpus.slots.items()):
        store = MemoryStore()
        doc = json.loads(raw)
        kek = providers.get(provider).unlock(ctx, doc["params"])

        def unlock(data: bytes, name: str = name, store: MemoryStore = store) -> Any:
            store.put(name, data)
            return keyring.unlock(store, ctx, providers)

        def rewrapped(data: bytes, doc: dict = doc, kek: Any = kek, unlock: Callable = unlock) -> Any:
            nonce = os.urandom(12)
            wrapped = AESGCM(kek.value).encrypt(nonce, data, slot_associated_data(doc, vault_id))
            changed = {**doc, "nonce": base64.b64encode(nonce).decode(), "wrapped": base64.b64encode(wrapped).decode()}
            return unlock(json.dumps(changed).encode())

        def check_same_key(found: Any) -> None:
            master, slot = found
            assert master.key_id == real_key_id
            assert all(isinstance(v, str) for v in (slot.slot_id, slot.provider, slot.label, slot.created))
            assert isinstance(slot.params, dict)

        def check_any_key(found: Any) -> None:
            master, _ = found
            assert len(master.data_key.value) == 32 and len(master.id_key.value) == 32

        plain_master = corpus.vault.repo.master.to_json()
        parser = f"key slot ({provider})"
        errors = (VaultKeyError, IntegrityError)
        targets += [
            Target(parser, "clear bytes", damaged_bytes(raw), unlock, check_same_key, errors),
            Target(parser, "clear JSON", damaged_json(doc), unlock, check_same_key, errors),
            Target(parser, "re-wrapped master key bytes", damaged_bytes(plain_master), rewrapped, check_any_key, errors),
            Target(parser, "re-wrapped master key JSON", damaged_json(json.loads(plain_master)), rewrapped,
                   check_any_key, errors),
        ]
    return targets


def _config_targets(corpus: Corpus) -> list[Target]:
    store = MemoryStore()

    def read(data: bytes) -> Any:
        store.put("strongroom.json", data)
        return _read_config(store, "fuzz")

    errors = (IntegrityError, UnsupportedFormat)
    return [
        Target("strongroom.json", "clear bytes", damaged_bytes(corpus.config), read, check_config, errors),
        Target("strongroom.json", "clear JSON", damaged_json(json.loads(corpus.config)), read, check_config, errors),
    ]


def _survey(repo: Repository, name: str) -> Any:
    return PointBook(repo, IndexState(repo)).survey(None)


def check_survey(survey: Any) -> None:
    """The one header is listed: as an intact point, or as a damaged one with its reason."""
    assert len(survey.points) + len(survey.damaged) == 1, survey
    for point in survey.points:
        check_point(point)
    for damaged in survey.damaged:
        assert isinstance(damaged.error, str) and damaged.error and "\n" not in damaged.error


def _header_targets(corpus: Corpus) -> list[Target]:
    one = _document_targets(corpus, "point header",
                            lambda repo, name: RecoveryPoint.from_dict(repo.get_document(name)), check_point)
    listed = _document_targets(corpus, "point header", _survey, check_survey, errors=())
    return one + [attrs.evolve(t, parser="point headers (PointBook.survey)") for t in listed]


def _status_targets(corpus: Corpus) -> list[Target]:
    point = corpus.plain_document(corpus.documents["point header"])
    one = _document_targets(corpus, "point status",
                            lambda repo, name: PointStatus.from_dict(repo.get_document(name)), check_status)
    newest = _document_targets(corpus, "point status", _statuses(point["item_id"], point["point_id"]),
                               check_status, errors=(), setup=_with_older(corpus, "point status"))
    return one + [attrs.evolve(t, parser="point statuses (load_statuses)") for t in newest]


def _settings_targets(corpus: Corpus) -> list[Target]:
    one = _document_targets(corpus, "settings", lambda repo, name: parse_settings(repo.get_document(name)),
                            check_settings)
    newest = _document_targets(corpus, "settings", lambda repo, name: newest_settings(repo), check_settings,
                               errors=(), setup=_with_older(corpus, "settings"))
    return one + [attrs.evolve(t, parser="settings (newest_settings)") for t in newest]


def _job_targets(corpus: Corpus) -> list[Target]:
    return _document_targets(corpus, "job record", lambda repo, name: Job.from_dict(repo.get_document(name)),
                             check_job)


def _lease_targets(corpus: Corpus) -> list[Target]:
    return _document_targets(corpus, "lease", lambda repo, name: read_leases(repo, utcnow()), check_leases,
                             errors=())


def _gc_part(repo: Repository, name: str) -> Any:
    _, cycle, part = name.split("/")
    return read_part(repo, cycle, part)


def _gc_targets(corpus: Corpus) -> list[Target]:
    return (_document_targets(corpus, "prune mark", _gc_part, check_gc_part)
            + _document_targets(corpus, "prune sweep", _gc_part, check_gc_part))


#: Each family of targets: one kind of stored object, fed every way that applies to it.
FAMILIES: dict[str, Callable[[Corpus], list[Target]]] = {
    "pack trailer": _pack_targets,
    "index file": _index_targets,
    "tree node": _tree_targets,
    "point header": _header_targets,
    "point status": _status_targets,
    "settings": _settings_targets,
    "job record": _job_targets,
    "lease": _lease_targets,
    "prune mark and sweep": _gc_targets,
    "key slot": _slot_targets,
    "strongroom.json": _config_targets,
}


def all_targets(corpus: Corpus) -> list[Target]:
    """Every parser of data read from storage, fed every way that applies to it."""
    return [target for family in FAMILIES.values() for target in family(corpus)]
