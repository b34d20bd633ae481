"""The documentation keeps up with the code: commands, exit codes, quick start, links."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from strongroom import errors
from strongroom.cli import build_cli
from strongroom.plugins import PluginHost

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def command_paths() -> list[str]:
    """Every command and subcommand of the CLI as it is built, as 'strongroom a b'."""
    found: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append(" ".join(["strongroom", *path]))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(build_cli(PluginHost.create()), [])
    return found[1:]


def error_classes() -> list[type[errors.StrongroomError]]:
    """Every error class defined in strongroom.errors."""
    return [
        cls for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.StrongroomError) and cls.__module__ == errors.__name__
    ]


def exit_code_rows() -> list[list[str]]:
    """The cells of the table in the 'Exit codes' section of docs/cli.md."""
    text = CLI_MD.read_text()
    section = text.split("\n## Exit codes", 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not set(line) <= set("|-: ")
    ]


@pytest.mark.parametrize("path", command_paths())
def test_every_command_is_in_the_reference(path):
    """Every command and subcommand appears in docs/cli.md as `strongroom <path>`."""
    assert f"`{path}`" in CLI_MD.read_text(), f"{path} is not documented in docs/cli.md"


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_class_is_in_the_exit_code_table(cls):
    """Every error class appears in the exit-code table of docs/cli.md with its exit code."""
    rows = exit_code_rows()
    assert any(
        f"`{cls.__name__}`" in row and str(cls.exit_code) in row for row in rows
    ), f"{cls.__name__} (exit code {cls.exit_code}) is missing from the exit-code table"


def test_exit_code_table_has_the_codes_of_the_command_itself():
    """The exit-code table lists 0, 1, 2, 99 and 130, which no error class defines."""
    codes = {row[0] for row in exit_code_rows()}
    assert {"0", "1", "2", "99", "130"} <= codes


def test_quick_start_uses_the_scripts():
    """The README's quick start runs `sh scripts/demo.sh` and `sh scripts/test.sh`, which exist."""
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"sh {script}" in quick_start
        assert (ROOT / script).is_file()


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(doc):
    """Every relative link in README.md and docs/*.md points to an existing file."""
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or a link inside the same page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"broken links in {doc.name}: {broken}"
