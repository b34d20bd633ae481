"""``vault audit --verify`` and ``vault verify`` find a journal that was tampered with:
an entry deleted (a gap), an entry rewritten with the vault key (its successor's hash no
longer matches), an object under ``journal/`` that is not an entry.  Each problem is one
line on standard error; the exit code is 55 (``JournalTampered``), 0 when intact."""

from __future__ import annotations

import json

import pytest

from strongroom.models import time_id
from strongroom.vault import Vault


@pytest.fixture
def journaled(vault, tmp_path):
    """A vault with a journal of a dozen entries."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    vault.protect("files", "docs", {"paths": [str(src)]})
    for _ in range(3):
        vault.backup("docs")
    vault.stop("docs", retain="forever")
    vault.update_settings(name="renamed")
    names = [e.name for e in vault.journal.entries()]
    assert len(names) == 13 and vault.journal.verify().intact
    return vault


def _problems(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("journal: ")]


class TestAuditVerify:
    def test_intact(self, journaled, cli):
        """An untouched journal: exit 0 and the number of entries checked."""
        assert "Checked 13 journal entries: the chain is intact." in cli("vault", "audit", "--verify").stdout

    def test_a_deleted_entry_is_a_gap(self, journaled, cli):
        """Deleting an entry in the middle: its successor names a predecessor that is missing."""
        names = [e.name for e in journaled.journal.entries()]
        journaled.store.delete(names[5])
        result = cli("vault", "audit", "--verify", expect=55)
        assert _problems(result) == [f"journal: gap before {names[6]}: the entry it follows, {names[5]}, is missing"]
        assert result.stderr.strip().splitlines()[-1].startswith("strongroom: error: The audit journal was changed")

    def test_an_entry_rewritten_with_the_key(self, journaled, cli):
        """An entry re-encrypted with the key and other content decrypts, but its successor's
        hash of it no longer matches."""
        names = [e.name for e in journaled.journal.entries()]
        doc = journaled.repo.get_document(names[4])
        doc["params"] = {"item": "someone-else"}
        journaled.repo.put_document(names[4], doc)
        result = cli("vault", "audit", "--verify", expect=55)
        (problem,) = _problems(result)
        assert names[4] in problem and "changed" in problem and "hash" in problem

    def test_garbage_under_a_journal_name(self, journaled, cli):
        """An object with an entry's name that does not decrypt is a changed or damaged entry."""
        name = f"journal/{time_id()[:8]}/{time_id()}"
        journaled.store.put(name, b"\x00garbage" * 20)
        result = cli("vault", "audit", "--verify", expect=55)
        (problem,) = _problems(result)
        assert name in problem and "does not decrypt" in problem

    def test_an_entry_replaced_by_another_entry(self, journaled, cli):
        """Copying one genuine entry over another (both decrypt) breaks the chain too."""
        names = [e.name for e in journaled.journal.entries()]
        journaled.repo.put_document(names[3], journaled.repo.get_document(names[8]))
        assert len(_problems(cli("vault", "audit", "--verify", expect=55))) >= 1

    def test_a_foreign_object_is_a_note(self, journaled, cli):
        """An object whose name is not an entry's is never read: a note, exit 0."""
        journaled.store.put("journal/readme.txt", b"hello")
        result = cli("vault", "audit", "--verify")
        assert "note: journal/readme.txt" in result.stdout and _problems(result) == []

    def test_json(self, journaled, cli):
        """--json reports the entries, whether intact, and the problems; exit 55 all the same."""
        journaled.store.delete(journaled.journal.entries()[2].name)
        data = json.loads(cli("vault", "audit", "--verify", "--json", expect=55).stdout)
        assert data["intact"] is False and data["entries"] == 12 and len(data["problems"]) == 1

    def test_listing_leaves_damaged_entries_out(self, journaled, cli):
        """vault audit still lists what it can read when an entry is damaged."""
        names = [e.name for e in journaled.journal.entries()]
        journaled.store.put(names[2], b"garbage")
        assert len(json.loads(cli("vault", "audit", "--json").stdout)) == 12


class TestVaultVerify:
    def test_verify_reports_a_broken_chain(self, journaled, cli):
        """vault verify checks the journal: a deleted entry is a problem (exit 51), named on stderr."""
        names = [e.name for e in journaled.journal.entries()]
        journaled.store.delete(names[7])
        result = cli("vault", "verify", expect=None)
        assert result.exit_code == 51 and "Traceback" not in result.output
        assert f"journal: gap before {names[8]}" in result.stderr

    def test_verify_of_an_intact_journal(self, journaled, cli):
        """An intact journal adds no problem to verify."""
        cli("vault", "verify")
        assert Vault.open(journaled.url).verify().ok
