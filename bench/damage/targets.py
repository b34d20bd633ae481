"""The rows of the matrix: which object of a cell's vault each kind damages, the three
damages, and what each damage may take away.

A :class:`Kind` chooses its object in a freshly built :class:`~bench.damage.scenario.Scenario`
so that the result says something: the newest point of item ``a`` (``a3``) is the one hit,
and a pack, index file or tree node is one that ``a3`` alone uses, checked against the map
of every point's tree (:mod:`bench.damage.locate`).  A :class:`Damage` changes the object's
file in the vault folder: a bit flipped in its middle, the file cut to half its length, or
the file deleted.  A tree node is a blob inside a pack, so the damage is applied to its
byte range in the pack: the bit flipped in the middle of the blob, the pack cut in the
middle of the blob (the blobs after it go too), or the blob's bytes zeroed (deletion).

From the damaged bytes, :class:`Harm` says what a correct strongroom may fail to give back:
the blobs whose bytes were hit (or, for an index file, the blobs only it names, until a
repair reads the packs again), a point whose header is hit, or the whole vault when the
object is needed to open it (``strongroom.json``, the only key slot).  Everything else must
come back byte for byte.
"""

from __future__ import annotations

import os
from typing import Callable

import attrs

from bench.damage.scenario import Scenario

__all__ = ["DAMAGES", "KINDS", "Damage", "Harm", "Kind", "Target", "VaultMap"]

END = 1 << 62  # "to the end of the file"


@attrs.frozen
class Target:
    """The object to damage: its name in the vault, a byte range of it (a blob inside a
    pack) or None (the whole file), and a line saying what it is."""

    name: str
    span: tuple[int, int] | None
    what: str


class VaultMap:
    """The locate map of a scenario, with the questions the kinds ask of it."""

    def __init__(self, scn: Scenario) -> None:
        self.scn = scn
        self.label = {point: label for label, point in scn.points.items()}
        self.where: dict[str, tuple[str, int, int]] = {}  # blob -> (pack id, offset, length)
        self.packs: dict[str, list[tuple[str, int, int]]] = {}  # pack id -> [(blob, offset, length)]
        self.index_blobs: dict[str, set[str]] = {}
        for name, index in scn.map["index_files"].items():
            self.index_blobs[name] = set()
            for blob, pack, offset, length in index["blobs"]:
                self.index_blobs[name].add(blob)
                if blob not in self.where:
                    self.where[blob] = (pack, offset, length)
                    self.packs.setdefault(pack, []).append((blob, offset, length))
        self.users: dict[str, set[str]] = {}  # blob -> labels of the points that need it
        self.trees: set[str] = set()
        for point, tree in scn.map["trees"].items():
            label = self.label.get(point, point)
            nodes = [tree["root"], *tree["folders"].values()]
            self.trees.update(nodes)
            for blob in nodes + [c for chunks in tree["files"].values() for c in chunks]:
                self.users.setdefault(blob, set()).add(label)

    def only(self, blobs, label: str = "a3") -> bool:
        return all(self.users.get(b, set()) <= {label} for b in blobs)

    def pack_file(self, pack: str) -> str:
        """The pack's object name, found by its id among the files under ``data/``."""
        for folder, _, files in os.walk(os.path.join(self.scn.vault, "data")):
            if pack in files:
                return os.path.relpath(os.path.join(folder, pack), self.scn.vault).replace(os.sep, "/")
        raise LookupError(f"pack {pack} is not on storage")

    def tree(self, label: str) -> dict:
        return self.scn.map["trees"][self.scn.points[label]]

    def newest(self, prefix: str) -> str:
        folder = self.scn.path(prefix)
        return f"{prefix}/{max(os.listdir(folder))}"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def _a3_pack(m: VaultMap) -> tuple[str, str]:
    """A pack that only a3 uses, preferably of data only, the largest; and why it was chosen."""
    used = {m.where[b][0] for b in m.users if "a3" in m.users[b] and b in m.where}
    mine = [p for p in used if m.only(b for b, _, _ in m.packs[p])]
    data = [p for p in mine if not any(b in m.trees for b, _, _ in m.packs[p])]
    if data:
        pool, why = data, "data of a3 only"
    elif mine:
        pool, why = mine, "blobs of a3 only (no pack holds only data)"
    else:
        pool, why = sorted(used), "NOT a3's alone: no pack is"
    pack = max(pool, key=lambda p: (sum(n for _, _, n in m.packs[p]), p))
    return pack, why


