"""The documentation keeps up with the code: commands, exit codes, quick start, links."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path

import click
import pytest
import strongroom_postgres.errors
import strongroom_vm.errors

from strongroom import errors
from strongroom.cli import build_cli
from strongroom.markers import ENTRY_POINT_GROUP
from strongroom.plugins import PluginHost

#: Modules whose error classes are listed in docs/cli.md: the core's and the built-in workloads'.
ERROR_MODULES = (errors, strongroom_postgres.errors, strongroom_vm.errors)

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def builtin_plugins() -> PluginHost:
    """The plugin host with only strongroom's own plugins: docs/cli.md documents those; a
    separately installed plugin (contrib/) documents its commands in its own README."""
    others = [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
              if ep.dist is not None and ep.dist.name != "strongroom"]
    return PluginHost.create(disabled=others)


def command_paths() -> list[str]:
    """Every command and subcommand of the CLI as strongroom builds it, as 'strongroom a b'."""
    found: list[str] = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append(" ".join(["strongroom", *path]))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(build_cli(builtin_plugins()), [])
    return found[1:]


def error_classes() -> list[type[errors.StrongroomError]]:
    """Every error class defined in strongroom.errors and in the built-in workloads' errors."""
    return [
        cls for module in ERROR_MODULES for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, errors.StrongroomError) and cls.__module__ == module.__name__
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


def test_no_error_class_takes_a_code_of_the_shell():
    """No error exits 126 or more: the shell's own codes (cannot execute, not found) and
    128 + N, a process killed by signal N, which strongroom's 130, 141 and 143 mean."""
    taken = sorted({cls.exit_code for cls in error_classes() if cls.exit_code >= 126})
    assert taken == [], f"exit codes {taken} look like the shell's or a signal's"
    codes = {int(row[0]) for row in exit_code_rows() if row[0].isdigit()}
    assert {c for c in codes if c >= 126} == {130, 141, 143}


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
