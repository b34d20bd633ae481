"""bench/damage/RESULTS.md: the matrix, its legend, what was flagged, and every cell's log."""

from __future__ import annotations

import attrs

from bench.damage.cell import FLAGS, Cell, worst
from bench.damage.runner import HUNG, Step

__all__ = ["COLUMNS", "Run", "render"]

#: The summary table: heading -> the steps it shows (exit codes joined by ``·``, the worst word).
COLUMNS: dict[str, tuple[str, ...]] = {
    "verify · --read-data": ("verify", "verify --read-data"),
    "points": ("points",),
    "restore b1 · a1 · a2": ("restore b1", "restore a1", "restore a2"),
    "restore a3": ("restore a3",),
    "backup a": ("backup a",),
    "repair · --apply": ("repair", "repair --apply"),
    "after: verify --read-data": ("verify --read-data after",),
    "after: restore b1 · a1 · a2": ("restore b1 after", "restore a1 after", "restore a2 after"),
    "after: backup a · restore it": ("backup a after", "restore a5 (new)"),
    "after: restore a3": ("restore a3 healed",),
}

LEGEND = """\
Each table cell gives the exit codes of its commands, joined by `·`, then one word for the
worst of them. Words:

- `ok`: exit 0; for a restore, every file of the point restored byte for byte.
- `warn`: exit 1 (completed with warnings); for a restore, every file byte for byte.
- `detected`: `vault verify` exited non-zero on the damaged vault.
- `partial`: the restore exited non-zero; every file the damage could not take is restored
  byte for byte, the files it took are not written.
- `refused`: a clean error (one line, a stable exit code) and nothing written.
- `spurious`: an error exit although every file was restored byte for byte.
- `lost`: `vault repair` exited 53: it names points that lost data no intact copy holds.
- `rollback`: `vault repair` exited 54: the storage went back to an older state, and the
  repair leaves that to be accepted (`--accept-rollback`).
- `clean` / `problems`: `vault verify --read-data` after the repair exited 0 / non-zero.
- `-`: not run (the point does not exist: the backup that would have made it was refused).

Flags, the outcomes that must never happen (**bold** in the table and listed under Findings):

- `CRASH`: a traceback or exit 99 (an internal error).
- `HUNG`: no exit within 600 s.
- `MISSED`: `vault verify --read-data` exited 0 on the damaged vault, or a restore exited 0
  (or 1) without writing a file.
- `LOST`: a file the damage could not take was not restored (the other items, the older
  points, the damaged point's other files, every point once the index is rebuilt), or the
  backup after the repair failed or made a point that does not restore whole.
- `CORRUPT`: a file restored with other bytes than its source had, or one the source never had.

Columns: `points` lists every item's points. `a3` is the point hit by the damage (item a's
newest); `b1`, `a1`, `a2` are the points that need nothing of the damaged object. `backup
a` runs on the damaged vault (its point is `a4`). `repair · --apply` is `vault repair`
(dry run) then `vault repair --apply`; when that exits 54 (the storage went back to an
older state) the guide's next step, `vault repair --apply --accept-rollback`, is shown as
`accept-rollback`; for the only key slot `key import` is `vault key import` of the recovery
kit exported during the setup, followed by `vault repair --apply` (`--apply`) once the vault
opens again. The `after:` columns run after the repair:
`verify --read-data`, the restores of the other points, a new backup of a (`a5`) and its
restore, and the restore of `a3` after that backup (which stores again what the source still
has)."""


@attrs.frozen
class Run:
    """One run of the matrix and how it was made."""

    command: str
    machine: str
    version: str
    code: str  # which strongroom code ran: a commit, or the working tree and its state
    started: str
    seconds: float
    quick: bool
    cells: list[Cell]


def _code(step: Step) -> str:
    return "hung" if step.exit == HUNG else str(step.exit)


def summary(cell: Cell, labels: tuple[str, ...]) -> str:
    """The table cell for ``labels``: their exit codes and the worst word."""
    if cell.error:
        return "-"
    steps = [s for label in labels if (s := cell.step(label)) is not None]
    if not steps or all(not s.outcome and s.note == "not run" for s in steps):
        return "-"
    codes = "·".join("-" if s.note == "not run" else f"`{_code(s)}`" for s in steps)
    word = worst(s.outcome for s in steps)
    text = f"{codes} **{word}**" if word in FLAGS else f"{codes} {word}"
    if "repair" in labels:
        for label, name in (("recovery", "key import"), ("repair again", "--apply"),
                            ("accept rollback", "accept-rollback")):
            extra = cell.step(label)
            if extra is not None:
                text += f"; {name} `{_code(extra)}` {extra.outcome}"
    return text


