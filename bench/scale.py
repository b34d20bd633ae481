"""Many small files for the scale run: ``count`` files of 64-2,048 bytes of seeded text.

The files go 1,000 to a folder (``d00000/f00000000.txt`` ...).  Sizes and offsets into
one text pool are drawn for all files at once, and each file is written with a single
``os.open``/``os.write``/``os.close``, so a million files take about a minute, not ten.
"""

from __future__ import annotations

import os

import numpy as np

from bench.corpus import _text_pool

__all__ = ["generate_small_files"]

PER_FOLDER = 1000


def generate_small_files(root: str, count: int, seed: int = 3) -> int:
    """Write ``count`` small files under ``root``; returns the bytes written."""
    rng = np.random.Generator(np.random.PCG64([seed, 7]))
    pool = _text_pool(rng)
    sizes = rng.integers(64, 2049, size=count).tolist()
    starts = rng.integers(0, len(pool) - 2048, size=count).tolist()
    view = memoryview(pool)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    folder = root
    for i in range(count):
        if i % PER_FOLDER == 0:
            folder = os.path.join(root, f"d{i // PER_FOLDER:05d}")
            os.makedirs(folder)
        fd = os.open(os.path.join(folder, f"f{i:08d}.txt"), flags, 0o644)
        try:
            os.write(fd, view[starts[i]:starts[i] + sizes[i]])
        finally:
            os.close(fd)
    return sum(sizes)
