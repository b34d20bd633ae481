"""The ``files`` workload: folders and files with their full metadata.

This module is imported on every start of the command line, so the scanner
(:mod:`.scan`) is imported by :meth:`FilesWorkload.backup`, which uses it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator

import click

from strongroom import BackupContext, InvalidSource, Workload

from .patterns import compile_patterns

if TYPE_CHECKING:
    from strongroom import FileRun

    from .scan import ScannedEntry


class FilesWorkload(Workload):
    name = "files"
    description = "files and folders (metadata, links, sparse files, xattrs)"
    consistency = "crash"

    def protect_params(self) -> list[click.Parameter]:
        return [
            click.Option(["--path", "paths"], multiple=True, required=True, metavar="PATH",
                         help="A file or folder to protect (repeatable)."),
            click.Option(["--exclude", "excludes"], multiple=True, metavar="GLOB",
                         help="Leave out what matches (repeatable; '*.tmp', '/abs/**/cache')."),
            click.Option(["--include", "includes"], multiple=True, metavar="GLOB",
                         help="Keep only files that match (repeatable)."),
            click.Option(["--one-file-system"], is_flag=True, default=False,
                         help="Do not cross into other file systems."),
            click.Option(["--exclude-if-present", "exclude_if_present"], multiple=True, metavar="NAME",
                         help="Leave out folders holding a file NAME (repeatable)."),
            click.Option(["--exclude-caches/--no-exclude-caches"], default=False,
                         help="Leave out folders tagged as caches (a CACHEDIR.TAG with its signature)."),
        ]

    def source_from_options(self, options: dict[str, Any]) -> dict:
        return {
            "paths": list(options.get("paths") or ()),
            "excludes": list(options.get("excludes") or ()),
            "includes": list(options.get("includes") or ()),
            "one_file_system": bool(options.get("one_file_system")),
            "exclude_if_present": list(options.get("exclude_if_present") or ()),
            "exclude_caches": bool(options.get("exclude_caches")),
        }

    def validate_source(self, source: dict) -> dict:
        paths = [os.path.abspath(p) for p in source.get("paths", [])]
        if not paths:
            raise InvalidSource(workload=self.name, reason="at least one --path is needed")
        for path in paths:
            if not os.path.lexists(path):
                raise InvalidSource(workload=self.name, reason=f"path {path} does not exist")
        patterns = list(source.get("excludes", [])) + list(source.get("includes", []))
        try:
            compile_patterns(patterns)
        except ValueError as exc:
            raise InvalidSource(workload=self.name, reason=str(exc)) from None
        for name in source.get("exclude_if_present", ()):
            if not name or "/" in name or name in (".", ".."):
                raise InvalidSource(workload=self.name,
                                    reason=f"--exclude-if-present takes a file name, not {name!r}")
        return {**source, "paths": paths}

    def describe(self, source: dict) -> str:
        text = ", ".join(source["paths"])
        if source.get("excludes"):
            text += f" (excluding {', '.join(source['excludes'])})"
        if source.get("includes"):
            text += f" (only {', '.join(source['includes'])})"
        if source.get("exclude_if_present"):
            text += f" (skipping folders holding {', '.join(source['exclude_if_present'])})"
        if source.get("exclude_caches"):
            text += " (skipping cache folders)"
        return text

    def backup(self, ctx: BackupContext) -> Iterator[ScannedEntry | FileRun]:
        from .scan import Scanner
        from .scanprocess import scan

        source = ctx.item.source
        scanner = Scanner(
            source["paths"],
            excludes=source.get("excludes", ()),
            includes=source.get("includes", ()),
            one_file_system=source.get("one_file_system", False),
            exclude_if_present=source.get("exclude_if_present", ()),
            exclude_caches=source.get("exclude_caches", False),
            leave_out=(ctx.vault_location,) if ctx.vault_location else (),
        )
        # Past a few thousand entries, the scan of a tree backed up before goes on in a second
        # process: most of its files are unchanged, and the walk that compares them with the
        # parent point is the limit.  A first backup is bound by reading and sealing instead
        # (which worker processes do on every core): there a second scan would cost memory
        # and gain nothing.
        yield from scan(scanner) if ctx.parent is not None else scanner
        for warning in scanner.warnings:
            ctx.warn(f"{warning.path}: {warning.reason}")