def choose_pack(m: VaultMap) -> Target:
    pack, why = _a3_pack(m)
    blobs = m.packs[pack]
    name = m.pack_file(pack)
    size = os.path.getsize(m.scn.path(name))
    return Target(name, None, f"pack of {len(blobs)} blobs, {_mib(size)}: {why}")


def choose_index(m: VaultMap) -> Target:
    pack, _ = _a3_pack(m)
    names = [n for n, blobs in m.index_blobs.items() if any(m.where.get(b, ("",))[0] == pack for b in blobs)]
    mine = [n for n in names if m.only(m.index_blobs[n])]
    name = (mine or names)[0]
    packs = {m.where[b][0] for b in m.index_blobs[name]}
    why = "a3's only" if mine else "NOT a3's alone"
    return Target(name, None, f"index file naming {len(m.index_blobs[name])} blobs in {len(packs)} pack(s), {why}")


def choose_tree_node(m: VaultMap) -> Target:
    tree = m.tree("a3")
    source = m.scn.sources["a"].lstrip("/")
    folders = tree["folders"]
    docs = f"{source}/docs"
    candidates = [docs] if docs in folders and m.only([folders[docs]]) else sorted(
        (p for p, node in folders.items() if m.only([node])), key=lambda p: (-p.count("/"), p))
    path = (candidates or [docs])[0]
    node = folders[path]
    pack, offset, length = m.where[node]
    why = "a3's only" if m.only([node]) else "NOT a3's alone"
    shown = path[len(source) + 1:] if path.startswith(source + "/") else path
    return Target(m.pack_file(pack), (offset, length),
                  f"tree node of folder `{shown}/` of a3 ({why}), {length} bytes at offset {offset} of its pack")


def choose_header(m: VaultMap) -> Target:
    return Target(f"points/{m.scn.item_ids['a']}/{m.scn.points['a3']}", None, "header of a3, the newest point of a")


def choose_status(m: VaultMap) -> Target:
    name = m.newest(f"point-status/{m.scn.item_ids['a']}/{m.scn.points['a3']}")
    count = len(os.listdir(os.path.dirname(m.scn.path(name))))
    return Target(name, None, f"newest of the {count} status documents of a3")


def choose_passphrase_slot(m: VaultMap) -> Target:
    return Target(m.scn.passphrase_slot or "keys/?", None, "the passphrase slot; the local slot beside it is intact")


def choose_only_slot(m: VaultMap) -> Target:
    slots = sorted(os.listdir(m.scn.path("keys")))
    return Target(f"keys/{slots[0]}", None, f"the vault's only key slot (local) of {len(slots)}")


def choose_settings(m: VaultMap) -> Target:
    count = len(os.listdir(m.scn.path("settings")))
    return Target(m.newest("settings"), None, f"newest of the {count} settings documents")


def choose_config(m: VaultMap) -> Target:
    return Target("strongroom.json", None, "the vault's identity (clear JSON)")


@attrs.frozen
class Kind:
    """A row group of the matrix: which object it damages and what it may cost.

    ``scope``: ``object`` (only what needs the damaged bytes may fail), ``point`` (the
    damaged point a3 may be lost whole) or ``vault`` (the object is needed to open the
    vault: every command may refuse).  ``recovery``: a command that a user would run after
    ``vault repair`` for this kind, or None."""

    name: str
    choose: Callable[[VaultMap], Target]
    scope: str = "object"
    index: bool = False  # the object is an index file: its blobs may be unreachable until repair
    passphrase_slot: bool = False
    recovery: tuple[str, ...] | None = None


