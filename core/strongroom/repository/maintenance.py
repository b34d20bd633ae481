"""Pack maintenance: the writes that move blobs between packs or remove them (prune's sweep).

Prune removes data in three steps, each of which this module does for one file or pack
(``engine/gc.py`` orders them and ``engine/gcstate.py`` describes the protocol that
lets backups run beside it):

- :func:`copy_blobs` copies blobs that are still needed out of doomed packs into new
  packs, each with its index file, and adds them to the in-memory index.  Every blob is
  opened (authenticated, re-hashed) before it is copied, so damage is never copied.
  Backups call it too, to rescue blobs a running prune has marked.
- :func:`replace_index_file` writes the index file that replaces one that names doomed
  packs, then deletes the old one; repeating an interrupted replacement rewrites the
  same file.
- :func:`delete_pack` deletes a pack from storage.

On storage with object lock a delete may be refused while the object is retained
(:class:`~strongroom.errors.ObjectLocked`): :func:`replace_index_file` and
:func:`delete_pack` let it through, after the new index file is written, and the caller
keeps the object for a later run.

Writes: packs ``data/<xx>/<pack-id>`` and index files ``index/<id>``; deletes index
files and packs.  Refuses: a damaged blob or a missing source pack (IntegrityError; the
damaged blob is not copied, packs already written stay, indexed); an index file that
would replace itself (ValueError).  None of these functions takes a lease or checks a
plan: their callers do.
"""

from __future__ import annotations

import hashlib

from ..errors import ObjectNotFound
from .envelope import KIND_INDEX
from .indexfile import encode_index
from .pack import PACK_TARGET_SIZE, IndexEntry, PackWriter, missing_pack, pack_name
from .repository import Repository, index_object_name

__all__ = ["copy_blobs", "delete_pack", "replace_index_file", "replacement_name"]


def replacement_name(name: str) -> str:
    """The name of the index file that replaces index file ``name`` (the same every time)."""
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    return index_object_name(f"{stamp}-{hashlib.sha256(name.encode()).hexdigest()[:8]}")


def replace_index_file(repo: Repository, name: str, entries: list[IndexEntry]) -> str | None:
    """Write the index file that replaces ``name`` with ``entries``, then delete ``name``.

    The new file keeps the time part of the old name (packs keep their age, which
    prune's grace period is counted from) and gets a suffix derived from the old name,
    so repeating an interrupted replacement rewrites the same file instead of adding
    one.  Returns the new name, or None when ``entries`` is empty (nothing written).
    """
    new_name = None
    if entries:
        new_name = replacement_name(name)
        if new_name == name:
            raise ValueError(f"index file {name} cannot replace itself")
        plain = encode_index(entries, default_key=repo.envelope.base_key_id)
        repo.store.put(new_name, repo.envelope.seal(KIND_INDEX, new_name.encode(), plain))
    repo.store.delete(name)
    return new_name


def copy_blobs(repo: Repository, entries: list[IndexEntry], *, pack_size: int = PACK_TARGET_SIZE) -> list[IndexEntry]:
    """Copy blobs, still sealed, into new packs with their index files; the new entries.

    Each blob is read with one ranged read per source pack and opened (authenticated,
    re-hashed) before it is copied, so damage is never copied: IntegrityError names
    it.  A missing source pack raises IntegrityError too.  Sealed blobs are bound to
    their blob id, not to a pack, so they move as they are; blobs of different data keys
    go into different packs (a pack names one data key, :mod:`.pack`).
    """
    by_pack: dict[str, list[IndexEntry]] = {}
    for entry in entries:
        by_pack.setdefault(entry.pack_id, []).append(entry)
    written: list[IndexEntry] = []
    packs: dict[bytes, PackWriter] = {}

    def upload(full: PackWriter) -> None:
        data, new = full.finish()
        repo.store.put(pack_name(full.pack_id), data)
        repo.write_index(new)
        repo.index.add(new)
        written.extend(new)

    for pack_id in sorted(by_pack):
        group = sorted(by_pack[pack_id], key=lambda e: e.offset)
        start = group[0].offset
        end = max(e.offset + e.length for e in group)
        try:
            data = memoryview(repo.store.get_range(pack_name(pack_id), start, end - start))
        except ObjectNotFound:
            raise missing_pack(pack_id) from None
        for entry in group:
            sealed = data[entry.offset - start : entry.offset - start + entry.length]
            repo.open_blob(entry, sealed)  # raises IntegrityError if damaged
            key = entry.key_id or repo.envelope.base_key_id
            pack = packs.get(key)
            if pack is None:
                pack = packs[key] = PackWriter(repo.envelope, key)
            pack.add(entry.blob_id, entry.kind, bytes(sealed), entry.raw_length)
            if pack.size >= pack_size:
                upload(packs.pop(key))
    for pack in packs.values():
        if pack.count:
            upload(pack)
    return written


def delete_pack(repo: Repository, pack_id: str) -> int:
    """Delete a pack from storage; returns its size (0 if it was already gone)."""
    name = pack_name(pack_id)
    try:
        size = repo.store.size(name)
    except ObjectNotFound:
        return 0
    repo.store.delete(name)
    return size
