"""Test tools for file trees: build the sample tree, snapshot a tree, compare two trees.

``build_sample_tree`` makes a seeded, deterministic tree with everything a backup of files
must preserve: nesting, empty directories and files, a big pseudo-random file, many small
files (compressible text and random bytes), symlinks of every kind, a group of hardlinks,
a sparse file, xattrs, awkward names, a fifo, unusual modes and owners, and mtimes set
to fixed nanosecond values.  Two builds with the same arguments compare equal.

``snapshot_tree`` records, per path relative to the root (the root itself excluded):
type, mode, uid, gid, size, mtime_ns, symlink target, ``user.*`` xattrs, content sha256,
nlink and hardlink group (counted within the tree, labelled by the group's first path, so
two trees compare by structure, not inode numbers) and allocated blocks.
``assert_trees_equal`` compares two snapshots (or trees) field by field, ignoring atime
and ctime, and checks that sparse files did not get much bigger on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import zlib

MIB = 1 << 20
FIELDS = ("type", "mode", "uid", "gid", "size", "mtime_ns", "target", "xattrs", "sha256", "nlink", "hardlink_group")
SPARSE_SLACK = MIB
BASE_MTIME_NS = 1_500_000_000_123_456_789
OWNER_UID, OWNER_GID = 1234, 5678
BAD_NAME = os.fsdecode(b"bad\xff name")
NEWLINE_NAME = "new\nline"
UNICODE_NAME = "ünïcödé ☃"
LONG_NAME = "long-" + "x" * 195
_WORDS = "alpha beta gamma delta vault chunk backup restore point policy item pack index".split()


# --- building ----------------------------------------------------------------------------


def build_sample_tree(root: str, *, big_file_mib: int = 200, small_files: int = 5000, seed: int = 1) -> None:
    """Create the sample tree under ``root`` (created if missing, expected empty)."""
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    _build_nested(root)
    _write_big(os.path.join(root, "big.bin"), big_file_mib, rng)
    _build_small(os.path.join(root, "small"), small_files, rng)
    _build_links(root)
    _build_sparse(os.path.join(root, "sparse.img"))
    _build_names(os.path.join(root, "names"))
    _build_modes_and_owners(root)
    _build_xattrs(root)
    os.mkfifo(os.path.join(root, "special", "fifo"))
    _set_times(root)


def _write(path: str, data: bytes = b"", mode: int | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def _build_nested(root: str) -> None:
    _write(os.path.join(root, "nested", "l1", "l2", "l3", "l4", "deep.txt"), b"deep\n" * 100)
    _write(os.path.join(root, "nested", "l1", "l2", "mid.txt"), b"middle\n")
    os.makedirs(os.path.join(root, "nested", "l1", "empty"))
    os.makedirs(os.path.join(root, "empty_dir"))
    os.makedirs(os.path.join(root, "special"))
    _write(os.path.join(root, "empty_file"))


def _write_big(path: str, mib: int, rng: random.Random) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rng.randbytes(MIB))


def _build_small(root: str, count: int, rng: random.Random) -> None:
    """``count`` files of 0-20 KiB over 50 directories (10 groups of 5), half text-like."""
    text = " ".join(rng.choice(_WORDS) for _ in range(40_000)).encode()
    dirs = [os.path.join(root, f"g{g:02d}", f"h{h}") for g in range(10) for h in range(5)]
    for d in dirs:
        os.makedirs(d)
    for i in range(count):
        size = rng.randrange(0, 20 * 1024 + 1)
        if i % 2:
            start = rng.randrange(0, len(text) - size)
            data, name = text[start : start + size], f"f{i:05d}.txt"
        else:
            data, name = rng.randbytes(size), f"f{i:05d}.bin"
        _write(os.path.join(dirs[i % len(dirs)], name), data)


def _build_links(root: str) -> None:
    links = os.path.join(root, "links")
    os.makedirs(links)
    os.symlink("../nested/l1/l2/mid.txt", os.path.join(links, "relative"))
    os.symlink("/etc/hostname", os.path.join(links, "absolute"))
    os.symlink("does/not/exist", os.path.join(links, "dangling"))
    os.symlink("../nested/l1", os.path.join(links, "to_dir"))
    first = os.path.join(root, "hard", "a")
    _write(first, b"one inode, three names\n" * 50)
    os.makedirs(os.path.join(root, "hard", "sub"))
    os.link(first, os.path.join(root, "hard", "sub", "b"))
    os.link(first, os.path.join(root, "nested", "l1", "c"))


def _build_sparse(path: str) -> None:
    """64 MiB apparent size with three small data regions (start, middle, end)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, 64 * MIB)
        os.pwrite(fd, b"head" * 1024, 0)
        os.pwrite(fd, b"middle" * 1000, 10 * MIB + 123)
        os.pwrite(fd, b"tail" * 1024, 64 * MIB - 4096)
    finally:
        os.close(fd)


