"""Durations and dates as people type them: ``6h``, ``30d``, ``2027-01-31``.

- :func:`parse_duration`: ``90s``, ``30m``, ``6h``, ``2d``, ``1w`` or a plain number of
  seconds, to seconds;
- :func:`parse_until`: the end of an on-demand point's retention, given as a duration
  from ``now`` (``30d``), a date (kept through that whole day, in ``tz``), or a date and
  time (in ``tz`` unless it has its own offset).
"""

from __future__ import annotations

import datetime as dt
import re

from ..errors import InvalidPolicy, InvalidRetention

__all__ = ["format_duration", "parse_duration", "parse_until"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)", re.IGNORECASE)


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``; InvalidPolicy if it is not a duration."""
    match = _DURATION.fullmatch(str(text).strip())
    if not match:
        raise InvalidPolicy(reason=f"invalid {what} {text!r}: use a number with s, m, h, d or w (6h, 30d)")
    return float(match[1]) * _UNITS[(match[2] or "s").lower()]


def format_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_until(text: str, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The moment ``text`` stands for (see the module docstring); InvalidRetention if none."""
    text = text.strip()
    if _DURATION.fullmatch(text) and text[-1:].isalpha():
        return now + dt.timedelta(seconds=parse_duration(text))
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRetention(reason=f"cannot read {text!r} as a date (2027-01-31), a date and time or a duration (30d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt.timezone.utc)
