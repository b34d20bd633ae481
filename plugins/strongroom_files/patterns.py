"""Glob patterns for ``--exclude`` and ``--include``: compiled once, matched per entry.

:func:`compile_patterns` turns a list of glob patterns into one :data:`Matcher`, a
``matcher(abspath, basename) -> bool`` that the scanner calls for every entry it meets
(one or two regular-expression matches, whatever the number of patterns).  What a
pattern matches is in :func:`compile_patterns`'s docstring.

Refuses: an empty pattern, with ValueError (the workload reports it as an invalid
source).  Nothing here touches the file system.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["Matcher", "compile_patterns"]

#: ``matcher(abspath, basename) -> bool``, as built by :func:`compile_patterns`.
Matcher = Callable[[str, str], bool]


def compile_patterns(patterns: Iterable[str]) -> Matcher:
    """Compile glob patterns into one ``matcher(abspath, basename) -> bool``.

    ``*`` and ``?`` do not match ``/``; ``**`` does, and ``**/`` also matches no
    directory at all (``/a/**/b`` matches ``/a/b``); ``[abc]``/``[!abc]`` are classes.
    A pattern starting with ``/`` matches the whole absolute path; a pattern without
    ``/`` matches the basename (``*.tmp``, ``node_modules``); any other pattern matches
    a tail of the absolute path that starts at a component (``cache/*.bin`` matches
    ``/home/a/cache/x.bin``).  A trailing ``/`` is ignored.  No pattern: never matches.
    """
    anchored: list[str] = []
    names: list[str] = []
    for pattern in patterns:
        body = pattern.rstrip("/") if pattern != "/" else pattern
        if not body:
            raise ValueError(f"empty pattern {pattern!r}")
        if body.startswith("/"):
            anchored.append(_translate(body))
        elif "/" in body:
            anchored.append(".*/" + _translate(body))
        else:
            names.append(_translate(body))
    path_re = _alternation(anchored)
    name_re = _alternation(names)

    def matches(abspath: str, basename: str) -> bool:
        return bool(
            (path_re is not None and path_re.fullmatch(abspath))
            or (name_re is not None and name_re.fullmatch(basename))
        )

    return matches


def _alternation(regexes: list[str]) -> re.Pattern[str] | None:
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL)


def _translate(pattern: str) -> str:
    """The regular expression of one glob pattern (see :func:`compile_patterns`)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            regex, i = _translate_class(pattern, i)
            out.append(regex)
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _translate_class(pattern: str, start: int) -> tuple[str, int]:
    """Translate the ``[...]`` class at ``start``; a ``[`` without its ``]`` is literal."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    j = pattern.find("]", j)
    if j < 0:
        return re.escape("["), start + 1
    body = pattern[start + 1 : j].replace("\\", "\\\\")
    if body.startswith("!"):
        body = "^" + body[1:]
    elif body.startswith("^"):
        body = "\\" + body
    return f"(?!/)[{body}]", j + 1
