"""Hypothesis strategies that damage bytes and JSON documents.

:func:`damaged_bytes` draws one of: flipped bits, a truncation, an extension, bytes
replaced, a slice deleted or inserted; positions favour the tail (``tail`` bytes), where
packs keep their trailer and footer.  :func:`damaged_json` draws one to three structural
changes of a decoded JSON document - a value replaced by one of another type (huge
numbers, NaN and infinities, text that is almost an id or a time, nested containers), a
key deleted or added, a list element duplicated or dropped, a value nudged (a number off
by one, a string one character short), or the whole document replaced - and returns
the document encoded again as JSON (which it still is: a buggy writer's, or a future
version's).  Each drawn value carries a short description for reports.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import attrs
from hypothesis import strategies as st


@attrs.frozen
class Mutation:
    """Damaged bytes and what was done to them."""

    data: bytes
    how: str

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 80 else self.data[:40] + b"..." + self.data[-40:]
        return f"Mutation({self.how}, {len(self.data)} bytes: {shown!r})"


def _position(draw: Any, size: int, tail: int) -> int:
    if size <= 1:
        return 0
    if tail and draw(st.booleans()):
        return draw(st.integers(max(0, size - tail), size - 1))
    return draw(st.integers(0, size - 1))


@st.composite
def damaged_bytes(draw: Any, original: bytes, tail: int = 0) -> Mutation:
    """``original`` damaged in one of the ways of the module docstring."""
    data = bytearray(original)
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "substitute", "delete", "insert"]))
    if kind == "flip" or not data:
        count = draw(st.integers(1, 8))
        spots = []
        for _ in range(count if data else 0):
            pos = _position(draw, len(data), tail)
            bit = draw(st.integers(0, 7))
            data[pos] ^= 1 << bit
            spots.append(f"{pos}.{bit}")
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            return Mutation(bytes(data), "bytes given to an empty object")
        return Mutation(bytes(data), f"bits flipped at {','.join(spots)}")
    if kind == "truncate":
        size = draw(st.integers(0, len(data) - 1))
        return Mutation(bytes(data[:size]), f"truncated to {size} bytes")
    if kind == "extend":
        extra = draw(st.one_of(st.binary(min_size=1, max_size=64), st.just(bytes(data[-8:])),
                               st.just(b"\x00" * 4096)))
        return Mutation(bytes(data) + extra, f"{len(extra)} bytes appended")
    if kind == "substitute":
        count = draw(st.integers(1, 8))
        for _ in range(count):
            data[_position(draw, len(data), tail)] = draw(st.integers(0, 255))
        return Mutation(bytes(data), f"{count} byte(s) replaced")
    start = _position(draw, len(data), tail)
    if kind == "delete":
        length = draw(st.integers(1, max(1, min(64, len(data) - start))))
        del data[start : start + length]
        return Mutation(bytes(data), f"{length} bytes deleted at {start}")
    inserted = draw(st.binary(min_size=1, max_size=32))
    data[start:start] = inserted
    return Mutation(bytes(data), f"{len(inserted)} bytes inserted at {start}")


#: Values of every JSON type that a writer might get wrong, and some near misses.
SPECIAL_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30),
    10**400, 0.5, -0.0, 1e308, float("inf"), float("-inf"), float("nan"),
    "", "x", "0" * 64, "0" * 63, "g" * 64, "0" * 32, "../x", "/", ".", "..", "a/b", "\x00", "\udcff",
    "2020-01-01T00:00:00", "2020-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+05:00", "not a time", "AAAA", "====", "\u00e9" * 3,
    [], {}, [None], [[]], {"": None}, ["x"], [1, 2], {"kind": "daily"},
]

values = st.one_of(
    st.sampled_from(SPECIAL_VALUES).map(copy.deepcopy),  # a copy: later changes must not alter the list
    st.integers(),
    st.floats(),
    st.text(max_size=24),
    st.lists(st.one_of(st.integers(), st.text(max_size=4), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
)


def _places(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``doc`` (a path is a tuple of keys and indices)."""
    found = []
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return found
    for key, value in items:
        found.append(path + (key,))
        found.extend(_places(value, path + (key,)))
    return found


def _container(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _nudge(draw: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + draw(st.sampled_from([1, -1, -value - 1, 2**40, -(2**40), 2**64]))
    if isinstance(value, float):
        return value * draw(st.sampled_from([-1.0, 1e300, 0.0, float("nan")]))
    if isinstance(value, str):
        how = draw(st.sampled_from(["short", "long", "upper", "nonhex", "empty"]))
        if how == "short":
            return value[:-1]
        if how == "long":
            return value + draw(st.sampled_from(["0", "x", "/", "\x00", "Z"]))
        if how == "upper":
            return value.upper()
        if how == "nonhex":
            return ("g" + value[1:]) if value else "g"
        return ""
    return draw(values)


def _mutate_once(draw: Any, doc: Any) -> tuple[Any, str]:
    places = _places(doc)
    if not places or draw(st.integers(0, 15)) == 0:
        return draw(values), "document replaced"
    path = places[draw(st.integers(0, len(places) - 1))]
    parent, key = _container(doc, path), path[-1]
    shown = "/".join(map(str, path))
    op = draw(st.sampled_from(["replace", "delete", "add", "duplicate", "nudge"]))
    if op == "replace":
        parent[key] = draw(values)
        return doc, f"{shown} replaced"
    if op == "delete":
        del parent[key]
        return doc, f"{shown} deleted"
    if op == "add":
        if isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "v2", "extra", "", "name", "chunks"]))] = draw(values)
        else:
            parent.insert(key, draw(values))
        return doc, f"added beside {shown}"
    if op == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = [parent[key], parent[key]]
        return doc, f"{shown} duplicated"
    parent[key] = _nudge(draw, parent[key])
    return doc, f"{shown} nudged"


@st.composite
def damaged_json(draw: Any, document: Any) -> Mutation:
    """``document`` (decoded JSON) with one to three structural changes, encoded again."""
    doc = copy.deepcopy(document)
    hows = []
    for _ in range(draw(st.integers(1, 3))):
        doc, how = _mutate_once(draw, doc)
        hows.append(how)
    try:
        data = json.dumps(doc, separators=(",", ":")).encode()
    except ValueError:  # an integer too long for str(): JSON text cannot carry it either
        data = b'{"v":' + b"9" * 5000 + b"}"
    return Mutation(data, "; ".join(hows))


def deeply_nested(depth: int = 100_000) -> Mutation:
    """Valid JSON nested deeper than Python's parser recurses."""
    return Mutation(b"[" * depth + b"]" * depth, f"a list nested {depth} deep")
