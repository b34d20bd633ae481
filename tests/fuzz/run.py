"""The big fuzz run: ``python -m tests.fuzz.run --examples 100000`` (from the repository root).

Builds a vault (:mod:`.corpus`), then runs every target (:mod:`.targets`) with an equal
share of ``--examples`` hypothesis examples, and prints a table per parser: mutations
tried, parsed (a well-formed result), and clean errors by class.  Anything else is a
failure: it is printed with the mutation that caused it, and the exit code is 1.
``--seed`` makes a run repeatable; ``--only TEXT`` runs the targets whose name has TEXT.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time

import attrs
from hypothesis import HealthCheck, Phase, given, seed, settings

from .corpus import build_corpus
from .targets import Target, Unclean, all_targets


@attrs.define
class Tally:
    """Outcomes of one target's examples."""

    tried: int = 0
    outcomes: collections.Counter = attrs.field(factory=collections.Counter)
    failures: list[str] = attrs.field(factory=list)


def fuzz(target: Target, examples: int, *, seed_value: int | None = None, raise_first: bool = False) -> Tally:
    """Run ``examples`` hypothesis examples of ``target``.  With ``raise_first`` the first
    failure raises (hypothesis then shrinks it); otherwise failures are collected."""
    tally = Tally()

    @settings(max_examples=examples, database=None, deadline=None, derandomize=seed_value is None and raise_first,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink] if raise_first else [Phase.generate])
    @given(mutation=target.strategy)
    def body(mutation) -> None:
        tally.tried += 1
        try:
            tally.outcomes[target.attempt(mutation)] += 1
        except Unclean as exc:
            if raise_first:
                raise
            tally.outcomes["FAILED"] += 1
            if len(tally.failures) < 5:
                tally.failures.append(str(exc))

    if seed_value is not None:
        body = seed(seed_value)(body)
    body()
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="mutations in total (default 100000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, for a repeatable run")
    parser.add_argument("--only", default="", help="run only targets whose name contains this")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strongroom-fuzz-") as root:
        targets = [t for t in all_targets(build_corpus(root)) if args.only in t.name]
        share = -(-args.examples // len(targets))  # at least --examples in total
        by_parser: dict[str, Tally] = {}
        failures: list[str] = []
        started = time.monotonic()
        for number, target in enumerate(targets):
            tally = fuzz(target, share, seed_value=None if args.seed is None else args.seed + number)
            total = by_parser.setdefault(target.parser, Tally())
            total.tried += tally.tried
            total.outcomes.update(tally.outcomes)
            failures += tally.failures
            print(f"{target.name:66} {tally.tried:7} tried  {_outcomes(tally)}", flush=True)
    print(f"\n{'parser':38} {'tried':>8} {'parsed':>8} {'clean errors':>13} {'failed':>7}")
    for name, tally in by_parser.items():
        parsed = tally.outcomes["parsed"]
        failed = tally.outcomes["FAILED"]
        print(f"{name:38} {tally.tried:8} {parsed:8} {tally.tried - parsed - failed:13} {failed:7}")
    tried = sum(t.tried for t in by_parser.values())
    print(f"{'total':38} {tried:8}   in {time.monotonic() - started:.0f} s")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _outcomes(tally: Tally) -> str:
    return ", ".join(f"{name} {count}" for name, count in tally.outcomes.most_common())


if __name__ == "__main__":
    sys.exit(main())
