"""Sizes for people: ``human_size(1536)`` is ``1.5 KiB`` (binary units, one decimal)."""

from __future__ import annotations

__all__ = ["human_size"]


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
