"""A base class for read-only, seekable binary readers of known size.

Subclasses set ``self.size`` and implement ``readinto``, reading at ``self._pos`` and
advancing it.  Seeking past the end is allowed (reads there return nothing); a
negative position raises ValueError, as it does for Python's own files.
"""

from __future__ import annotations

import io


class SeekableReader(io.RawIOBase):
    size: int = 0
    _pos: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            base = 0
        elif whence == io.SEEK_CUR:
            base = self._pos
        elif whence == io.SEEK_END:
            base = self.size
        else:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos
