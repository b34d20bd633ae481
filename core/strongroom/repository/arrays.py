"""numpy, imported without OpenBLAS's thread pool: every strongroom module that uses
numpy imports it from here (``from .arrays import np``), and a plugin through the public
:func:`strongroom.import_numpy`.

strongroom uses numpy for vectorised searches, sorts and copies, never for linear
algebra.  OpenBLAS, which numpy loads at its import, otherwise starts a thread per CPU:
about 40 ms of wall and CPU per command on 2 cores, and threads that spin beside a busy
restore.  OpenBLAS reads ``OPENBLAS_NUM_THREADS`` once, when it loads, so the setting is
made for the import only and taken back after it: programs that strongroom (or a program
using it as a library) starts later do not inherit it.  A value the user set is left as
it is.  Importing numpy before this module (a program that uses strongroom as a library
may) keeps that program's own settings.
"""

from __future__ import annotations

import os
import sys

__all__ = ["import_numpy", "np"]

_SETTING = "OPENBLAS_NUM_THREADS"


def import_numpy():
    """The numpy module, imported (the first time) without OpenBLAS's thread pool."""
    # the import statement even when numpy is in sys.modules: another thread may be importing it
    ours = "numpy" not in sys.modules and _SETTING not in os.environ
    if ours:
        os.environ[_SETTING] = "1"
    try:
        import numpy
    finally:
        if ours:
            os.environ.pop(_SETTING, None)
    return numpy


def __getattr__(name: str):
    """``np``: numpy, imported at the first ``from .arrays import np`` (not by importing this
    module, which :func:`strongroom.import_numpy`'s lookup does)."""
    if name == "np":
        return import_numpy()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
