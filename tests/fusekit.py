"""Whether the tests of ``strongroom mount`` can use a real FUSE mount here.

A test that mounts calls :func:`require_fuse` first: it is skipped, with the reason, where
``/dev/fuse``, mfusepy (or libfuse) or fusermount3 is missing, and fails under CI when
``/dev/fuse`` is there but the rest is not.  A mount that does not come up is
:func:`cannot_mount`: a failure under CI, a skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from strongroom.testing import unavailable


def fuse_reason() -> str | None:
    """Why FUSE cannot be used here (None: it can)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy or libfuse is not installed ({exc})"
    if not shutil.which("fusermount3"):
        return "fusermount3 (apt package fuse3) is not installed"
    return None


def require_fuse() -> None:
    """Skip the test where FUSE cannot be used (fail it under CI where /dev/fuse is there)."""
    reason = fuse_reason()
    if reason:
        if os.environ.get("CI") and os.path.exists("/dev/fuse"):
            pytest.fail(f"FUSE is expected under CI: {reason}")
        pytest.skip(reason)


def cannot_mount(stderr: str) -> NoReturn:
    """FUSE is installed but ``strongroom mount`` did not mount (its ``stderr``): fail under CI, skip elsewhere."""
    unavailable(f"FUSE is installed but cannot mount here: {stderr.strip()}")
