"""``vault info``'s human report: :meth:`strongroom.vault.Vault.info`'s document as
labelled lines (``label:  value``), every value readable text.

It promises: times with their offset (:func:`.output.short_time`), sizes in binary units,
nested documents (chunker, redundancy, replication) in words or ``key=value`` pairs,
never a Python repr.  Keys it does not know (added later to ``info()``) are still shown,
flattened the same way.  ``vault info --json`` prints the document itself.
"""

from __future__ import annotations

from typing import Any

from .output import human_size, short_time

_WIDTH = 13


def info_lines(data: dict[str, Any]) -> list[str]:
    """The report's lines, in the document's order."""
    lines = []
    for key, value in data.items():
        shown = _SHOW.get(key, _plain)(value)
        lines.append(f"{key.replace('_', ' ') + ':':{_WIDTH}} {shown}")
    return lines


def _plain(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items() if v not in (None, "", [], {})) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _features(value: list) -> str:
    return ", ".join(map(str, value)) if value else "none"


def _chunker(value: dict) -> str:
    sizes = [(label, value.get(key)) for label, key in (("min", "min_size"), ("average", "avg_size"),
                                                          ("max", "max_size"))]
    shown = [f"{label} {human_size(n)}" for label, n in sizes if isinstance(n, int)]
    if shown and isinstance(value.get("zero_run"), int) and value["zero_run"]:
        shown.append(f"zero runs from {human_size(value['zero_run'])} cut out")
    return ", ".join(shown) if shown else _plain(value)


def _redundancy(value: dict) -> str:
    kind = value.get("kind", "local")
    rest = {k: v for k, v in value.items() if k != "kind"}
    return kind + (f" ({_plain(rest)})" if rest else "")


def _replication(value: dict | None) -> str:
    if not value:
        return "-"
    text = f"to {value.get('secondary') or '?'}"
    if value.get("error"):
        return f"{text}: not reachable ({value['error']})"
    lag = value.get("lag") or {}
    missing = lag.get("missing_on_primary")
    kept = (f"; {missing} object(s) missing on the primary kept on the secondary: run 'strongroom vault verify'"
            if missing else "")
    if lag.get("in_sync"):
        return f"{text}: in sync{kept}"
    behind = f"{lag.get('objects', '?')} object(s), {human_size(lag.get('bytes') or 0)} behind"
    if lag.get("points"):
        behind += f"; {lag['points']} point(s), the oldest from {short_time(lag.get('oldest_point'))}"
    return f"{text}: {behind}{kept}"


_SHOW = {
    "features": _features,
    "created": short_time,
    "chunker": _chunker,
    "redundancy": _redundancy,
    "replication": _replication,
}
