"""A restore compared with the source as the point saw it, file by file, byte for byte.

A files point keeps a source path ``/x/src/a`` as ``x/src/a``: a restore into ``DIR`` writes
``DIR/x/src/a/...``.  :func:`compare` checks every regular file of the snapshot (the copy
of the source taken right after the backup) against ``DIR``: present and identical,
missing, or different; and lists files the restore wrote that the source did not have.
Missing files are split by whether the damage may take them (``affected``, point paths).
"""

from __future__ import annotations

import filecmp
import os

import attrs

__all__ = ["Comparison", "compare"]


@attrs.frozen
class Comparison:
    """What a restore wrote, against the source (all point paths)."""

    matched: int
    missing_intact: tuple[str, ...]  # files the damage could not take that are not there
    missing_affected: tuple[str, ...]  # files the damage may take that are not there
    different: tuple[str, ...]  # restored with other bytes than the source had
    extra: tuple[str, ...]  # written although the source had no such file

    @property
    def expected(self) -> int:
        return self.matched + len(self.missing_intact) + len(self.missing_affected) + len(self.different)


def _files(root: str) -> dict[str, str]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out[os.path.relpath(path, root).replace(os.sep, "/")] = path
    return out


def compare(target: str, snapshot: str, source: str, affected: set[str] | None) -> Comparison:
    """Compare restore ``target`` with ``snapshot`` of ``source``; ``affected`` None means
    every file may be missing."""
    base = source.strip("/")
    restored_root = os.path.join(target, *base.split("/"))
    expected = _files(snapshot)
    restored = _files(restored_root) if os.path.isdir(restored_root) else {}
    matched, intact, hit, different = 0, [], [], []
    for rel, path in sorted(expected.items()):
        point_path = f"{base}/{rel}"
        got = restored.get(rel)
        if got is None:
            (hit if affected is None or point_path in affected else intact).append(point_path)
        elif filecmp.cmp(path, got, shallow=False):
            matched += 1
        else:
            different.append(point_path)
    extra = sorted(f"{base}/{rel}" for rel in restored if rel not in expected)
    others = sorted(p for p in _files(target) if not (p == base or p.startswith(base + "/")))
    return Comparison(matched, tuple(intact), tuple(hit), tuple(different), tuple(extra + others))
