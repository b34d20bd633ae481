"""A seeded, deterministic benchmark corpus of mixed data, and a "day of changes".

The same ``size`` and ``seed`` give the same tree, byte for byte, on any machine:

- **40% random binary**: files of 1-64 MiB of incompressible bytes (photos, archives,
  encrypted data), under ``binary/``.
- **30% small text files**: 512 B - 64 KiB of English-like text with line breaks, a
  hundred to a folder, under ``text/`` (source trees, mail, documents: many files,
  compressible, each smaller than a chunk).
- **30% disk-image-like files**: 64-256 MiB images under ``images/``, made of 64 KiB
  extents that are holes (never written: the file is sparse), copies of a few
  recurring blocks (the same library in every VM), or random data with a
  filesystem-like 4 KiB block header (unique content).

:func:`mutate` applies a seeded "day of changes" to a generated corpus: some text files
rewritten, some binary files appended to, some image extents overwritten, a few files
deleted and a few added.

Use it from Python (``generate(root, size, seed)``) or as a command::

    python -m bench.corpus DIR --size 2G --seed 1
    python -m bench.corpus DIR --mutate --seed 2
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import attrs
import numpy as np

__all__ = ["CorpusStats", "generate", "mutate", "parse_size"]

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
EXTENT = 64 * KIB
SHARES = {"binary": 0.40, "text": 0.30, "images": 0.30}
_WORDS = (
    "the of and to in is it that for on with as was be by this are or at from have an not "
    "vault backup restore point policy item chunk pack index key storage retention schedule "
    "server client request response error value table column database snapshot volume disk "
    "file folder user group owner mode time size offset length block extent image system"
).split()


@attrs.frozen
class CorpusStats:
    """What :func:`generate` or :func:`mutate` wrote."""

    files: int
    bytes: int
    by_kind: dict[str, int]


def parse_size(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"64k"`` or a plain number of bytes -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not match:
        raise ValueError(f"not a size: {text!r} (try 2G, 512M, 100000)")
    unit = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1 << 40}[match.group(2).lower()]
    return int(float(match.group(1)) * unit)


def _log_uniform(rng: np.random.Generator, low: int, high: int) -> int:
    return int(np.exp(rng.uniform(np.log(low), np.log(high))))


def _text_pool(rng: np.random.Generator, size: int = 4 * MIB) -> bytes:
    words = rng.choice(np.array(_WORDS, dtype=object), size=size // 5)
    breaks = rng.random(len(words)) < 0.08
    parts = [w + ("\n" if b else " ") for w, b in zip(words, breaks)]
    return "".join(parts).encode()[:size]


def _write_binary(root: str, budget: int, rng: np.random.Generator) -> tuple[int, int]:
    os.makedirs(root, exist_ok=True)
    files = written = 0
    while written < budget:
        size = min(_log_uniform(rng, MIB, 64 * MIB), budget - written)
        with open(os.path.join(root, f"blob-{files:05d}.bin"), "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MIB)
                f.write(rng.bytes(n))
                left -= n
        files += 1
        written += size
    return files, written


def _write_text(root: str, budget: int, rng: np.random.Generator) -> tuple[int, int]:
    pool = _text_pool(rng)
    files = written = 0
    while written < budget:
        size = min(_log_uniform(rng, 512, 64 * KIB), budget - written)
        start = int(rng.integers(0, len(pool) - size))
        folder = os.path.join(root, f"d{files // 100:04d}")
        if files % 100 == 0:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"doc-{files:06d}.txt"), "wb") as f:
            f.write(f"# document {files}\n".encode() + pool[start:start + size])
        files += 1
        written += size
    return files, written


def _image_extent(rng: np.random.Generator, n: int) -> bytes:
    data = bytearray(rng.bytes(EXTENT))
    for block in range(0, EXTENT, 4 * KIB):  # filesystem-like block headers
        data[block:block + 16] = b"SRBLK" + n.to_bytes(4, "little") + block.to_bytes(7, "little")
    return bytes(data)


def _write_image(path: str, size: int, rng: np.random.Generator, common: list[bytes]) -> None:
    with open(path, "wb") as f:
        for n in range(size // EXTENT):
            kind = rng.random()
            if kind < 0.5:
                continue  # a hole
            f.seek(n * EXTENT)
            if kind < 0.7:
                f.write(common[int(rng.integers(0, len(common)))])
            else:
                f.write(_image_extent(rng, n))
        f.truncate(size)


def _write_images(root: str, budget: int, rng: np.random.Generator) -> tuple[int, int]:
    os.makedirs(root, exist_ok=True)
    common = [rng.bytes(EXTENT) for _ in range(32)]
    files = written = 0
    while written < budget:
        size = min(_log_uniform(rng, 64 * MIB, 256 * MIB), budget - written)
        size -= size % EXTENT
        if size <= 0:
            break
        _write_image(os.path.join(root, f"disk-{files:03d}.img"), size, rng, common)
        files += 1
        written += size
    return files, written


def generate(root: str, size: int, seed: int = 1) -> CorpusStats:
    """Write a corpus of about ``size`` bytes (apparent size) under ``root``."""
    if os.path.exists(root) and os.listdir(root):
        raise FileExistsError(f"{root} is not empty")
    os.makedirs(root, exist_ok=True)
    by_kind: dict[str, int] = {}
    total_files = 0
    writers = {"binary": _write_binary, "text": _write_text, "images": _write_images}
    for offset, (kind, share) in enumerate(SHARES.items()):
        rng = np.random.Generator(np.random.PCG64([seed, offset]))
        files, written = writers[kind](os.path.join(root, kind), int(size * share), rng)
        by_kind[kind] = written
        total_files += files
    return CorpusStats(total_files, sum(by_kind.values()), by_kind)


def mutate(root: str, seed: int = 2, fraction: float = 0.02) -> CorpusStats:
    """Apply a "day of changes" touching about ``fraction`` of the files of each kind."""
    rng = np.random.Generator(np.random.PCG64([seed, 99]))
    changed = written = 0
    texts = sorted(os.path.join(d, n) for d, _, ns in os.walk(os.path.join(root, "text")) for n in ns)
    pool = _text_pool(rng, MIB)
    for path in texts:
        roll = rng.random()
        if roll < fraction:
            size = _log_uniform(rng, 512, 64 * KIB)
            start = int(rng.integers(0, len(pool) - size))
            with open(path, "wb") as f:
                f.write(pool[start:start + size])
            changed += 1
            written += size
        elif roll < fraction * 1.25:
            os.unlink(path)
            changed += 1
    binaries = sorted(os.listdir(os.path.join(root, "binary")))
    for name in binaries:
        if rng.random() < fraction * 5:
            extra = int(rng.integers(KIB, 4 * MIB))
            with open(os.path.join(root, "binary", name), "ab") as f:
                f.write(rng.bytes(extra))
            changed += 1
            written += extra
    new = os.path.join(root, "binary", f"new-{seed}.bin")
    with open(new, "wb") as f:
        f.write(rng.bytes(8 * MIB))
    changed += 1
    written += 8 * MIB
    images = sorted(os.listdir(os.path.join(root, "images")))
    for name in images:
        path = os.path.join(root, "images", name)
        extents = os.path.getsize(path) // EXTENT
        with open(path, "r+b") as f:
            for n in rng.choice(extents, size=max(1, int(extents * fraction)), replace=False):
                f.seek(int(n) * EXTENT)
                f.write(rng.bytes(EXTENT))
                written += EXTENT
        changed += 1
    return CorpusStats(changed, written, {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="where to write the corpus (must be empty or missing)")
    parser.add_argument("--size", default="2G", help="apparent size of the corpus (default 2G)")
    parser.add_argument("--seed", type=int, default=1, help="the seed (default 1)")
    parser.add_argument("--mutate", action="store_true", help="apply a day of changes to DIR instead")
    args = parser.parse_args(argv)
    try:
        if args.mutate:
            stats = mutate(args.dir, args.seed)
            print(f"changed {stats.files} files, wrote {stats.bytes / MIB:.1f} MiB")
        else:
            stats = generate(args.dir, parse_size(args.size), args.seed)
            kinds = ", ".join(f"{k} {v / MIB:.0f} MiB" for k, v in stats.by_kind.items())
            print(f"wrote {stats.files} files, {stats.bytes / MIB:.0f} MiB ({kinds}) to {args.dir}")
    except (ValueError, OSError) as exc:
        print(f"bench.corpus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
