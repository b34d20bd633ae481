"""Snapshots of file trees and their comparison, for tests that restore files.

:func:`snapshot_tree` records, per path relative to the root (``/``-separated, the root
itself excluded): type, mode, uid, gid, size, mtime_ns, symlink target, ``user.*``
xattrs, content sha256, nlink and hardlink group (counted within the tree and labelled
by the group's first path, so two trees compare by structure, not inode numbers) and
allocated blocks.  It reads the tree and never changes it (no atime is relied on).

:func:`assert_trees_equal` compares two trees or snapshots field by field (atime and
ctime are not compared) and checks that sparse files did not get much bigger on disk;
:func:`tree_differences` returns the same findings as a list.

:func:`tree_digest` and :func:`assert_same_tree` are the lighter view of the same
snapshot: type, mode, size and content (or link target) only, for storage tests where
owners, times and xattrs are not the point.  A digest is a plain dict of tuples, so it
can be kept to compare a later restore with the tree as it was then.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Mapping

__all__ = [
    "assert_same_tree", "assert_trees_equal", "snapshot_tree", "tree_differences", "tree_digest",
]

MIB = 1 << 20
#: the fields :func:`assert_trees_equal` compares
FIELDS = ("type", "mode", "uid", "gid", "size", "mtime_ns", "target", "xattrs", "sha256", "nlink", "hardlink_group")
#: the fields of a :func:`tree_digest` record, in tuple order
DIGEST_FIELDS = ("type", "mode", "size", "content")
#: how much bigger on disk a restored sparse file may be than its source
SPARSE_SLACK = MIB
_SHOWN = 20


# --- snapshots ---------------------------------------------------------------------------


def snapshot_tree(root: str | os.PathLike[str], *, hash_content: bool = True) -> dict[str, dict]:
    """Map each path under ``root`` (``/``-separated, root excluded) to its metadata."""
    root = os.fspath(root)
    snap: dict[str, dict] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            snap[rel] = _record(path, st, hash_content)
            if stat.S_ISREG(st.st_mode):
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
    for names in inodes.values():
        for rel in names:
            snap[rel]["nlink"] = len(names)
            snap[rel]["hardlink_group"] = min(names) if len(names) > 1 else None
    return snap


def _record(path: str, st: os.stat_result, hash_content: bool) -> dict:
    kind = _kind(st.st_mode)
    return {
        "type": kind,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size if kind == "file" else 0,
        "mtime_ns": st.st_mtime_ns,
        "target": os.readlink(path) if kind == "symlink" else None,
        "xattrs": _user_xattrs(path),
        "sha256": _sha256(path) if kind == "file" and hash_content else None,
        "nlink": 1 if kind != "dir" else None,
        "hardlink_group": None,
        "blocks": st.st_blocks,
    }


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return kind
    return "unknown"


def _user_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    return tuple(
        (name, os.getxattr(path, name, follow_symlinks=False)) for name in sorted(names) if name.startswith("user.")
    )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


# --- comparing ---------------------------------------------------------------------------


def _as_snapshot(tree: str | os.PathLike[str] | dict) -> dict[str, dict]:
    return tree if isinstance(tree, dict) else snapshot_tree(tree)


def _compare(want: Mapping[str, Mapping], got: Mapping[str, Mapping], fields: tuple[str, ...]) -> list[str]:
    """Paths on one side only, then every field that differs, path by path."""
    problems = [f"missing: {p!r}" for p in sorted(want.keys() - got.keys())]
    problems += [f"unexpected: {p!r}" for p in sorted(got.keys() - want.keys())]
    for path in sorted(want.keys() & got.keys()):
        a, b = want[path], got[path]
        problems += [f"{path!r}: {field} expected {_show(field, a[field])}, got {_show(field, b[field])}"
                     for field in fields if a[field] != b[field]]
    return problems


def _show(field: str, value: object) -> str:
    text = oct(value) if field == "mode" and isinstance(value, int) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail_if(problems: list[str]) -> None:
    if problems:
        listed = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise AssertionError(f"trees differ in {len(problems)} place(s):\n  {listed}{more}")


def tree_differences(expected: str | dict, actual: str | dict, *, check_sparse: bool = True) -> list[str]:
    """Human-readable differences between two trees or snapshots (empty if equal)."""
    want, got = _as_snapshot(expected), _as_snapshot(actual)
    problems = _compare(want, got, FIELDS)
    if check_sparse:
        for path in sorted(want.keys() & got.keys()):
            a, b = want[path], got[path]
            if _is_sparse(a) and b["blocks"] * 512 > a["blocks"] * 512 + SPARSE_SLACK:
                problems.append(f"{path!r}: not sparse ({b['blocks']} blocks, source {a['blocks']})")
    return problems


def _is_sparse(record: Mapping) -> bool:
    return record["type"] == "file" and record["blocks"] * 512 < record["size"]


def assert_trees_equal(expected: str | dict, actual: str | dict, *, check_sparse: bool = True) -> None:
    """Fail with the first 20 differences if the two trees (or snapshots) differ."""
    _fail_if(tree_differences(expected, actual, check_sparse=check_sparse))


# --- the lighter view: digests -------------------------------------------------------------


def tree_digest(root: str | os.PathLike[str]) -> dict[str, tuple]:
    """``{relative path: (type, mode, size, sha256 or link target)}`` of ``root``'s contents."""
    return {rel: _digest(record) for rel, record in snapshot_tree(root).items()}


def _digest(record: Mapping) -> tuple:
    if record["type"] == "symlink":
        return ("symlink", 0, 0, record["target"])
    return (record["type"], record["mode"], record["size"], record["sha256"] or "")


def assert_same_tree(expected: str | dict, actual: str | dict) -> None:
    """Fail naming every path whose type, mode, size or content differs between two trees (or digests)."""
    want = expected if isinstance(expected, dict) else tree_digest(expected)
    got = actual if isinstance(actual, dict) else tree_digest(actual)
    _fail_if(_compare(_fields(want), _fields(got), DIGEST_FIELDS))


def _fields(digest: Mapping[str, tuple]) -> dict[str, dict]:
    return {path: dict(zip(DIGEST_FIELDS, record)) for path, record in digest.items()}
