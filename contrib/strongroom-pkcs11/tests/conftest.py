"""Fixtures of the pkcs11 tests: a SoftHSM2 of the test's own with one token, an isolated strongroom home."""

from __future__ import annotations

import pytest

from hsmkit import PIN, TOKEN, make_hsm


@pytest.fixture
def hsm(tmp_path, strongroom_isolated_home, strongroom_weak_kdf, monkeypatch):
    """SoftHSM2 with token ``backup-token`` (user PIN in ``$HSM_PIN``), its own configuration and folder."""
    found = make_hsm(tmp_path)
    found.init_token(TOKEN)
    monkeypatch.setenv("HSM_PIN", PIN)
    monkeypatch.setenv("SOFTHSM2_CONF", str(found.conf))
    return found
