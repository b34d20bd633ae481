"""Sample file trees to back up in tests: deterministic, built from a seed.

:func:`build_sample_tree` makes the full tree, with everything a backup of files must
preserve: nesting, empty folders and files, a big pseudo-random file, many small files
(compressible text and random bytes), symlinks of every kind (relative, absolute,
dangling, to a folder), a group of three hardlinks, a sparse file, ``user.*`` xattrs
(where the file system stores them), awkward names (:data:`UNICODE_NAME`,
:data:`NEWLINE_NAME`, undecodable :data:`BAD_NAME`, :data:`LONG_NAME`...), a fifo,
unusual modes (0o000, setuid, setgid), foreign owners (:data:`OWNER_UID`,
:data:`OWNER_GID`; only when run as root) and mtimes set to fixed nanosecond values.
Two builds with the same arguments compare equal with
:func:`~strongroom.testing.assert_trees_equal`.

:func:`make_tree` makes a small tree that any storage backend must carry intact (no
special files, owners or xattrs): nested folders, an empty file and folder, text,
random bytes spanning several chunks, a symlink, odd but portable names.

Both write only under the ``root`` they are given.
"""

from __future__ import annotations

import os
import random
import zlib

__all__ = [
    "BAD_NAME", "LONG_NAME", "NEWLINE_NAME", "OWNER_GID", "OWNER_UID", "UNICODE_NAME",
    "build_sample_tree", "make_tree", "xattrs_supported",
]

MIB = 1 << 20
BASE_MTIME_NS = 1_500_000_000_123_456_789
#: the owner of the ``owners/`` entries when the tree is built as root
OWNER_UID, OWNER_GID = 1234, 5678
#: a name that is not valid UTF-8 (``os.fsdecode`` of the raw bytes)
BAD_NAME = os.fsdecode(b"bad\xff name")
NEWLINE_NAME = "new\nline"
UNICODE_NAME = "ünïcödé ☃"
#: a name of 200 characters
LONG_NAME = "long-" + "x" * 195
_WORDS = "alpha beta gamma delta vault chunk backup restore point policy item pack index".split()


# --- the full sample tree ------------------------------------------------------------------


def build_sample_tree(root: str, *, big_file_mib: int = 200, small_files: int = 5000, seed: int = 1) -> str:
    """Create the sample tree under ``root`` (created if missing, expected empty); returns ``root``."""
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
    return root


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


# --- the small portable tree ------------------------------------------------------------


def make_tree(root: str, *, seed: int = 1, big_mib: int = 3, small_files: int = 20) -> str:
    """Write the small portable tree under ``root`` (created if needed); returns ``root``."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "docs", "deep", "deeper"), exist_ok=True)
    os.makedirs(os.path.join(root, "empty-dir"), exist_ok=True)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(rng.randbytes(big_mib * MIB))
    with open(os.path.join(root, "empty"), "wb"):
        pass
    words = "vault pack index chunk point restore backup item policy key".split()
    for i in range(small_files):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(10, 2000)))
        with open(os.path.join(root, "docs", f"note-{i:03}.txt"), "w") as f:
            f.write(text)
    with open(os.path.join(root, "docs", "deep", "deeper", "random.dat"), "wb") as f:
        f.write(rng.randbytes(200_000))
    with open(os.path.join(root, "docs", "spaces and ünïcode.txt"), "w") as f:
        f.write("odd name\n")
    os.symlink("docs/note-000.txt", os.path.join(root, "link"))
    os.chmod(os.path.join(root, "docs", "note-001.txt"), 0o600)
    return root
