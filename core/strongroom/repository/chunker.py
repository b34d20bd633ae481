"""Content-defined chunking of files and streams (FastCDC 2020, via pyfastcdc).

:class:`ChunkerParams` are a vault setting fixed at creation: ``min_size``,
``avg_size`` (the wanted mean chunk size), ``max_size`` and the gear ``seed``.  Chunk
boundaries are a pure function of those parameters and the content, so the same bytes
always cut the same way in one vault, and an edit only changes the chunks around it.
The seed changes the gear table, so vaults with different seeds cut differently (chunk
sizes then reveal less about content).

The seed is 64 bits (a new vault draws one at random; vaults made before format 2 have
seeds below 2**31, kept as they are: changing a vault's seed would move every boundary
and defeat deduplication against its earlier points).  pyfastcdc XORs its seed into
the gear table and takes values below 2**63, so the top bit is dropped
(:meth:`ChunkerParams.gear_seed`); that loses nothing, because FastCDC's cut masks read
hash bits below 49 only (below 48 for the default sizes: measured), and hash bit ``k``
depends on seed bits ``0..k``: higher seed bits never move a boundary.  The seed is
therefore worth at most 48-49 bits whatever its width, and, being
XORed into a hash that is linear in it, it can be recovered from enough observed
boundaries of known content (Truong et al., "Breaking and Fixing Content-Defined
Chunking", CCS 2025).  It hides chunk sizes from casual inspection only; what keeps
them from someone with the storage is format 2, which neither shows blob boundaries
inside packs nor exact sizes (see :mod:`.envelope`).

pyfastcdc's ``avg_size`` argument is not the mean chunk size: with its cut-point
skipping and normalised chunking the mean is larger (roughly ``avg + min`` for the
library defaults).  :func:`fastcdc_arguments` therefore derives the arguments from the
parameters with a closed-form model of the cut process: no cut before ``min``; a cut
probability of ``2**-(b+nc)`` per byte up to the centre point (the ``avg`` argument),
``2**-(b-nc)`` after it, where ``b = round(log2(avg))`` and ``nc`` is the normalisation
level; a forced cut at ``max``.  For ``nc`` = 1, 2, 3 in turn it searches the centre (in
steps of ``avg_size / 256`` rounded down to a power of two, at least 64 bytes: 4 KiB for
the defaults) whose modelled mean is nearest ``avg_size`` and takes the first ``nc`` that
comes within 1 %, else the nearest overall.  The model matches measurements on random
data within 2-3 %; for the defaults (512 KiB / 1 MiB / 4 MiB) it picks ``nc = 2`` and a
centre of 796 KiB (measured mean 0.98-1.01 MiB over 200 MB of random data).  This
mapping is part of the vault format in the sense that changing it would change every
boundary (and hurt deduplication with earlier points, never correctness).

``zero_run`` (a vault setting since it was added: new vaults 64 KiB, vaults whose
settings do not name it 0) cuts runs of at least that many zero bytes out of the
content-defined chunks, as pieces of ``max_size`` zero bytes (see :meth:`Chunker.chunks`):
holes of sparse files and disk images then deduplicate, and an edit beside one changes
only the chunks of the data around it.  It is recorded with the other parameters, so a
vault keeps the boundaries it always had.

:meth:`Chunker.chunks` reads a stream (``readinto`` preferred, else ``read``) and yields
memoryviews into one reused buffer: **each view is valid only until the next one is
produced** (copy it with ``bytes(view)`` to keep it).  An empty stream yields nothing; a
stream shorter than ``min_size`` is one chunk.  A Chunker may be shared by threads (each
call builds its own cutter), and the GIL is released while cutting.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from ..bulkcopy import move_within

if TYPE_CHECKING:
    from pyfastcdc.cy import FastCDC

__all__ = ["ZERO_RUN", "Chunker", "ChunkerParams", "fastcdc_arguments"]

_KIB = 1024
_MIB = 1024 * 1024

#: The zero runs new vaults cut out of their chunks: at least 64 KiB of zero bytes.
ZERO_RUN = 64 * _KIB

# Bounds of pyfastcdc's arguments.
_MIN_RANGE = (64, 1 * _MIB)
_AVG_RANGE = (256, 4 * _MIB)
_MAX_RANGE = (1024, 16 * _MIB)


def _check_params(instance: ChunkerParams, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")


@attrs.frozen
class ChunkerParams:
    """Chunk size bounds (bytes) and gear seed (64 bits); fixed for a vault at creation."""

    @staticmethod
    def new_seed() -> int:
        """A random 64-bit seed for a new vault (one whose gear seed is not 0, which
        pyfastcdc takes for "no seed")."""
        while True:
            seed = secrets.randbits(64)
            if seed & (2**63 - 1):
                return seed

    min_size: int = attrs.field(default=512 * _KIB, validator=_check_params)
    avg_size: int = attrs.field(default=1 * _MIB, validator=_check_params)
    max_size: int = attrs.field(default=4 * _MIB, validator=_check_params)
    seed: int = attrs.field(default=0, validator=_check_params)
    #: Runs of at least this many zero bytes are cut out of the content-defined chunks
    #: (0: not; see :meth:`Chunker.chunks`).  New vaults: :data:`ZERO_RUN` (at most
    #: ``min_size``); a vault whose settings do not name it (made before it existed): 0.
    zero_run: int = attrs.field(validator=_check_params)

    @zero_run.default
    def _zero_run_default(self) -> int:
        return min(ZERO_RUN, self.min_size)

    def __attrs_post_init__(self) -> None:
        if not _MIN_RANGE[0] <= self.min_size <= _MIN_RANGE[1]:
            raise ValueError(f"min_size must be within {_MIN_RANGE}, got {self.min_size}")
        if not _MAX_RANGE[0] <= self.max_size <= _MAX_RANGE[1]:
            raise ValueError(f"max_size must be within {_MAX_RANGE}, got {self.max_size}")
        if not self.min_size < self.avg_size < self.max_size:
            raise ValueError(
                f"need min_size < avg_size < max_size, got {self.min_size}, "
                f"{self.avg_size}, {self.max_size}"
            )
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be within [0, 2**64), got {self.seed}")
        if self.zero_run and not _MIN_RANGE[0] <= self.zero_run <= self.min_size:
            raise ValueError(f"zero_run must be 0 or within [{_MIN_RANGE[0]}, min_size], got {self.zero_run}")

    @property
    def gear_seed(self) -> int:
        """The seed as pyfastcdc takes it (below 2**63): the low 63 bits."""
        return self.seed & (2**63 - 1)

    def to_dict(self) -> dict[str, int]:
        """The parameters as settings store them (``zero_run`` only when it is set)."""
        data = attrs.asdict(self)
        if not self.zero_run:
            del data["zero_run"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkerParams:
        """The parameters of stored settings; without ``zero_run``, zero runs are not cut
        (the vault was made before it existed: its boundaries stay as they were)."""
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown chunker parameters: {sorted(unknown)}")
        return cls(**{"zero_run": 0, **data})


def _modelled_mean(min_size: int, max_size: int, centre: int, nc: int) -> float:
    bits = math.floor(math.log2(centre) + 0.5)
    p_small = 2.0 ** -(bits + nc)
    p_large = 2.0 ** -(bits - nc)
    before = centre - min_size
    survive = math.exp(-before * p_small)
    after = (1 - math.exp(-(max_size - centre) * p_large)) / p_large
    return min_size + (1 - survive) / p_small + survive * after


@lru_cache(maxsize=32)
def fastcdc_arguments(params: ChunkerParams) -> tuple[int, int]:
    """The ``(avg_size, normalized_chunking)`` to give pyfastcdc for ``params``."""
    low = max(params.min_size, _AVG_RANGE[0])
    high = min(params.max_size, _AVG_RANGE[1])
    step = 2 ** max(6, params.avg_size.bit_length() - 9)
    centres = list(range(-(-low // step) * step, high + 1, step)) or [low]
    best: tuple[float, int, int] | None = None
    for nc in (1, 2, 3):
        err, centre = min(
            (abs(_modelled_mean(params.min_size, params.max_size, c, nc) - params.avg_size), c)
            for c in centres
        )
        if err <= 0.01 * params.avg_size:
            return centre, nc
        if best is None or err < best[0]:
            best = (err, centre, nc)
    assert best is not None
    return best[1], best[2]


class Chunker:
    """Cuts streams into content-defined chunks according to :class:`ChunkerParams`."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params
        self._avg_arg, self._nc = fastcdc_arguments(params)

    def __repr__(self) -> str:
        return f"Chunker({self.params!r})"

    def _cutter(self) -> FastCDC:
        from pyfastcdc.cy import FastCDC  # imported by the first stream cut, not by every vault open

        return FastCDC(
            self._avg_arg,
            min_size=self.params.min_size,
            max_size=self.params.max_size,
            normalized_chunking=self._nc,
            seed=self.params.gear_seed,
        )

    def chunks(self, stream: BinaryIO | Any) -> Iterator[memoryview]:
        """Yield the chunks of ``stream``; each view is valid only until the next one.

        The stream is read into a window of twice the maximum chunk size, kept per thread
        (pyfastcdc's own stream cutter allocates a new one for every stream: 8 MiB of
        fresh pages per file for the defaults).  A chunk is cut in the window only while
        at least ``max_size`` bytes follow its start (``max_size + zero_run`` when zero
        runs are cut), or at the end of the stream: a cut looks at most that far ahead, so
        boundaries never depend on how the stream was read.  Without ``zero_run`` they
        are exactly pyfastcdc's stream cutter's.

        With ``zero_run`` (new vaults), a run of at least ``zero_run`` zero bytes is cut
        out of the content-defined chunks: the content before it ends a chunk where the
        run starts, and the run is cut into pieces of ``max_size`` zero bytes (the last one
        shorter), which every sparse file, disk image or preallocated file shares.  An
        edit next to a hole then changes the chunks of the data around it only, not a
        whole chunk spanning the hole (measured on disk-image-like files with 64 KiB holes:
        the data a 2 % edit adds falls from 123 to 31 MiB).  A stream that lists the
        ranges of its last read that it filled in as zero bytes in ``zeros`` (a sparse
        file's holes, :class:`~strongroom.engine.holeread.HoleSkippingReader`) spares
        the search for runs in those.
        """
        params = self.params
        max_size, zero_run = params.max_size, params.zero_run
        look = max_size + zero_run
        capacity = -(-2 * max_size // 8) * 8
        window = getattr(_windows, "free", None)
        _windows.free = None  # a second stream in this thread meanwhile gets its own
        if window is None or len(window) != capacity:
            window = bytearray(capacity)
        try:
            view = memoryview(window)
            zeros = _zero_runs(window, zero_run) if zero_run else None
            fill = _filler(stream)
            # a stream that says which bytes it filled in as zero (a sparse file's holes)
            filled = zeros is not None and isinstance(getattr(stream, "zeros", None), list)
            cutter = self._cutter()
            start = end = 0
            eof = False
            in_run = False  # the last chunk was a max_size piece of a zero run
            while True:
                if not eof and end - start < look:
                    if start:
                        move_within(window, 0, start, end)
                        if zeros is not None:
                            zeros.moved(start)
                        start, end = 0, end - start
                    while end < capacity:
                        n = fill(view[end:capacity])
                        if not n:
                            eof = True
                            break
                        if filled:
                            for a, b in stream.zeros:
                                zeros.note_zeros(end + a, end + b)
                        end += n
                if start == end:
                    return
                if zeros is None:
                    for chunk in cutter.cut_buf(view[start:end]):
                        if not eof and end - start < max_size:
                            break  # this cut could depend on where the window ends: read more first
                        length = chunk.length
                        yield view[start : start + length]
                        start += length
                    continue
                run = zeros.leading(start, min(end, start + max_size))
                if run >= zero_run or (run and in_run):
                    in_run = run == max_size
                    yield view[start : start + run]
                    start += run
                    continue
                in_run = False
                limit = zeros.next_run(start, min(end, start + max_size), end)
                length = next(iter(cutter.cut_buf(view[start:limit]))).length
                yield view[start : start + length]
                start += length
        finally:
            _windows.free = window


def _zero_runs(window: bytearray, zero_run: int):
    from .zeroruns import ZeroRuns  # ctypes and libc: looked up by the first cut that looks for zero runs

    return ZeroRuns(window, zero_run)


#: A free read window per thread (see :meth:`Chunker.chunks`).
_windows = threading.local()


def _filler(stream: BinaryIO | Any):
    """``fill(view)``: bytes of ``stream`` read into ``view``, their count (0 at the end)."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return lambda view: readinto(view) or 0

    def fill(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return fill