def flags_of(cell: Cell) -> str:
    if cell.error and not cell.flags:
        return "not measured"
    words = sorted({f.split(":", 1)[0] for f in cell.flags}, key=FLAGS.index)
    return ", ".join(f"**{w}**" for w in words) if words else "none"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def table(cells: list[Cell]) -> list[str]:
    head = ["object", "damage", *COLUMNS, "flags"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in cells:
        row = [cell.kind, cell.damage, *(summary(cell, labels) for labels in COLUMNS.values()), flags_of(cell)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cell_log(cell: Cell) -> list[str]:
    lines = [f"### {cell.kind} × {cell.damage}", ""]
    if cell.target is not None:
        lines += [f"- Object: `{cell.target.name}`, {cell.target.what}.",
                  f"- Damage: {cell.damage_done}.", f"- What it may take: {cell.harm_line}."]
    if cell.error:
        lines.append(f"- Not measured: {_escape(cell.error)}")
    failed = [s for s in cell.setup if s.exit != 0]
    if failed or cell.error:
        lines += ["", "| setup command | exit | first line of stderr |", "|---|---:|---|"]
        lines += [f"| `{_escape(s.shown)}` | {_code(s)} | {_escape(s.first_line)} |" for s in cell.setup]
    else:
        lines.append(f"- Setup: {len(cell.setup)} commands, every one exit 0.")
    for flag in cell.flags:
        lines.append(f"- **Flag** {_escape(flag)}")
    for note in cell.notes:
        lines.append(f"- Note: {_escape(note)}")
    if cell.steps:
        lines += ["", "| step | command | exit | outcome | first line of stderr |", "|---|---|---:|---|---|"]
        for s in cell.steps:
            if s.note == "not run":
                lines.append(f"| {s.label} | {_escape(s.shown)} | - | not run | |")
                continue
            outcome = f"**{s.outcome}**" if s.outcome in FLAGS else s.outcome
            if s.note:
                outcome += f" ({_escape(s.note)})"
            lines.append(f"| {s.label} | `{_escape(s.shown)}` | {_code(s)} | {outcome} | {_escape(s.first_line)} |")
    return lines + [""]


def render(run: Run) -> str:
    flagged = [c for c in run.cells if c.flags or c.error]
    noted = [c for c in run.cells if c.notes]
    lines = [
        "# Damage matrix: one damaged object of a vault, measured through the command line",
        "",
        f"Machine: {run.machine}.",
        "",
        f"strongroom {run.version}, {run.code}. Measured {run.started} with `{run.command}`: "
        f"{len(run.cells)} cells in {run.seconds / 60:.1f} min."
        + (" Quick mode: a few cells only." if run.quick else ""),
        "",
        "Each cell is a fresh vault in a temporary folder with its own `STRONGROOM_HOME`, made by the "
        "venv's `strongroom` (child processes): item a with 3 points (a small tree changing a little "
        "between backups; the third adds a 10 MiB file) and item b with 1 point, a policy, a stop and "
        "resume of a (so a3 has point status documents), a second settings document (`prune settings "
        "--grace 2h`), a recovery kit (`vault key export`). One object is damaged on disk, then every "
        "command below runs and each restore is compared, file by file, with a copy of the source taken "
        "when its point was made. Only exit codes and restored bytes are judged, never messages. "
        "`bench/damage/` has the details (`scenario.py`: the vault; `targets.py`: the objects and damages; "
        "`cell.py`: the steps and how they are judged).",
        "",
        "## Matrix",
        "",
        *table(run.cells),
        "",
        "## Legend",
        "",
        LEGEND,
        "",
        "## Findings",
        "",
    ]
    if not flagged:
        lines.append("No cell is flagged: no traceback, no exit 99, no damage missed, no intact data lost.")
    for cell in flagged:
        lines.append(f"- **{cell.kind} × {cell.damage}**: " + _escape("; ".join(cell.flags or [cell.error])))
    if noted:
        lines += ["", "Notes (not flags):", ""]
        lines += [f"- {cell.kind} × {cell.damage}: " + _escape("; ".join(cell.notes)) for cell in noted]
    lines += ["", "## Per-cell log", "",
              "Commands are shown with the cell's folder as `CELL` and point ids as `{a1}`, `{a3}`, ...; "
              "every command runs with `STRONGROOM_VAULT=CELL/vault` and `STRONGROOM_HOME=CELL/home`.", ""]
    for cell in run.cells:
        lines += cell_log(cell)
    return "\n".join(lines).rstrip() + "\n"
