"""Memory of strongroom's in-memory index per entry (one entry per stored chunk).

Runs in its own interpreter (``python -m bench.indexmem N``, JSON on stdout) so nothing
else of the benchmark is in the heap.  It makes ``N`` random entries (40 chunks to a
pack: chunks of about 400 KiB in 16 MiB packs), then counts what one ``Index.add`` of
them keeps, three ways:

- ``arrays``: the index's own count (``Index.bytes_per_entry``: numpy ``nbytes`` of its
  tables plus the interned pack ids);
- ``tracemalloc``: bytes still allocated after ``add`` (numpy reports its buffers to
  tracemalloc), less those allocated before;
- ``rss``: growth of the resident set across ``add`` into a second, untraced index,
  with ``malloc_trim`` before each reading so memory freed by ``add``'s temporaries is
  returned and not counted.

The largest of the three is the figure the results report.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import random
import sys
import tracemalloc

from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.repository.index import Index
from strongroom.repository.pack import IndexEntry


def _rss() -> int:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(count: int, per_pack: int = 40) -> dict[str, float]:
    rng = random.Random(1)
    packs = [rng.randbytes(16).hex() for _ in range(count // per_pack + 1)]
    entries = [IndexEntry(rng.randbytes(32), KIND_DATA if i % 64 else KIND_TREE, packs[i // per_pack],
                          (i % per_pack) * 420_000, rng.randrange(1_000, 1_100_000),
                          rng.randrange(1_000, 1_048_576))
               for i in range(count)]
    del packs
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    index = Index()
    index.add(entries)
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    arrays = index.bytes_per_entry()
    assert len(index) == count
    del index
    rss_before = _rss()
    index = Index()
    index.add(entries)
    rss = _rss() - rss_before
    result = {"entries": count, "arrays": arrays, "tracemalloc": traced / count, "rss": rss / count}
    result["reported"] = max(result["arrays"], result["tracemalloc"], result["rss"])
    return result


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
