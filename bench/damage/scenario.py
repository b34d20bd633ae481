"""A fresh vault for one cell, made through the CLI: item ``a`` with 3 points, item ``b`` with 1.

Everything lives in the cell's folder (``CELL``): ``home`` (its own ``STRONGROOM_HOME``),
``vault``, ``src/a`` and ``src/b`` (the sources), ``snap/<point>`` (a copy of the source as
each point saw it, what restores are compared with) and ``restore/`` (the targets).

Item ``a`` is a small tree that changes a little between backups::

    docs/note-0.txt ... note-4.txt   note-0 grows before every backup, so docs/ has a new tree node each time
    data/stable.bin                   768 KiB of random bytes, never changes
    work/journal.txt                  grows before every backup
    work/extra-2.txt                  new in a2
    big/fresh.bin                     new in a3: 10 MiB of random bytes, more than one pack holds (8 MiB),
                                      so at least one pack of a3's backup holds a3's data only

Item ``b`` (``src/b``: a text file and 256 KiB of random bytes) is backed up once, between
a2 and a3.  The source bytes are the same in every cell (seeded); the vault's chunker seed
is not.  Then ``a``, protected with policy ``keep``, is stopped (``--retain forever``) and
resumed, which writes a point status document for each of its points; ``prune settings
--grace 2h`` writes a second settings document; ``vault key export`` saves a recovery kit
in ``CELL/kit.txt`` (when it fails, the cell goes on without one).  With
``passphrase_slot`` a passphrase slot is added beside the local one right after ``vault
create``.  Nothing changes the sources after a3.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import attrs

from bench.damage.runner import Runner, Step

__all__ = ["PASSPHRASE_VAR", "Scenario", "SetupFailed", "build"]

MIB = 1 << 20
SEED = 12
PASSPHRASE_VAR = "STRONGROOM_BENCH_DAMAGE_PASSPHRASE"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SetupFailed(Exception):
    """A command of the setup did not succeed: the cell cannot be measured."""

    def __init__(self, step: Step, steps: list[Step] | None = None) -> None:
        super().__init__(f"{step.shown}: exit {step.exit}: {step.first_line}")
        self.step = step
        self.steps = steps or [step]


@attrs.frozen
class Scenario:
    """A cell's vault as built: where things are, the points by label, the vault's map."""

    cell: str
    runner: Runner
    sources: dict[str, str]  # item -> source folder
    points: dict[str, str]  # label (a1, a2, a3, b1) -> point id
    snapshots: dict[str, str]  # label -> copy of the source as the point saw it
    item_ids: dict[str, str]
    passphrase_slot: str | None  # keys/<slot> of the added passphrase slot
    kit: str | None  # the recovery kit's file, None if it could not be exported
    setup: list[Step]
    map: dict  # bench.damage.locate's output

    @property
    def vault(self) -> str:
        return self.runner.vault

    def path(self, name: str) -> str:
        """The file of object ``name`` in the vault folder."""
        return os.path.join(self.vault, *name.split("/"))


def _write(path: str, data: bytes, append: bool = False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "ab" if append else "wb") as f:
        f.write(data)


def write_stage(src: str, stage: int) -> None:
    """Bring ``src/a`` to what backup ``stage`` (1, 2, 3) of item a sees."""
    rng = random.Random(SEED * 100 + stage)
    a = os.path.join(src, "a")
    if stage == 1:
        for i in range(5):
            _write(os.path.join(a, "docs", f"note-{i}.txt"), f"note {i}\n".encode() * (40 + 30 * i))
        _write(os.path.join(a, "data", "stable.bin"), rng.randbytes(768 * 1024))
        _write(os.path.join(a, "work", "journal.txt"), b"journal\n")
        b = os.path.join(src, "b")
        _write(os.path.join(b, "x.txt"), b"item b\n" * 100)
        _write(os.path.join(b, "y.bin"), random.Random(SEED * 100 + 9).randbytes(256 * 1024))
        return
    _write(os.path.join(a, "docs", "note-0.txt"), f"change {stage}\n".encode(), append=True)
    _write(os.path.join(a, "work", "journal.txt"), f"entry {stage}\n".encode(), append=True)
    if stage == 2:
        _write(os.path.join(a, "work", "extra-2.txt"), b"added in the second backup\n" * 20)
    if stage == 3:
        _write(os.path.join(a, "big", "fresh.bin"), rng.randbytes(10 * MIB))


def build(cell: str, *, passphrase_slot: bool = False) -> Scenario:
    """Make the cell's folder, sources and vault; :class:`SetupFailed` if a command fails."""
    home, vault, src = (os.path.join(cell, d) for d in ("home", "vault", "src"))
    os.makedirs(home, mode=0o700)
    runner = Runner(home, vault, {cell: "CELL", cell.lstrip("/"): "CELL"})
    steps: list[Step] = []
    passphrase = {PASSPHRASE_VAR: "correct horse battery staple"}

    def run(label: str, *args: str, env: dict | None = None, needed: bool = True) -> Step:
        step = runner.run(label, *args, env=env)
        steps.append(step)
        if step.exit != 0 and needed:
            raise SetupFailed(step, steps)
        return step

    def backup(item: str, label: str) -> None:
        point = json.loads(run(f"backup {label}", "backup", "--json", item).stdout)["point_id"]
        points[label] = point
        runner.names[point] = "{" + label + "}"
        snapshots[label] = os.path.join(cell, "snap", label)
        shutil.copytree(os.path.join(src, item), snapshots[label])

    points: dict[str, str] = {}
    snapshots: dict[str, str] = {}
    write_stage(src, 1)
    run("create", "vault", "create", "--name", "damage", vault)
    slot = None
    if passphrase_slot:
        before = set(os.listdir(os.path.join(vault, "keys")))
        run("key add", "vault", "key", "add", "--provider", "passphrase", "--label", "second",
            "--new-passphrase-env", PASSPHRASE_VAR, env=passphrase)
        slot = "keys/" + (set(os.listdir(os.path.join(vault, "keys"))) - before).pop()
    run("policy", "policy", "create", "keep", "--daily", "03:00", "--keep-daily", "7")
    run("protect a", "protect", "files", "--policy", "keep", "--path", os.path.join(src, "a"), "a")
    run("protect b", "protect", "files", "--path", os.path.join(src, "b"), "b")
    backup("a", "a1")
    write_stage(src, 2)
    backup("a", "a2")
    backup("b", "b1")
    write_stage(src, 3)
    backup("a", "a3")
    run("stop a", "items", "stop", "--retain", "forever", "a")
    run("resume a", "items", "resume", "a")
    run("prune settings", "prune", "settings", "--grace", "2h")
    kit: str | None = os.path.join(cell, "kit.txt")
    export = run("key export", "vault", "key", "export", needed=False)
    if export.exit == 0:
        with open(kit, "w") as f:
            f.write(export.stdout)
    else:
        kit = None
    try:
        vault_map = locate(runner)
    except SetupFailed as exc:
        raise SetupFailed(exc.step, steps + [exc.step]) from None
    item_ids = {name: item["item_id"] for name, item in vault_map["items"].items()}
    sources = {"a": os.path.join(src, "a"), "b": os.path.join(src, "b")}
    return Scenario(cell, runner, sources, points, snapshots, item_ids, slot, kit, steps, vault_map)


def locate(runner: Runner) -> dict:
    """:mod:`bench.damage.locate`'s map of the (intact) vault, in a child process."""
    done = subprocess.run([sys.executable, "-m", "bench.damage.locate", runner.vault], cwd=ROOT,
                          env=runner.env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [""]
        raise SetupFailed(Step("locate", "python -m bench.damage.locate CELL/vault", done.returncode,
                               runner.show(lines[-1]), "Traceback" in done.stderr))
    return json.loads(done.stdout)
