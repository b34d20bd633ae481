"""The C allocator's threshold is really set where the C library is glibc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: mallopt and its thresholds are glibc's; another C library has neither
pytestmark = pytest.mark.skipif(not os.confstr("CS_GNU_LIBC_VERSION"), reason="the C library is not glibc")


def test_the_threshold_is_set_on_glibc():
    """mallopt is found in the running process and accepts the threshold (in a fresh
    interpreter: the setting is made once per process)."""
    code = "from strongroom.allocator import limit_retained_memory as f; print(f(), f())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def test_the_freed_top_kept_is_set_on_glibc():
    """mallopt accepts the trim threshold too (in a fresh interpreter)."""
    code = "from strongroom.allocator import keep_freed_top as f; print(f(4 << 20), f(4 << 20))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
