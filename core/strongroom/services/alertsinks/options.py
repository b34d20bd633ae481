"""Option values the built-in sinks share: timeouts and yes/no flags (text in, checked)."""

from __future__ import annotations

import math
from typing import Mapping

__all__ = ["DEFAULT_TIMEOUT", "MAX_TIMEOUT", "check_flag", "check_timeout", "flag", "timeout_of"]

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 600.0
_YES = ("yes", "true", "1", "on")
_NO = ("no", "false", "0", "off")


def timeout_of(options: Mapping[str, str]) -> float:
    return float(options.get("timeout", DEFAULT_TIMEOUT))


def check_timeout(options: Mapping[str, str]) -> None:
    """ValueError unless ``timeout`` is absent or a number of seconds in (0, 600]."""
    if "timeout" not in options:
        return
    try:
        value = float(options["timeout"])
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, not {options['timeout']!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ValueError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")


def flag(options: Mapping[str, str], name: str) -> bool:
    return options.get(name, "no").strip().lower() in _YES


def check_flag(options: Mapping[str, str], name: str) -> None:
    if name in options and options[name].strip().lower() not in _YES + _NO:
        raise ValueError(f"{name} must be yes or no, not {options[name]!r}")
