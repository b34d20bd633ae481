"""A policy from command-line style options (``strongroom policy create/update``)."""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import InvalidPolicy
from .drills import DrillSchedule, parse_drill_every
from .record import Policy
from .retention import RetentionRules
from .schedule import Schedule, parse_weekday

__all__ = ["policy_from_options"]


def policy_from_options(name: str, options: dict[str, Any], base: Policy | None = None) -> Policy:
    """A policy from CLI-style options (None: not given; keep ``base``'s value).

    Options: ``every`` ("4h"), ``daily`` ("02:00,14:00"), ``weekly`` ("sun@03:00"),
    ``timezone``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``, ``keep_yearly``,
    ``weekly_on`` ("sun"), ``monthly_on`` ("first"/"last"), ``description``,
    ``drill_every`` ("7d", "off"), ``drill_from_secondary`` (True/False).
    """
    given = {key: value for key, value in options.items() if value is not None}
    kinds = [kind for kind in ("every", "daily", "weekly") if kind in given]
    if len(kinds) > 1:
        raise InvalidPolicy(reason=f"give one of --every, --daily or --weekly, not {' and '.join('--' + k for k in kinds)}")
    timezone = given.get("timezone", base.timezone if base else "UTC")
    if kinds:
        schedule = getattr(Schedule, kinds[0])(given[kinds[0]], timezone)
    elif base is not None:
        schedule = attrs.evolve(base.schedule, timezone=timezone)
    else:
        raise InvalidPolicy(reason="a policy needs a schedule: --every, --daily or --weekly")
    rules = base.retention if base else RetentionRules()
    changes: dict[str, Any] = {tag: given[f"keep_{tag}"] for tag in ("daily", "weekly", "monthly", "yearly")
                               if f"keep_{tag}" in given}
    if "weekly_on" in given:
        changes["weekly_on"] = parse_weekday(given["weekly_on"])
    if "monthly_on" in given:
        changes["monthly_on"] = str(given["monthly_on"]).lower()
    rules = attrs.evolve(rules, **changes)
    drill = _drill(given, base.drill if base else None)
    try:
        policy = Policy(name=name, schedule=schedule, retention=rules,
                        description=given.get("description", base.description if base else ""),
                        created=base.created if base else "", drill=drill)
    except ValueError as exc:  # the name
        raise InvalidPolicy(reason=str(exc)) from None
    return policy


def _drill(given: dict[str, Any], base: DrillSchedule | None) -> DrillSchedule | None:
    """The policy's scheduled drills: ``base`` changed by what is given."""
    every = base.every if base else None
    if "drill_every" in given:
        every = parse_drill_every(given["drill_every"])
    from_secondary = bool(given.get("drill_from_secondary", base.from_secondary if base else False))
    if every is None:
        if given.get("drill_from_secondary"):
            raise InvalidPolicy(reason="--drill-from-secondary needs --drill-every")
        return None
    return DrillSchedule(every=every, from_secondary=from_secondary)
