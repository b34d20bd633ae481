"""Manual pages in roff (``man(7)`` macros) from the click command tree.

:func:`pages` walks the root command and every subcommand and returns one page per
command, named as ``git`` names its pages: ``strongroom`` for the root,
``strongroom-vault-key-add`` for ``strongroom vault key add``.  Each page is built from
what ``--help`` shows, through click's own pieces (the usage line, each option's help
record with its default and range, the help text with its ``\\b`` blocks kept as they
are), so a page says what ``--help`` says: NAME, SYNOPSIS, DESCRIPTION, OPTIONS (in the
sections a command groups them in, see :func:`option_sections`), NOTES (the epilog
``--help`` prints after the options), sections the caller adds
(the root page's ENVIRONMENT and EXIT STATUS), COMMANDS for a group, SEE ALSO.  Hidden commands and options are left out.  Pages hold no date (the version
stands in the footer), so the same code writes the same bytes.

It promises text that ``groff -man`` reads without a warning: backslashes, hyphens and
a dot or quote at the start of a line are escaped.
"""

from __future__ import annotations

import inspect
from typing import Iterator

import attrs
import click

SECTION = "1"


@attrs.frozen
class ManPage:
    """One manual page: ``name`` (``strongroom-vault-create``) and its roff ``text``."""

    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.name}.{SECTION}"


def escape(text: str) -> str:
    """Text as roff shows it literally: backslash, hyphen (a minus sign, as options need)."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def _line(text: str) -> str:
    """One line of running text; one starting with '.' or a quote is not a request."""
    text = escape(text)
    return f"\\&{text}" if text.startswith((".", "'")) else text


def _paragraphs(help_text: str) -> list[str]:
    """The help text as roff: paragraphs refilled by groff; click's ``\\b`` blocks kept as
    they are written (``.nf``)."""
    out: list[str] = []
    for block in inspect.cleandoc(help_text).split("\f")[0].split("\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        if lines[0].strip() == "\b":
            out += [".PP", ".nf", *(_line(ln) for ln in lines[1:]), ".fi"]
        else:
            out += [".PP", *(_line(ln.strip()) for ln in lines if ln.strip())]
    return out


def option_sections(command: click.Command, ctx: click.Context) -> list[tuple[str, list[click.Parameter]]]:
    """The option sections of a command's page: its own (``option_sections(ctx)``, as the
    restore command's workloads), else one "OPTIONS" with every option."""
    own = getattr(command, "option_sections", None)
    if callable(own):
        return own(ctx)
    return [("Options", [p for p in command.get_params(ctx) if isinstance(p, click.Option)])]


def _options(params: list[click.Parameter], ctx: click.Context) -> list[str]:
    out: list[str] = []
    for param in params:
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        names, help_text = record
        out += [".TP", f"\\fB{escape(names)}\\fR"]
        out += [_line(help_text)] if help_text else []
    return out


def page_name(path: list[str]) -> str:
    return "-".join(path)


#: Extra sections of a page: (title, [(term, text), ...]), shown after the options.
Sections = list[tuple[str, list[tuple[str, str]]]]


def render(command: click.Command, ctx: click.Context, path: list[str], version: str,
           extra: Sections = ()) -> ManPage:
    """The page of ``command``, reached from the root by the names in ``path``; ``extra``
    sections (the root's environment and exit status) come after its options."""
    name = page_name(path)
    summary = command.get_short_help_str(limit=200) or name
    lines = [
        f'.TH "{escape(name.upper())}" "{SECTION}" "" "strongroom {escape(version)}" "strongroom manual"',
        ".SH NAME", f"{escape(name)} \\- {escape(summary)}",
        ".SH SYNOPSIS", f"\\fB{escape(' '.join(path))}\\fR {escape(' '.join(command.collect_usage_pieces(ctx)))}",
    ]
    if command.help:
        lines += [".SH DESCRIPTION", *_paragraphs(command.help)]
    for title, params in option_sections(command, ctx):
        body = _options(params, ctx)
        if body:
            lines += [f".SH {escape(title.upper())}", *body]
    if command.epilog:  # what --help prints after the options
        lines += [".SH NOTES", *_paragraphs(command.epilog)]
    for title, entries in extra:
        lines.append(f".SH {escape(title.upper())}")
        for term, text in entries:
            lines += [".TP", f"\\fB{escape(term)}\\fR", _line(text)]
    subcommands = _visible_subcommands(command, ctx)
    if subcommands:
        lines.append(".SH COMMANDS")
        for sub_name, sub in subcommands:
            lines += [".TP", f"\\fB{escape(page_name([*path, sub_name]))}\\fR(1)",
                      _line(sub.get_short_help_str(limit=200))]
    see_also = ([page_name(path[:-1])] if len(path) > 1 else []) + [
        page_name([*path, sub_name]) for sub_name, _ in subcommands]
    if see_also:
        lines += [".SH SEE ALSO", ", ".join(f"\\fB{escape(n)}\\fR(1)" for n in see_also)]
    return ManPage(name, "\n".join(lines) + "\n")


def _visible_subcommands(command: click.Command, ctx: click.Context) -> list[tuple[str, click.Command]]:
    if not isinstance(command, click.Group):
        return []
    found = []
    for sub_name in command.list_commands(ctx):
        sub = command.get_command(ctx, sub_name)
        if sub is not None and not sub.hidden:
            found.append((sub_name, sub))
    return found


def pages(root: click.Command, version: str, prog: str = "strongroom",
          root_sections: Sections = ()) -> Iterator[ManPage]:
    """Every page of the tree under ``root``, the root's first (with ``root_sections``),
    then depth first."""

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> Iterator[ManPage]:
        ctx = command.context_class(command, info_name=path[-1], parent=parent, **command.context_settings)
        yield render(command, ctx, path, version, root_sections if parent is None else ())
        for sub_name, sub in _visible_subcommands(command, ctx):
            yield from walk(sub, [*path, sub_name], ctx)

    yield from walk(root, [prog], None)
