"""``strongroom vault audit``: the audit journal, listed or checked.

- ``vault audit [--since TIME] [--json]`` lists the journal's entries, oldest first: time,
  host, user, operation, outcome, parameters (and the detail of a failure or refusal).
  ``--since`` takes a date (``2027-01-31``), a date and time, or a duration back from now
  (``7d``).  Entries that do not decrypt are left out of the list (``--verify`` names them).
- ``vault audit --verify [--json]`` walks the chain (:meth:`strongroom.services.journal.Journal.verify`):
  intact, it says how many entries it checked and exits 0; otherwise it prints one line
  per problem (a gap, a changed or damaged entry) on standard error and exits 55
  (:class:`~strongroom.errors.JournalTampered`).  Objects under ``journal/`` whose names
  are not the journal's are notes (never read).

Nothing is written to the vault.
"""

from __future__ import annotations

import datetime as dt

import click

from ..errors import JournalTampered, UsageError
from .common import app, json_option
from .output import emit_json, short_time, table


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """The moment ``--since`` stands for: a duration back from ``now``, a date (its start,
    UTC), or a date and time (UTC unless it has an offset); UsageError otherwise."""
    from ..errors import StrongroomError
    from ..policy.durations import parse_duration

    text = text.strip()
    if text[-1:].isalpha() and text[:1].isdigit() and "-" not in text:
        try:
            return now - dt.timedelta(seconds=parse_duration(text))
        except StrongroomError:
            pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(message=f"--since {text!r}: use a date (2027-01-31), a date and time, or a duration"
                                 " back from now (7d, 12h)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _params(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items() if v not in (None, "", [], {}))


@click.command("audit")
@click.option("--since", metavar="TIME", help="Only entries from TIME on: 2027-01-31, 2027-01-31T08:00, 7d.")
@click.option("--verify", "check", is_flag=True, help="Check the journal's chain instead of listing it (exit 55 if broken).")
@json_option
@click.pass_context
def audit(ctx, since, check, as_json):
    """List the vault's audit journal, or check it with --verify."""
    v = app(ctx).open_vault()
    if check:
        _verify(v, as_json)
        return
    entries = v.journal.entries(parse_since(since, v.clock()) if since else None)
    if as_json:
        emit_json([{"name": e.name, **e.to_dict()} for e in entries])
        return
    if not entries:
        click.echo("The journal has no entries" + (" since then." if since else "."))
        return
    table(("TIME", "HOST", "USER", "OPERATION", "OUTCOME", "PARAMETERS"),
          [(short_time(e.time), e.host, e.user, e.operation, e.outcome,
            _params(e.params) + (f" ({e.detail})" if e.detail else "")) for e in entries])


def _verify(v, as_json: bool) -> None:
    from ..services.journal import JOURNAL_PREFIX

    check = v.journal.verify()
    notes = [f"{name}: not a journal entry's name (a foreign object): not read"
             for name in sorted(n for n in v.repo.foreign if n.startswith(JOURNAL_PREFIX))]
    if as_json:
        emit_json({"entries": check.entries, "intact": check.intact, "problems": list(check.problems), "notes": notes})
    else:
        for note in notes:
            click.echo(f"note: {note}")
        for problem in check.problems:
            click.echo(f"journal: {problem}", err=True)
        if check.intact:
            click.echo(f"Checked {check.entries} journal entr{'y' if check.entries == 1 else 'ies'}: the chain is intact.")
    if not check.intact:
        raise JournalTampered(reason=f"{len(check.problems)} problem(s) in {check.entries} entries"
                                     + ("" if as_json else " (listed above)"))