KINDS = {k.name: k for k in (
    Kind("pack", choose_pack),
    Kind("index", choose_index, index=True),
    Kind("point header", choose_header, scope="point"),
    Kind("status document", choose_status),
    Kind("tree node", choose_tree_node),
    Kind("key slot", choose_passphrase_slot, passphrase_slot=True),
    Kind("only key slot", choose_only_slot, scope="vault", recovery=("vault", "key", "import", "{kit}")),
    Kind("settings", choose_settings),
    Kind("strongroom.json", choose_config, scope="vault"),
)}


@attrs.frozen
class Damage:
    """One way of damaging a target; ``apply`` returns the damaged byte ranges and a line."""

    name: str
    apply: Callable[[str, tuple[int, int] | None], tuple[list[tuple[int, int]], str]]


def _flip(path: str, span: tuple[int, int] | None) -> tuple[list[tuple[int, int]], str]:
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        at = span[0] + span[1] // 2 if span else size // 2
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x01]))
    return [(at, at + 1)], f"bit 0 of byte {at:,} of {size:,} flipped"


def _truncate(path: str, span: tuple[int, int] | None) -> tuple[list[tuple[int, int]], str]:
    size = os.path.getsize(path)
    cut = span[0] + span[1] // 2 if span else size // 2
    os.truncate(path, cut)
    return [(cut, END)], f"cut from {size:,} to {cut:,} bytes"


def _delete(path: str, span: tuple[int, int] | None) -> tuple[list[tuple[int, int]], str]:
    if span is None:
        os.remove(path)
        return [(0, END)], "deleted"
    with open(path, "r+b") as f:
        f.seek(span[0])
        f.write(bytes(span[1]))
    return ([(span[0], span[0] + span[1])],
            f"the blob's {span[1]:,} bytes at {span[0]:,} zeroed (the pack keeps its size)")


DAMAGES = {d.name: d for d in (Damage("bit flip", _flip), Damage("truncation", _truncate),
                               Damage("deletion", _delete))}


@attrs.frozen
class Harm:
    """What the damage may take away, before ``vault repair --apply`` and after it (until a
    backup stores again what the source still has)."""

    blobs_before: frozenset[str] = frozenset()
    blobs_after: frozenset[str] = frozenset()
    points_gone: frozenset[str] = frozenset()  # labels of points whose header is hit
    vault: bool = False  # nothing can be read before the repair (or recovery)

    @classmethod
    def of(cls, kind: Kind, target: Target, ranges: list[tuple[int, int]], m: VaultMap) -> Harm:
        if kind.scope == "vault":
            return cls(vault=True)
        if kind.scope == "point":
            return cls(points_gone=frozenset({"a3"}))
        if kind.index:
            return cls(blobs_before=frozenset(m.index_blobs.get(target.name, ())))
        pack = os.path.basename(target.name)
        if target.name.startswith("data/"):
            hit = frozenset(b for b, off, n in m.packs.get(pack, ())
                            if any(off < end and start < off + n for start, end in ranges))
            return cls(blobs_before=hit, blobs_after=hit)
        return cls()

    def affected(self, m: VaultMap, label: str, *, after: bool) -> set[str] | None:
        """Point paths of the files of point ``label`` that may be missing (None: all of
        them, the point or the vault cannot be read)."""
        if self.vault or label in self.points_gone:
            return None
        blobs = self.blobs_after if after else self.blobs_before
        tree = m.tree(label)
        if tree["root"] in blobs:
            return None
        folders = [p for p, node in tree["folders"].items() if node in blobs]
        return {path for path, chunks in tree["files"].items()
                if any(c in blobs for c in chunks) or any(path.startswith(f + "/") for f in folders)}
