"""Converters for attrs fields, as Python functions.

attrs reads the signature of a field's converter when it makes the class.  For a
built-in such as ``tuple`` or ``float`` that means parsing its text signature with
``tokenize``, whose first use compiles a large regular expression: the converters of
the records a command imports cost a few milliseconds of every start-up.  A Python
function's signature is read directly.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["to_dict", "to_float", "to_int", "to_tuple"]


def to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def to_float(value: Any) -> float:
    return float(value)


def to_int(value: Any) -> int:
    return int(value)


def to_dict(value: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    return dict(value)
