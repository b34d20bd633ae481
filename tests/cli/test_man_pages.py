"""``strongroom man --output DIR``: a page for every command, each read by groff without a warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import click
import pytest

from strongroom.cli import build_cli
from strongroom.plugins import PluginHost

from vaultkit import run_strongroom


def command_pages() -> dict[str, click.Command]:
    """Every command the installed strongroom has (plugins' included), by page name."""
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str]) -> None:
        found["-".join(path)] = command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                walk(sub, [*path, name])

    walk(build_cli(PluginHost.create()), ["strongroom"])
    return found


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("man")
    result = run_strongroom("man", "--output", folder, "--json")
    assert result.returncode == 0, result.stderr
    return folder, json.loads(result.stdout)


class TestManPages:
    def test_every_command_has_a_page(self, written):
        """One page per command and group, named like git's (strongroom-vault-key-add.1), and no other."""
        folder, report = written
        expected = set(command_pages())
        assert {"strongroom", "strongroom-backup", "strongroom-vault-key-add", "strongroom-man"} <= expected
        assert {p["name"] for p in report["pages"]} == expected
        assert {p.name for p in folder.iterdir()} == {f"{name}.1" for name in expected}

    @pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (Debian: groff-base)")
    def test_groff_reads_every_page_without_a_warning(self, written):
        """groff -man with every warning on says nothing about any page."""
        folder, _ = written
        for page in sorted(folder.iterdir()):
            checked = subprocess.run(["groff", "-man", "-Tutf8", "-z", "-ww", str(page)],
                                     capture_output=True, text=True)
            assert checked.returncode == 0 and checked.stderr == "", f"{page.name}: {checked.stderr}"

    @pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed (Debian: man-db)")
    def test_man_shows_a_page_with_its_options(self, written):
        """man -l renders a command's page: its name line, synopsis, and every option --help lists."""
        folder, _ = written
        shown = subprocess.run(["man", "-l", str(folder / "strongroom-backup.1")], capture_output=True,
                               text=True, env={**os.environ, "MANWIDTH": "200", "MAN_KEEP_FORMATTING": ""})
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout
        assert "strongroom-backup - Back up ITEM now" in text
        assert "strongroom backup [OPTIONS] ITEM" in text
        help_text = run_strongroom("backup", "--help").stdout
        options = [word for word in help_text.split() if word.startswith("--")]
        assert options and all(option in text for option in options)
        assert "strongroom(1)" in text  # SEE ALSO the parent

    def test_a_group_lists_its_commands(self, written):
        """A group's page names each subcommand's page."""
        folder, _ = written
        text = (folder / "strongroom-vault-key.1").read_text()
        for name in command_pages()["strongroom-vault-key"].commands:
            assert f"\\fBstrongroom\\-vault\\-key\\-{name.replace('-', chr(92) + '-')}\\fR(1)" in text

    def test_a_second_run_leaves_the_pages_alone(self, tmp_path):
        """The pages hold no date: writing them again changes nothing."""
        run_strongroom("man", "--output", tmp_path)
        again = json.loads(run_strongroom("man", "--output", tmp_path, "--json").stdout)
        assert {p["outcome"] for p in again["pages"]} == {"unchanged"}

    def test_an_unwritable_folder_is_one_line(self, tmp_path):
        """A folder that cannot be created is one error line with exit code 3 (UsageError), no traceback."""
        (tmp_path / "file").write_text("x")
        result = run_strongroom("man", "--output", tmp_path / "file" / "pages")
        assert result.returncode == 3 and "Traceback" not in result.stderr
        assert result.stderr.startswith("strongroom: error: cannot create")

    def test_restore_page_has_a_section_per_workload(self, written):
        """restore's page shows its options in the sections --help shows: every workload's, then each workload's."""
        folder, _ = written
        text = (folder / "strongroom-restore.1").read_text()
        order = [text.index(f".SH {title}\n") for title in
                 ("OPTIONS (EVERY WORKLOAD)", "POSTGRES OPTIONS", "VM OPTIONS")]
        assert order == sorted(order)
        assert text.index("\\-\\-to\\-database") > order[1] and text.index("\\-\\-disk") > order[2]

    def test_the_root_page_has_environment_and_exit_status(self, written):
        """strongroom(1) names the environment variables and every exit code of strongroom.errors."""
        from strongroom import errors

        folder, _ = written
        text = (folder / "strongroom.1").read_text()
        assert ".SH ENVIRONMENT" in text and "STRONGROOM_VAULT" in text and "STRONGROOM_PASSPHRASE" in text
        status = text.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
        for cls in (errors.ItemNotFound, errors.UsageError, errors.NoVaultGiven):
            listed = status.split(f"\\fB{cls.exit_code}\\fR\n", 1)[1].split("\n", 1)[0]
            assert cls.__name__ in listed.split(", ")

    def test_an_epilog_is_kept_as_written(self, written):
        """What --help prints after the options (guard sign's list of operations) is the page's NOTES, lines kept."""
        folder, _ = written
        text = (folder / "strongroom-guard-sign.1").read_text()
        notes = text.split(".SH NOTES\n", 1)[1].split(".SH ", 1)[0]
        assert ".nf" in notes and "points.delete" in notes and "vault.delete" in notes
