"""Point-in-time restore of a physical point (being written)."""

from __future__ import annotations

from strongroom import UsageError


def restore_physical(ctx, target, paths, options):
    raise UsageError(message="restoring a physical point is not available yet")
