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

from ..errors import UsageError
from .common import json_option
from .manpage import pages
from .output import emit_json, info


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
    for page in pages(ctx.find_root().command, version):
        path = folder / page.filename
        outcomes[page.name] = "written" if _write(path, page.text) else "unchanged"
    if as_json:
        emit_json({"folder": str(folder), "pages": [{"name": name, "file": f"{name}.1", "outcome": outcome}
                                                     for name, outcome in outcomes.items()]})
        return
    written = sum(1 for outcome in outcomes.values() if outcome == "written")
    info(f"{len(outcomes)} manual pages in {folder} ({written} written, {len(outcomes) - written} unchanged);"
         f" read one with: man -l {folder / 'strongroom.1'}")
