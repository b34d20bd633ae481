"""The real objects the fuzzers mutate: everything a vault stores, made by a real vault.

:func:`build_corpus` creates a vault in a local folder with a ``local`` and a
``passphrase`` key slot, backs up a sample tree (hard links, a sparse file, xattrs,
odd names) twice, writes a point status, changes the settings, holds a lease, and runs
a prune that marks unreferenced blobs; then it reads back, as stored, one object of
each kind.  Nothing here is hand-written: the bytes are the vault's own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import attrs

from strongroom.catalog.tree import decode_tree
from strongroom.engine.gcstate import PRUNE_PREFIX, Mark, Sweep, read_part
from strongroom.models import iso, utcnow
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.repository.keyproviders import PassphraseSource
from strongroom.repository.leases import Lease
from strongroom.repository.pack import IndexEntry, pack_name
from strongroom.services.pointstatus import PointStatus, write_status
from strongroom.testing import build_sample_tree
from strongroom.vault import Vault

PASSPHRASE_ENV = "STRONGROOM_FUZZ_PASSPHRASE"
PASSPHRASE = "correct horse battery staple"


@attrs.frozen
class Corpus:
    """One vault's stored objects, by kind (bytes exactly as on storage)."""

    vault: Vault = attrs.field(repr=False)
    home: Path
    pack_id: str
    pack: bytes
    index_name: str
    index: bytes
    tree_entry: IndexEntry
    tree_sealed: bytes
    tree_plain: bytes
    documents: dict[str, str]  # kind -> object name of an encrypted JSON document
    older: dict[str, str]  # kind -> an older intact version (settings, status)
    sealed: dict[str, bytes]  # object name -> stored bytes
    slots: dict[str, tuple[str, bytes]]  # provider -> (object name, stored bytes)
    config: bytes  # strongroom.json

    def plain_document(self, name: str) -> dict:
        return self.vault.repo.get_document(name)


def _first(names, prefix: str) -> str:
    found = sorted(n for n in names if n.startswith(prefix))
    assert found, f"the vault stored nothing under {prefix}"
    return found[-1]


def build_corpus(root: str | os.PathLike[str]) -> Corpus:
    """A vault under ``root`` (with its own key store) and one object of each kind."""
    root = Path(root)
    home = root / "home"
    os.environ[PASSPHRASE_ENV] = PASSPHRASE  # read by the passphrase slot's provider, then and later
    source = build_sample_tree(str(root / "src"), big_file_mib=1, small_files=12)
    vault = Vault.create(str(root / "vault"), name="fuzz", home=str(home))
    vault.keys.add("passphrase", label="fuzz", passphrase=PassphraseSource(env_var=PASSPHRASE_ENV,
                                                                           use_default_env=False))
    vault.protect("files", "src", {"paths": [source]})
    vault.backup("src")
    Path(source, "changed.txt").write_text("changed")
    point = vault.backup("src")
    vault.update_settings(name="fuzz-renamed")
    repo, store = vault.repo, vault.store
    older_status = write_status(repo, PointStatus(point.point_id, point.item_id, reason="first"), utcnow())
    write_status(repo, attrs.evolve(older_status, expires_at=iso(utcnow() + dt.timedelta(days=9)),
                                    tags=("daily", "weekly"), reason="policy"), utcnow())
    with repo.writer() as writer:  # blobs no point needs: the prune below marks them
        for i in range(3):
            writer.add(KIND_DATA, os.urandom(100 + i))
    vault.clock = lambda: utcnow() + dt.timedelta(hours=2)  # the new blobs are past the grace
    vault.prune(grace=3600)
    vault.clock = utcnow
    cycle = next(n.split("/")[1] for n in store.list(PRUNE_PREFIX) if n.endswith("/mark"))
    mark = read_part(repo, cycle, "mark")
    assert isinstance(mark, Mark)
    sweep = Sweep(mark.cycle, iso(utcnow()), frozenset(mark.packs))  # as the sweep of gc.py writes it
    repo.put_document(sweep.name, sweep.to_dict())
    lease = Lease(repo, "prune").acquire()
    try:
        lease_bytes = store.get(lease.name)
        lease_name = lease.name
    finally:
        lease.release()
    store.put(lease_name, lease_bytes)

    names = list(store.list(""))
    documents = {
        "point header": point.object_name,
        "point status": _first(names, f"point-status/{point.item_id}/{point.point_id}/"),
        "settings": _first(names, "settings/"),
        "job record": _first(names, "jobs/"),
        "lease": lease_name,
        "prune mark": mark.name,
        "prune sweep": sweep.name,
    }
    older = {
        "settings": sorted(n for n in names if n.startswith("settings/"))[0],
        "point status": sorted(n for n in names if n.startswith(f"point-status/{point.item_id}/{point.point_id}/"))[0],
    }
    assert all(older[kind] != documents[kind] for kind in older)
    vault.index.load()
    trees = [e for e in repo.index.entries() if e.kind == KIND_TREE]
    # the largest node has the most kinds of entries (xattrs, hard links, odd names)
    tree_entry = max(trees, key=lambda e: e.raw_length)
    tree_sealed = store.get_range(pack_name(tree_entry.pack_id), tree_entry.offset, tree_entry.length)
    tree_plain = bytes(repo.open_blob(tree_entry, tree_sealed))
    assert decode_tree(tree_plain)
    index_name = _first(names, "index/")
    slots = {}
    for name in (n for n in names if n.startswith("keys/")):
        raw = store.get(name)
        slots[json.loads(raw)["provider"]] = (name, raw)
    assert set(slots) == {"local", "passphrase"}
    return Corpus(
        vault=vault, home=home, pack_id=tree_entry.pack_id,
        pack=store.get(pack_name(tree_entry.pack_id)), index_name=index_name, index=store.get(index_name),
        tree_entry=tree_entry, tree_sealed=tree_sealed, tree_plain=tree_plain, documents=documents,
        older=older, sealed={n: store.get(n) for n in [*documents.values(), *older.values()]},
        slots=slots, config=store.get("strongroom.json"),
    )