def _build_names(root: str) -> None:
    for name in ("with space.txt", UNICODE_NAME, NEWLINE_NAME, BAD_NAME, "-leading-dash", LONG_NAME):
        _write(os.path.join(root, name), f"file named {name!r}\n".encode("utf-8", "surrogateescape"))
    os.makedirs(os.path.join(root, "dir " + UNICODE_NAME))
    _write(os.path.join(root, "dir " + UNICODE_NAME, BAD_NAME), b"inside\n")


def _build_modes_and_owners(root: str) -> None:
    modes = os.path.join(root, "modes")
    _write(os.path.join(modes, "private"), b"secret\n", 0o600)
    _write(os.path.join(modes, "exec"), b"#!/bin/sh\necho hi\n", 0o755)
    _write(os.path.join(modes, "none"), b"no access\n", 0o000)
    os.makedirs(os.path.join(modes, "dir755"))
    os.chmod(os.path.join(modes, "dir755"), 0o755)
    os.makedirs(os.path.join(modes, "setgid_dir"))
    os.chmod(os.path.join(modes, "setgid_dir"), 0o2775)
    owners = os.path.join(root, "owners")
    _write(os.path.join(owners, "u1234"), b"owned\n")
    _write(os.path.join(owners, "setuid"), b"#!/bin/sh\n")
    os.makedirs(os.path.join(owners, "dir"))
    os.symlink("u1234", os.path.join(owners, "link"))
    if os.geteuid() == 0:
        for name in ("u1234", "setuid", "dir", "link"):
            os.chown(os.path.join(owners, name), OWNER_UID, OWNER_GID, follow_symlinks=False)
    os.chmod(os.path.join(owners, "setuid"), 0o4755)


def xattrs_supported(path: str) -> bool:
    """Whether the file system at ``path`` (a directory) stores ``user.*`` xattrs."""
    probe = os.path.join(path, ".xattr-probe")
    _write(probe)
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


def _build_xattrs(root: str) -> None:
    if not xattrs_supported(root):
        return
    os.setxattr(os.path.join(root, "nested", "l1", "l2", "mid.txt"), "user.comment", b"hello xattr")
    os.setxattr(os.path.join(root, "nested", "l1", "l2", "mid.txt"), "user.binary", bytes(range(256)))
    os.setxattr(os.path.join(root, "nested", "l1"), "user.tag", b"a directory")


def _set_times(root: str) -> None:
    """Give every entry a fixed mtime derived from its path, children before directories."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            mtime = BASE_MTIME_NS + zlib.crc32(os.fsencode(rel)) * 1_000 + 7
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    hardlinked = os.path.join(root, "hard", "a")  # set last: its names share one inode
    os.utime(hardlinked, ns=(BASE_MTIME_NS, BASE_MTIME_NS))


# --- snapshots ---------------------------------------------------------------------------


def snapshot_tree(root: str, *, hash_content: bool = True) -> dict[str, dict]:
    """Map each path under ``root`` (``/``-separated, root excluded) to its metadata."""
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
    return tree if isinstance(tree, dict) else snapshot_tree(os.fspath(tree))


def tree_differences(expected: str | dict, actual: str | dict, *, check_sparse: bool = True) -> list[str]:
    """Human-readable differences between two trees or snapshots (empty if equal)."""
    want, got = _as_snapshot(expected), _as_snapshot(actual)
    problems = [f"missing: {p!r}" for p in sorted(want.keys() - got.keys())]
    problems += [f"unexpected: {p!r}" for p in sorted(got.keys() - want.keys())]
    for path in sorted(want.keys() & got.keys()):
        a, b = want[path], got[path]
        for field in FIELDS:
            if a[field] != b[field]:
                problems.append(f"{path!r}: {field} expected {_show(field, a[field])}, got {_show(field, b[field])}")
        if check_sparse and _is_sparse(a) and b["blocks"] * 512 > a["blocks"] * 512 + SPARSE_SLACK:
            problems.append(f"{path!r}: not sparse ({b['blocks']} blocks, source {a['blocks']})")
    return problems


def _is_sparse(record: dict) -> bool:
    return record["type"] == "file" and record["blocks"] * 512 < record["size"]


def _show(field: str, value: object) -> str:
    text = oct(value) if field == "mode" and isinstance(value, int) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def assert_trees_equal(expected: str | dict, actual: str | dict, *, check_sparse: bool = True) -> None:
    """Fail with the first 20 differences if the two trees (or snapshots) differ."""
    problems = tree_differences(expected, actual, check_sparse=check_sparse)
    if problems:
        listed = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(f"trees differ in {len(problems)} place(s):\n  {listed}{more}")
