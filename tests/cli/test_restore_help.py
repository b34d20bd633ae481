"""``restore --help`` shows which workload each option belongs to, in sections named after it."""

from __future__ import annotations

import re

from vaultkit import run_strongroom


def sections(help_text: str) -> dict[str, list[str]]:
    """The options (long names) listed under each section heading of a --help text."""
    found: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        heading = re.fullmatch(r"(\S.*):", line)
        if heading:
            current = found.setdefault(heading.group(1), [])
        elif current is not None and (option := re.match(r"  (?:-\w, )?(--[\w-]+)", line)):
            current.append(option.group(1))
    return found


class TestRestoreHelp:
    def test_options_are_grouped_by_workload(self):
        """The core's options come first; postgres, vm and sqlite options each under their own heading."""
        shown = sections(run_strongroom("restore", "--help").stdout)
        assert list(shown)[:1] == ["Options (every workload)"]
        assert {"--target", "--force", "--overwrite", "--from-secondary", "--json", "--progress",
            "--progress-json", "--help"} == set(
            shown["Options (every workload)"])
        assert {"--to-database", "--database", "--schema", "--table", "--jobs", "--dsn"} <= set(shown["postgres options"])
        assert set(shown["vm options"]) == {"--disk", "--format", "--files", "--luks-passphrase-env", "--luks-key-file",
                                            "--define"}
        assert set(shown["sqlite options"]) == {"--sqlite-table", "--sqlite-format"}

    def test_every_option_is_shown_once_and_still_parses(self):
        """Grouping changes no option name: each is listed once and a workload's option is still accepted."""
        shown = sections(run_strongroom("restore", "--help").stdout)
        listed = [option for options in shown.values() for option in options]
        assert len(listed) == len(set(listed))
        result = run_strongroom("restore", "--disk", "vda", "--table", "public.t", "--help")
        assert result.returncode == 0 and "vm options:" in result.stdout

    def test_a_disabled_workload_takes_its_section_away(self):
        """With the postgres plugin disabled there is no postgres section and no postgres option."""
        shown = sections(run_strongroom("--disable-plugin", "postgres", "restore", "--help").stdout)
        assert "postgres options" not in shown
        assert "--to-database" not in [option for options in shown.values() for option in options]
