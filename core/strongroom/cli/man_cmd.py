"""``strongroom man --output DIR``: write a manual page for every command.

Writes ``strongroom.1``, ``strongroom-backup.1``, ``strongroom-vault-key-add.1``... (one
per command and group, those of installed plugins included: :mod:`.manpage`) into DIR,
created if missing; a page already there with the same text is left alone, one with
another text replaced (written beside it, then renamed).  Other files in DIR are never
touched.  It does not open a vault.  Read a page with ``man -l DIR/strongroom-backup.1``,
or put DIR under a ``man1`` folder of ``MANPATH``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import click

from .. import errors
from ..errors import UsageError
from .common import json_option
from .manpage import Sections, pages
from .output import emit_json, info

#: The root page's ENVIRONMENT: what each variable does (the guide's table, shortened).
ENVIRONMENT = [
    ("STRONGROOM_VAULT", "The vault URL when --vault is not given (else default_vault in config.toml)."),
    ("STRONGROOM_HOME", "The folder of the local key store (keys/) and config.toml; default ~/.config/strongroom."),
    ("STRONGROOM_PASSPHRASE", "The passphrase that opens a passphrase slot (never taken for vault key add)."),
    ("STRONGROOM_STORAGE_OPTIONS", "A JSON object of storage options for every vault URL."),
    ("STRONGROOM_DISABLE_PLUGINS", "Comma-separated plugins not to load, as --disable-plugin."),
    ("STRONGROOM_LOG_LEVEL", "debug, info, warning or error, when --log-level is not given."),
    ("STRONGROOM_DEBUG", "Any non-empty value: errors print a traceback before their line."),
]


def exit_status() -> list[tuple[str, str]]:
    """The root page's EXIT STATUS: the codes of the command line and of every error class
    of strongroom.errors, by code (workloads add their own: their docs list them)."""
    from . import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_TERMINATED, EXIT_WARNINGS

    by_code: dict[int, list[str]] = {0: ["success"], EXIT_WARNINGS: ["completed with warnings"],
                                     2: ["a usage error on the command line"]}
    for name, cls in sorted(vars(errors).items()):
        if isinstance(cls, type) and issubclass(cls, errors.StrongroomError) and cls.__module__ == errors.__name__:
            by_code.setdefault(cls.exit_code, []).append(name)
    by_code.update({EXIT_INTERNAL: ["an internal error (a bug)"], EXIT_INTERRUPTED: ["interrupted (Ctrl-C)"],
                    EXIT_PIPE_CLOSED: ["standard output was closed"], EXIT_TERMINATED: ["terminated (SIGTERM)"]})
    return [(str(code), ", ".join(names)) for code, names in sorted(by_code.items())] + [
        ("docs/cli.md", "lists what each code means, with the codes of the built-in workloads")]


def root_sections() -> Sections:
    return [("Environment", ENVIRONMENT), ("Exit status", exit_status())]


def _write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` whole; False when it already holds it."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError):
        pass
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(message=f"cannot write {path}: {exc.strerror}") from None
    return True


@click.command("man")
@click.option("--output", "output", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder to write the pages into (created if missing).")
@json_option
@click.pass_context
def man(ctx: click.Context, output: str, as_json: bool) -> None:
    """Write a manual page (roff, section 1) for every command into DIR."""
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(message=f"cannot create {folder}: {exc.strerror}") from None
    version = importlib.metadata.version("strongroom")
    outcomes = {}
    for page in pages(ctx.find_root().command, version, root_sections=root_sections()):
        path = folder / page.filename
        outcomes[page.name] = "written" if _write(path, page.text) else "unchanged"
    if as_json:
        emit_json({"folder": str(folder), "pages": [{"name": name, "file": f"{name}.1", "outcome": outcome}
                                                     for name, outcome in outcomes.items()]})
        return
    written = sum(1 for outcome in outcomes.values() if outcome == "written")
    info(f"{len(outcomes)} manual pages in {folder} ({written} written, {len(outcomes) - written} unchanged);"
         f" read one with: man -l {folder / 'strongroom.1'}")
