"""Lists of values the docs spell out match the code: job types and states (docs/cli.md), and
the examples of exit codes the guide gives."""

from __future__ import annotations

import re
from pathlib import Path

from strongroom import errors
from strongroom.models import JOB_STATES, JOB_TYPES

from vaultkit import run_strongroom

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = (ROOT / "docs" / "cli.md").read_text()


def option_row(option: str) -> str:
    """The meaning cell of `option`'s row in the jobs section of docs/cli.md."""
    section = CLI_MD.split("### `strongroom jobs`", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| `{option}")]
    assert len(rows) == 1, f"{option} has no row of its own in the jobs section"
    return rows[0].split("|")[2]


def quoted(cell: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", cell))


class TestJobsDocs:
    def test_every_job_type_is_listed(self):
        """jobs --type lists exactly the job types the code records."""
        assert quoted(option_row("--type TYPE")) == set(JOB_TYPES)

    def test_every_job_state_is_listed(self):
        """jobs --state lists every job state (and the two shown for jobs whose process is gone)."""
        assert quoted(option_row("--state STATE")) == set(JOB_STATES) | {"abandoned", "stale"}


class TestExitCodeExamples:
    def test_an_invalid_item_name_exits_as_documented(self, tmp_path):
        """An invalid item name exits 3 (UsageError), and the exit-code table does not give it as 2."""
        env = {"STRONGROOM_HOME": str(tmp_path / "home"), "STRONGROOM_VAULT": str(tmp_path / "vault")}
        assert run_strongroom("vault", "create", tmp_path / "vault", env=env).returncode == 0
        result = run_strongroom("protect", "files", "bad name!", "--path", tmp_path, env=env)
        assert result.returncode == errors.UsageError.exit_code == 3, result.stderr
        assert "invalid item name" in result.stderr and "Traceback" not in result.stderr
        row_2 = [line for line in CLI_MD.splitlines() if line.startswith("| 2 | `StrongroomError`")]
        assert row_2 and "for example an invalid item name" not in row_2[0]
        assert "An invalid item name is a `UsageError`, 3" in row_2[0]
