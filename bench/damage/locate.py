"""Where everything of an intact vault lives: ``python -m bench.damage.locate VAULT`` prints JSON.

The matrix chooses the object to damage, and works out what the damage can take away,
from this map of the vault as it is before any damage: every intact point of every item
(oldest first) with the tree node of each folder and the chunks of each file, and every
index file with the blobs it names (pack, byte range).  It only reads.

This is the one module of the matrix that uses strongroom's Python API beyond
``strongroom.open_vault`` (``Vault.points``, ``Vault.tree``, ``TreeReader.walk``,
``Vault.store.list``, ``Vault.repo.read_index_files`` and their records): a blob's place
inside a pack is known only to the index.  It runs in a child process with the cell's
``STRONGROOM_HOME``, so the bench itself never imports strongroom.

Output::

    {"items": {"a": {"item_id": "...", "points": ["<point id>", ...]}, ...},
     "trees": {"<point id>": {"root": "<hex>", "folders": {"<path>": "<hex>"},
                              "files": {"<path>": ["<hex>", ...]}}},
     "index_files": {"index/<id>": {"error": null, "blobs": [["<hex>", "<pack id>", offset, length], ...]}}}
"""

from __future__ import annotations

import json
import sys

import strongroom


def locate(url: str) -> dict:
    vault = strongroom.open_vault(url)
    items: dict[str, dict] = {}
    trees: dict[str, dict] = {}
    for point in vault.points():
        item = items.setdefault(point.item_name, {"item_id": point.item_id, "points": []})
        item["points"].append(point.point_id)
        folders: dict[str, str] = {}
        files: dict[str, list[str]] = {}
        for path, entry in vault.tree(point).walk():
            if entry.subtree is not None:
                folders[path] = entry.subtree.hex()
            elif entry.chunks:
                files[path] = [chunk.hex() for chunk in entry.chunks if chunk]
        trees[point.point_id] = {"root": point.root, "folders": folders, "files": files}
    index_files: dict[str, dict] = {}
    names = sorted(vault.store.list("index/"))
    for name, entries in vault.repo.read_index_files(names):
        if isinstance(entries, Exception):
            index_files[name] = {"error": str(entries), "blobs": []}
        else:
            index_files[name] = {"error": None, "blobs": [[e.blob_id.hex(), e.pack_id, e.offset, e.length]
                                                          for e in entries]}
    return {"items": items, "trees": trees, "index_files": index_files}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.damage.locate VAULT", file=sys.stderr)
        return 2
    json.dump(locate(argv[0]), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
