"""One cell of the matrix: build a fresh vault, damage one object, run every command, judge.

The commands, in order (``a4`` is the point of the backup right after the damage, ``a5``
the one after the repair; ``{kit}`` only for a kind with a recovery command)::

    before   vault verify, vault verify --read-data, points,
             restore b, a@a1, a@a2, a@a3 (the damaged point), backup a (a4)
             (key slot kinds also: vault key list)
    repair   vault repair, vault repair --apply; the kind's recovery command if any and,
             when it worked, vault repair --apply again; if the last repair exits 54 (a
             rollback found), vault repair --apply --accept-rollback
    after    vault verify --read-data, restore b, a@a1, a@a2, a@a3, a@a4,
             backup a (a5), restore a@a5, a@a3 and a@a4 again, vault verify --read-data

Every restore goes into a new folder and is compared with the source as its point saw
it (:mod:`bench.damage.trees`), knowing what the damage may take (:class:`Harm`).
Each step gets a one-word outcome; the cell's flags are what must never happen:
``CRASH`` (a traceback or exit 99), ``HUNG`` (no exit within the timeout), ``MISSED``
(``verify --read-data`` exits 0 on the damaged vault, or a restore exits 0 without a
file), ``LOST`` (a file the damage could not take is not restored, or the point of the
backup after the repair is not whole), ``CORRUPT`` (a file restored with other bytes
than its source).  Notes record what is worth reading but not a failure of the
contract (a backup refused before repair, verify still failing after it, a point not
made whole by the next backup).
"""

from __future__ import annotations

import json
import os

import attrs

from bench.damage.runner import HUNG, Runner, Step
from bench.damage.scenario import Scenario, SetupFailed, build
from bench.damage.targets import DAMAGES, KINDS, Damage, Harm, Kind, Target, VaultMap
from bench.damage.trees import compare

__all__ = ["Cell", "FLAGS", "run_cell"]

#: Outcomes that flag a cell, worst first.
FLAGS = ("CRASH", "HUNG", "CORRUPT", "LOST", "MISSED")
#: Every outcome, worst first (the word a group of steps shows is its worst).
ORDER = (*FLAGS, "refused", "problems", "rollback", "lost", "partial", "spurious", "detected", "warn", "ok", "clean")
OTHERS = ("b1", "a1", "a2")
#: vault repair: 0 no point lost data, 53 some did (the report names them), 54 a rollback is left.
REPAIR = {0: "ok", 53: "lost", 54: "rollback"}
#: Exit code of a command that found the storage went back to an older state (RollbackDetected).
ROLLBACK = 54


@attrs.frozen
class Cell:
    """The measured cell: what was damaged, how, every step, flags and notes."""

    kind: str
    damage: str
    target: Target | None
    damage_done: str
    harm_line: str
    setup: list[Step]
    steps: list[Step]
    flags: list[str]
    notes: list[str]
    error: str = ""  # the setup failed: nothing was measured

    def step(self, label: str) -> Step | None:
        return next((s for s in self.steps if s.label == label), None)


def worst(outcomes) -> str:
    outcomes = [o for o in outcomes if o]
    return min(outcomes, key=lambda o: ORDER.index(o) if o in ORDER else len(ORDER)) if outcomes else ""


