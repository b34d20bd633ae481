"""A declarative file that describes existing vaults (``strongroom export-config``).

:func:`describe_vault` turns an open vault into the file's table for it: its URL and
redundancy, every policy (as ``policy create`` options), every item that is protected
(stopped and deleted ones are left out: ``apply`` never changes them) with the options
of ``protect WORKLOAD`` where they say the whole source, else its ``source`` document,
and every alert sink with its options.  Applying what it writes back to the same vaults
changes nothing (``apply --dry-run`` shows no change).

Sink options are written as they are stored, secrets included: the file is written
readable by its owner only (:func:`to_toml` text; the command sets the mode).
:func:`to_toml` writes the small TOML subset the format needs (strings, integers,
booleans, arrays, tables) with no dependency.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import StrongroomError
from ..models import PROTECTED
from ..plugins import PluginHost
from ..policy.durations import format_duration
from ..policy.record import Policy
from ..policy.schedule import WEEKDAYS

__all__ = ["describe_vault", "policy_options", "to_toml"]


def policy_options(policy: Policy) -> dict[str, Any]:
    """``policy`` as the file's policy table (the options of ``policy create``)."""
    schedule, rules = policy.schedule, policy.retention
    if schedule.kind == "every":
        out: dict[str, Any] = {"every": f"{schedule.every_hours}h"}
    elif schedule.kind == "daily":
        out = {"daily": ",".join(schedule.times)}
    else:
        out = {"weekly": f"{','.join(WEEKDAYS[d] for d in schedule.weekdays)}@{','.join(schedule.times)}"}
    out["timezone"] = schedule.timezone
    out.update({"keep_daily": rules.daily, "keep_weekly": rules.weekly, "weekly_on": WEEKDAYS[rules.weekly_on],
                "keep_monthly": rules.monthly, "monthly_on": rules.monthly_on, "keep_yearly": rules.yearly})
    if policy.description:
        out["description"] = policy.description
    if policy.drill is not None:
        out["drill_every"] = format_duration(policy.drill.every)
        if policy.drill.from_secondary:
            out["drill_from_secondary"] = True
    return out


def describe_vault(vault: Any, plugins: PluginHost) -> dict[str, Any]:
    """The file's table for ``vault`` (see the module docstring)."""
    from .spec import option_params

    table: dict[str, Any] = {"url": vault.url}
    redundancy = vault.redundancy
    if redundancy.kind != "local":
        table["redundancy"] = redundancy.kind
    if redundancy.secondary:
        table["secondary"] = redundancy.secondary
    table["policies"] = {p.name: policy_options(p) for p in vault.policies.list()}
    items: dict[str, Any] = {}
    for item in vault.items():
        if item.state != PROTECTED:
            continue
        entry: dict[str, Any] = {"workload": item.workload}
        if item.policy:
            entry["policy"] = item.policy
        entry.update(_item_options(item, option_params(plugins, item.workload), vault.workload(item.workload)))
        items[item.name] = entry
    table["items"] = items
    table["sinks"] = {s.name: {"type": s.type, "category": s.category, "options": dict(s.options)}
                      for s in vault.alert_sinks.list()}
    return table


def _item_options(item: Any, params: dict, workload: Any) -> dict[str, Any]:
    """The item's source as protect's options when they say all of it, else as ``source``."""
    source = {k: v for k, v in item.source.items() if v is not None}
    by_name = {param.name: key for key, param in params.items()}
    given = {name: value for name, value in source.items() if name in by_name}
    if set(given) == set(source):
        try:
            rebuilt = workload.source_from_options(dict(given))
        except (StrongroomError, TypeError, ValueError):  # it cannot: the document says it
            rebuilt = None
        if rebuilt is not None and {k: v for k, v in rebuilt.items() if v is not None} == source:
            # an empty list or a false flag is what the option gives when left out
            return {by_name[name]: (list(value) if isinstance(value, tuple) else value)
                    for name, value in given.items() if value not in ([], (), False)}
    return {"source": source}


# --- TOML -------------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, but for DEL, which TOML wants escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(doc: dict[str, Any], header: str = "") -> str:
    """``doc`` (``{"vaults": {NAME: table}}``) as TOML text: one ``[vaults.NAME]`` table,
    then one table per policy, item and sink; values on one line each."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, vault in doc.get("vaults", {}).items():
        base = f"vaults.{_key(name)}"
        lines += ["", f"[{base}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in vault.items() if not isinstance(v, dict)]
        for group in ("policies", "items", "sinks"):
            for entry, body in vault.get(group, {}).items():
                lines += ["", f"[{base}.{group}.{_key(entry)}]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in body.items() if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"
