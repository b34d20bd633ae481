"""Every strongroom command line the docs show (code blocks and inline code: the guide, the
command reference, the restic/Borg page and the other guides) names a command that exists,
with options that command has, so the docs cannot drift from the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from strongroom.cli import build_cli
from strongroom.errors import StrongroomError
from strongroom.plugins import PluginHost

ROOT = Path(__file__).resolve().parent.parent
#: plugins.md is left out: its commands are those of example plugins (`protect redis`).
DOCS = ["README.md", *(f"docs/{path.name}" for path in sorted((ROOT / "docs").glob("*.md"))
                       if path.name != "plugins.md")]


def command_lines(doc: str) -> list[str]:
    """The strongroom command lines of a doc: '$ ' lines of console blocks, the lines of sh
    blocks, and the inline code spans that start with 'strongroom '."""
    text = (ROOT / doc).read_text()
    found = []
    for kind, block in re.findall(r"```(console|sh)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():  # continued lines joined
            if kind == "console" and not line.startswith("$ "):
                continue  # output
            line = line.removeprefix("$ ").split(" #", 1)[0]
            if re.search(r"(^|\s)strongroom\s", line) and not line.startswith(("#", "eval")):
                found.append(line)
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    found += re.findall(r"`(strongroom [^`]+)`", outside)
    # the strongroom command only: not what a pipe, a redirection or a second command adds
    return [re.split(r" (?:\\?\||>|&&|;) ", line, maxsplit=1)[0] for line in found]


def parse(root: click.Group, words: list[str]) -> str:
    """Parse the words as the strongroom command line would, down to the last command,
    without running anything; return the command's path.  Placeholder values (ITEM, a
    missing argument, ``always|if-newer|never``) are not errors; an unknown command or
    option is (click's NoSuchOption, or its UsageError 'No such command')."""
    args = words[words.index("strongroom") + 1:]
    ctx = root.make_context("strongroom", args, resilient_parsing=True)
    path = ["strongroom"]
    command: click.Command = root
    while isinstance(command, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            break
        if "|" in rest[0] and not rest[0].startswith("-"):  # "immutability enable|disable|lock"
            for alternative in rest[0].split("|"):
                assert alternative in command.commands, f"{' '.join(path)} has no command {alternative!r}"
            rest = [rest[0].split("|")[0], *rest[1:]]
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        if isinstance(command, click.Group) and rest[:1] == ["..."]:
            break  # "protect ... --policy NAME": any of its commands
        try:
            ctx = command.make_context(name, [word for word in rest if word != "..."], parent=ctx)
        except (click.MissingParameter, click.BadParameter, click.exceptions.NoArgsIsHelpError):
            break  # a group named alone, or placeholders: the command itself exists
        except StrongroomError:
            break  # an option's callback ran on a placeholder (reading --ticket FILE): it exists
        except click.NoSuchOption as exc:
            raise AssertionError(f"{' '.join(path)}: {exc.format_message()}") from None
    return " ".join(path)


CASES = [(doc, line) for doc in DOCS for line in command_lines(doc)]


@pytest.fixture(scope="module")
def root():
    return build_cli(PluginHost.create())


def test_the_docs_show_commands():
    """The guide and the restic/Borg page do show command lines (the extraction works)."""
    assert len([c for c in CASES if c[0] == "docs/guide.md"]) > 60
    assert len([c for c in CASES if c[0] == "docs/coming-from.md"]) > 40


@pytest.mark.parametrize(("doc", "line"), CASES, ids=[f"{d}: {line[:60]}" for d, line in CASES])
def test_a_command_line_names_what_exists(root, doc, line):
    """The command exists, down to its subcommand, and has every option the line gives it."""
    try:
        words = shlex.split(line.replace("\\|", "|"))
    except ValueError:  # a backslash or quote shlex does not take: words as written
        words = line.split()
    words = [word.strip("[]") for word in words]
    words = [word for word in words if word and word not in ("-h", "--help")]
    try:
        parse(root, words)
    except click.BadOptionUsage as exc:
        if "requires an argument" not in exc.format_message():  # a placeholder left out: not an error
            pytest.fail(f"{line}: {exc.format_message()}")
    except click.UsageError as exc:  # 'No such command', an option a group does not have
        pytest.fail(f"{line}: {exc.format_message()}")
