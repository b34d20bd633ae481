"""Small file trees for conformance tests: build one from a seed, compare two.

:func:`make_tree` writes a deterministic tree with what a storage backend must carry
intact: nested folders, an empty file and an empty folder, text, random bytes spanning
several chunks, a symlink, odd but allowed names.  :func:`tree_digest` records each
path's type, mode, size and content hash (or link target); :func:`assert_same_tree`
compares two trees by their digests and names every difference.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat

__all__ = ["assert_same_tree", "make_tree", "tree_digest"]

MIB = 1 << 20


def make_tree(root: str, *, seed: int = 1, big_mib: int = 3, small_files: int = 20) -> str:
    """Write the sample tree under ``root`` (created if needed); returns ``root``."""
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


def tree_digest(root: str) -> dict[str, tuple]:
    """``{relative path: (type, mode, size, sha256 or link target)}`` of ``root``'s contents."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, 0, "")
            else:
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(MIB), b""):
                        h.update(block)
                out[rel] = ("file", mode, st.st_size, h.hexdigest())
    return out


def assert_same_tree(expected: str | dict, actual: str | dict) -> None:
    """Fail naming every path that differs between two trees (or digests)."""
    want = expected if isinstance(expected, dict) else tree_digest(expected)
    got = actual if isinstance(actual, dict) else tree_digest(actual)
    problems = [f"missing: {p}" for p in sorted(set(want) - set(got))]
    problems += [f"unexpected: {p}" for p in sorted(set(got) - set(want))]
    problems += [f"differs: {p}: {want[p]} != {got[p]}" for p in sorted(set(want) & set(got)) if want[p] != got[p]]
    assert not problems, "trees differ:\n" + "\n".join(problems[:20])
