"""Zero runs and the vaults made before them: the frozen format-1 fixture keeps its
chunking, also after ``vault upgrade``."""

from __future__ import annotations

import json

from fixturekit import FIXTURES, Fixture

from strongroom.repository.chunker import ChunkerParams
from strongroom.vault import Vault


def test_vault_without_the_setting_keeps_its_chunking(tmp_path, strongroom_home, cli):
    """The format-1 fixture's settings have no zero_run: it opens with zero runs off, and
    'vault upgrade' keeps the chunker settings as they were."""
    url = tmp_path / "old"
    Fixture.load(FIXTURES / "vault-format-1").install(url, strongroom_home)
    vault = Vault.open(str(url))
    before = dict(vault.settings.chunker)
    assert "zero_run" not in before and vault.chunker_params.zero_run == 0
    assert cli("--vault", str(url), "vault", "upgrade").exit_code == 0
    upgraded = Vault.open(str(url))
    assert upgraded.settings.chunker == before
    assert upgraded.chunker_params == ChunkerParams.from_dict(before) and upgraded.chunker_params.zero_run == 0
    assert json.loads((url / "strongroom.json").read_text())["features"] == []
