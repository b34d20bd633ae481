"""``strongroom install-units``: write the systemd units that run the agent or run-due.

Writes ``strongroom-agent.service``, ``strongroom-run-due.service`` and
``strongroom-run-due.timer`` (:mod:`.units`) with the path of this strongroom executable
and the vault URL filled in, to ``/etc/systemd/system`` (``--user``:
``$XDG_CONFIG_HOME/systemd/user``, by default ``~/.config/systemd/user``; ``--dir DIR``:
DIR), files 0644; a file already there with the same text is left alone, one with another
text replaced (by a rename, never half-written).  It prints the ``systemctl`` commands that
enable them and never runs them.  ``--dry-run`` writes nothing and prints the texts.  It
does not open the vault.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from ..errors import NoVaultGiven, UsageError
from .common import app, json_option
from .output import emit_json, info
from .units import UNITS, render

SYSTEM_DIR = Path("/etc/systemd/system")


def user_dir() -> Path:
    """Where a user's own units go."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def this_executable() -> str:
    """The ``strongroom`` script of this installation: beside the interpreter (a virtual
    environment's ``bin``), else the one on ``PATH``, else the script that was run."""
    beside = Path(sys.executable).parent / "strongroom"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("strongroom")
    return str(Path(found).absolute()) if found else str(Path(sys.argv[0]).absolute())


def _write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` whole (0644); False when it already holds it."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        pass
    except OSError as exc:
        raise UsageError(message=f"cannot read {path}: {exc.strerror}") from None
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(message=f"cannot write {path}: {exc.strerror}"
                                 + (" (run it as root, or with --user)" if exc.errno == 13 else "")) from None
    return True


def enable_commands(user: bool) -> list[str]:
    systemctl = "systemctl --user" if user else "systemctl"
    return [f"{systemctl} daemon-reload",
            f"{systemctl} enable --now strongroom-agent.service",
            f"{systemctl} enable --now strongroom-run-due.timer"]


@click.command("install-units")
@click.option("--user", "user", is_flag=True, help="Install for this user (systemctl --user) instead of the system.")
@click.option("--vault", "vault", metavar="URL", help="The vault the units use (default: the global --vault).")
@click.option("--dir", "directory", metavar="DIR", type=click.Path(file_okay=False),
              help="Write the units to DIR instead of the systemd folder.")
@click.option("--dry-run", is_flag=True, help="Print the units and where they would go; write nothing.")
@json_option
@click.pass_context
def install_units(ctx, user, vault, directory, dry_run, as_json):
    """Write systemd units for the agent and for run-due on a timer, and print how to enable them."""
    vault = vault or app(ctx).vault_url
    if not vault:
        raise NoVaultGiven()
    if "\n" in vault:
        raise UsageError(message="the vault URL holds a line break")
    folder = Path(directory) if directory else (user_dir() if user else SYSTEM_DIR)
    executable = this_executable()
    texts = {name: render(text, executable=executable, vault=vault, user=user) for name, text in UNITS.items()}
    written = {}
    for name, text in texts.items():
        path = folder / name
        if dry_run:
            written[str(path)] = "would write"
            if not as_json:
                click.echo(f"# {path}")
                click.echo(text)
        else:
            written[str(path)] = "written" if _write(path, text) else "unchanged"
    commands = enable_commands(user)
    if as_json:
        emit_json({"executable": executable, "vault": vault, "dry_run": dry_run,
                   "units": [{"path": path, "outcome": outcome} for path, outcome in written.items()],
                   "commands": commands})
        return
    for path, outcome in written.items():
        info(f"{path}: {outcome}")
    info("Enable the agent, or instead run-due every minute from the timer (not both):")
    # the commands are the result a reader needs: printed even with -q
    click.echo(f"  {commands[0]}\n  {commands[1]}\n  # or\n  {commands[2]}")
