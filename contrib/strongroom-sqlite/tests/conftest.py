"""Fixtures of the sqlite workload's tests: a vault in a temporary folder, a sample database."""

from __future__ import annotations

import pytest
import strongroom

from sqlitedbs import make_shop


@pytest.fixture
def vault(strongroom_isolated_home, tmp_path):
    """A new vault in a local folder, its key in an isolated strongroom home."""
    return strongroom.create_vault(str(tmp_path / "vault"))


@pytest.fixture
def shop(tmp_path):
    """An idle shop database in WAL mode (see :func:`sqlitedbs.make_shop`)."""
    folder = tmp_path / "data"
    folder.mkdir()
    return make_shop(folder / "shop.db")