class _Judge:
    """Runs and judges the steps of one cell."""

    def __init__(self, scn: Scenario, kind: Kind, vmap: VaultMap, harm: Harm) -> None:
        self.scn, self.kind, self.map, self.harm = scn, kind, vmap, harm
        self.run: Runner = scn.runner
        self.steps: list[Step] = []
        self.flags: list[str] = []
        self.notes: list[str] = []
        self.count = 0
        self.recovered = False

    def add(self, step: Step, outcome: str, note: str = "") -> Step:
        if step.crashed:
            outcome = "CRASH"
        elif step.exit == HUNG:
            outcome = "HUNG"
        step = attrs.evolve(step, outcome=outcome, note=note)
        self.steps.append(step)
        if outcome in FLAGS:
            self.flags.append(f"{outcome}: {step.label} (exit {step.exit})" + (f": {note}" if note else ""))
        return step

    @property
    def vault_closed(self) -> bool:
        return self.harm.vault and not self.recovered

    def verify(self, label: str, *args: str, before: bool) -> Step:
        step = self.run.run(label, "vault", "verify", *args)
        if step.exit == 0:
            missed = before and "--read-data" in args
            return self.add(step, "MISSED" if missed else ("ok" if before else "clean"),
                            "the damage is not reported" if missed else "")
        return self.add(step, "detected" if before else "problems")

    def plain(self, label: str, *args: str, words: dict[int, str] | None = None) -> Step:
        step = self.run.run(label, *args)
        return self.add(step, (words or {0: "ok", 1: "warn"}).get(step.exit, "refused"))

    def backup(self, label: str, point: str) -> Step:
        step = self.plain(label, "backup", "--json", "a")
        if step.exit in (0, 1):
            try:
                pid = json.loads(step.stdout)["point_id"]
            except (ValueError, KeyError, TypeError):
                return step
            self.scn.points[point] = pid
            self.scn.snapshots[point] = self.scn.snapshots["a3"]  # the source is unchanged since a3
            self.run.names[pid] = "{" + point + "}"
        return step

    def restore(self, label: str, point: str, affected: set[str] | None | str, *, must_be_whole: bool = False) -> Step:
        """Restore ``point`` into a new folder and compare it with its source; ``affected``
        as :meth:`Harm.affected`, or ``"unknown"`` when nothing can be said of what the
        point may miss (a4, made on the damaged vault)."""
        if point not in self.scn.points:
            return self.add(Step(label, f"restore {point}: the point was not made", 0, "", False), "", "not run")
        self.count += 1
        target = os.path.join(self.scn.cell, "restore", f"{self.count:02d}-{point}")
        item = "b" if point.startswith("b") else "a"
        step = self.run.run(label, "restore", "--target", target, f"{item}@{self.scn.points[point]}")
        if step.crashed or step.exit == HUNG:
            return self.add(step, "")
        got = compare(target, self.scn.snapshots[point], self.scn.sources[item],
                      None if affected == "unknown" else affected)
        detail = f"{got.matched}/{got.expected} files identical"
        missing = [*got.missing_intact, *got.missing_affected]
        if got.different or got.extra:
            shown = ", ".join([*got.different, *got.extra][:3])
            return self.add(step, "CORRUPT", f"{detail}; other bytes or not in the source: {shown}")
        if got.missing_intact:
            return self.add(step, "LOST", f"{detail}; missing although intact: {', '.join(got.missing_intact[:3])}")
        if must_be_whole and missing:
            return self.add(step, "LOST", f"{detail}; the new point is not whole: {', '.join(missing[:3])}")
        if step.exit in (0, 1):
            if missing:
                return self.add(step, "MISSED", f"{detail}; exit {step.exit} without: {', '.join(missing[:3])}")
            return self.add(step, "ok" if step.exit == 0 else "warn", detail)
        if not missing:
            return self.add(step, "spurious", detail)
        return self.add(step, "refused" if got.matched == 0 else "partial", detail)

    def expect(self, point: str, *, after: bool) -> set[str] | None | str:
        """What ``point`` may miss now (see :meth:`Harm.affected`)."""
        if self.harm.vault:
            return set() if self.recovered else None
        if point == "a4":
            return "unknown"
        return self.harm.affected(self.map, point, after=after)


