"""Functions of the C library, called through ctypes (which releases the GIL during the call).

They are looked up among the running process's own symbols, the C library's among them:
no search for the library (``ctypes.util.find_library`` runs ldconfig, about 17 ms).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

__all__ = ["libc_function"]


@functools.cache
def libc_function(name: str, restype: Any, *argtypes: Any) -> Any | None:
    """The C library's function ``name`` with these result and argument types (looked up
    once per process), or None where the C library has no such function."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.restype = restype
    function.argtypes = argtypes
    return function
