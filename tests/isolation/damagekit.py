"""Tools for damaging one stored object of a real local vault, and small real file systems.

Objects are damaged where they lie on disk: a point header is ``points/<item>/<point>``,
a status ``point-status/<item>/<point>/<time-id>``; a tree node is a blob inside a pack,
found through the vault's index (pack, offset, length).
"""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from strongroom.repository.pack import pack_name


def flip(path: str, offset: int | None = None) -> None:
    """Flip one bit of the file at ``path`` (its middle byte by default)."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        at = len(data) // 2 if offset is None else offset
        data[at] ^= 0x40
        f.seek(0)
        f.write(data)


def truncate(path: str) -> None:
    """Cut the file at ``path`` to half its length."""
    os.truncate(path, os.path.getsize(path) // 2)


DAMAGE = {"bit flip": flip, "truncation": truncate}


def damage_blob(vault, blob: bytes, how=flip) -> str:
    """Damage the stored copy of ``blob`` (flip a bit in its middle, or cut its pack
    inside it); returns the pack's path."""
    vault.index.load()
    entry = vault.repo.index.lookup(blob)
    assert entry is not None, "the blob is in no pack"
    path = os.path.join(vault.url, pack_name(entry.pack_id))
    if how is flip:
        flip(path, entry.offset + entry.length // 2)
    else:
        os.truncate(path, entry.offset + entry.length // 2)
    return path


def folder_node(vault, point, path: str) -> bytes:
    """The id of the tree node of the folder ``path`` of ``point``."""
    return vault.tree(point).lookup(path).subtree


def rel(path) -> str:
    """Where an absolute source path lives inside a point (and a restore target)."""
    return os.path.abspath(str(path)).lstrip("/")


def write_tree(root, files: dict[str, bytes]) -> None:
    for relpath, data in files.items():
        path = os.path.join(str(root), relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def read_tree(root) -> dict[str, bytes]:
    """Every file under ``root`` by its path relative to it."""
    out = {}
    for folder, _, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, str(root))] = f.read()
    return out


@contextlib.contextmanager
def mounted_tmpfs(path, size: str):
    """A tmpfs of ``size`` at ``path`` (skips the test where mounting is not allowed)."""
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