def measure(scn: Scenario, kind: Kind, vmap: VaultMap, harm: Harm) -> _Judge:
    j = _Judge(scn, kind, vmap, harm)
    j.verify("verify", before=True)
    j.verify("verify --read-data", "--read-data", before=True)
    j.plain("points", "points")
    for point in (*OTHERS, "a3"):
        j.restore(f"restore {point}", point, j.expect(point, after=False))
    j.backup("backup a", "a4")
    if kind.name.endswith("key slot"):
        j.plain("key list", "vault", "key", "list")
    j.plain("repair", "vault", "repair", words=REPAIR)
    apply = j.plain("repair --apply", "vault", "repair", "--apply", words=REPAIR)
    if kind.recovery and scn.kit is None:
        j.notes.append("no recovery kit: `vault key export` failed during the setup")
    elif kind.recovery:
        args = [a.replace("{kit}", scn.kit) for a in kind.recovery]
        j.recovered = j.plain("recovery", *args).exit == 0
        if j.recovered:  # the vault opens again: now the repair can run
            apply = j.plain("repair again", "vault", "repair", "--apply", words=REPAIR)
    if apply.exit == ROLLBACK:  # what the guide says to do when the storage went back
        j.plain("accept rollback", "vault", "repair", "--apply", "--accept-rollback", words=REPAIR)
    first = j.verify("verify --read-data after", "--read-data", before=False)
    if first.exit != 0 and not j.vault_closed:
        j.notes.append("verify --read-data still reports problems right after repair --apply")
    for point in (*OTHERS, "a3", "a4"):
        j.restore(f"restore {point} after", point, j.expect(point, after=True))
    backup = j.backup("backup a after", "a5")
    if backup.exit not in (0, 1) and not j.vault_closed:
        j.flags.append(f"LOST: backup a after the repair (exit {backup.exit}): nothing new is protected")
    j.restore("restore a5 (new)", "a5", None if j.vault_closed else set(), must_be_whole=not j.vault_closed)
    for point in ("a3", "a4"):
        step = j.restore(f"restore {point} healed", point, j.expect(point, after=True))
        if step.outcome not in ("ok", "warn", "") and not j.vault_closed and point not in harm.points_gone:
            j.notes.append(f"{point} is not whole after the repair and the next backup ({step.outcome})")
    final = j.verify("verify --read-data final", "--read-data", before=False)
    if final.exit != 0 and not j.vault_closed:
        j.notes.append("verify --read-data still reports problems after the repair and the next backup")
    before = [s for s in j.steps if s.label in ("backup a", "points")]
    for step in before:
        if step.outcome == "refused" and not harm.vault:
            j.notes.append(f"{step.label} refused before the repair (exit {step.exit})")
    return j


def run_cell(kind_name: str, damage_name: str, folder: str) -> Cell:
    """Measure one cell in ``folder`` (created; left for the caller to remove)."""
    kind: Kind = KINDS[kind_name]
    damage: Damage = DAMAGES[damage_name]
    try:
        scn = build(folder, passphrase_slot=kind.passphrase_slot)
    except SetupFailed as exc:
        flags = [f"CRASH: setup: {s.shown} (exit {s.exit})" for s in exc.steps if s.crashed]
        return Cell(kind_name, damage_name, None, "", "", exc.steps, [], flags, [], error=str(exc))
    setup_flags = [f"CRASH: setup: {s.shown} (exit {s.exit})" for s in scn.setup if s.crashed]
    vmap = VaultMap(scn)
    try:
        target = kind.choose(vmap)
    except (LookupError, OSError) as exc:  # the object the kind damages is not there
        return Cell(kind_name, damage_name, None, "", "", scn.setup, [], setup_flags, [],
                    error=f"no {kind_name} to damage: {exc!r}")
    ranges, done = damage.apply(scn.path(target.name), target.span)
    harm = Harm.of(kind, target, ranges, vmap)
    j = measure(scn, kind, vmap, harm)
    return Cell(kind_name, damage_name, target, done, describe(harm, vmap), scn.setup, j.steps,
                setup_flags + j.flags, j.notes)


def describe(harm: Harm, m: VaultMap) -> str:
    """What the damage may take, in one line."""
    if harm.vault:
        return "the vault cannot be opened: every command may refuse (the data itself is intact)"
    if harm.points_gone:
        return "a3 is lost whole (its header); every other point must restore byte for byte"
    if not harm.blobs_before:
        return "no data: every point must restore byte for byte"
    parts = []
    for label in ("a3", *OTHERS):
        hit = harm.affected(m, label, after=False)
        if hit is None:
            parts.append(f"{label}: everything")
        elif hit:
            parts.append(f"{label}: {len(hit)} file(s) ({', '.join(sorted(os.path.basename(p) for p in hit)[:3])})")
    until = "until the repair" if not harm.blobs_after else "for good, until a backup stores them again"
    return (f"{len(harm.blobs_before)} blob(s) {until}; " + ("; ".join(parts) if parts else "no file of any point")
            + "; everything else must restore byte for byte")
