"""Due work: is a scheduled run due now, and which slot does it run for?

A *slot* is one run time of a schedule (:meth:`Schedule.runs_on`).  Work is due when a slot
has come (``slot <= now``) that is later than the *baseline*: the slot of the last run, or,
for something that never ran, the moment it started to follow the schedule.  However many
slots were missed (the machine was off, the agent stopped), the work runs **once**, for
the latest of them: missed runs coalesce.

Something that never ran and has nothing to show for it yet (an item with a policy and no
recovery point) is due at once, for the latest slot, even one before it was protected.

Pure functions of their arguments; ``now`` is always given.
"""

from __future__ import annotations

import datetime as dt

import attrs

from .schedule import Schedule

__all__ = ["Due", "due_slot"]


@attrs.frozen
class Due:
    """When work runs next and whether it is due at ``now``.

    ``slot`` is the slot a run now would be for (None when not due); ``next_run`` the next
    slot after the baseline (or after ``now`` when due: the one after this run);
    ``baseline`` the moment the schedule counts from (None: it never ran).
    """

    due: bool
    slot: dt.datetime | None
    next_run: dt.datetime
    baseline: dt.datetime | None


def due_slot(
    schedule: Schedule, now: dt.datetime, *, last_slot: dt.datetime | None,
    since: dt.datetime | None = None, at_once: bool = False,
) -> Due:
    """Whether ``schedule`` has a run due at ``now``.

    :param last_slot: the slot of the last run (whatever its outcome), or None.
    :param since: when the schedule started to apply (protected, resumed); slots at or
        before it are not owed.  Ignored when ``last_slot`` is later.
    :param at_once: due at once when it never ran (no ``last_slot``): the latest slot is
        run even if it came before ``since``.
    """
    latest = schedule.previous_run(now)
    if last_slot is None and at_once:
        return Due(True, latest, schedule.next_run(now), None)
    marks = [m for m in (last_slot, since) if m is not None]
    baseline = max(marks) if marks else None
    if baseline is None or latest > baseline:
        return Due(True, latest, schedule.next_run(now), baseline)
    return Due(False, None, schedule.next_run(baseline), baseline)
