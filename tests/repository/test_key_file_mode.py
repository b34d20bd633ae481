"""A local key file that group or others may read or write is used, with a warning each time."""

from __future__ import annotations

import logging
import os

import pytest

from strongroom.vault import Vault
from vaultkit import run_strongroom


def _key_file(home, vault: Vault) -> str:
    return str(home / "keys" / f"{vault.vault_id}.key")


class TestUnprotectedKeyFile:
    @pytest.mark.parametrize("mode, words", [(0o644, "read by group and others"), (0o660, "read and written by group"),
                                             (0o602, "written by others")], ids=["0644", "0660", "0602"])
    def test_every_use_warns_once(self, strongroom_home, vault_url, caplog, mode, words):
        """Opening a vault with a key file of mode 0644 (or group/other-writable) logs one
        warning naming the file, its mode and the chmod that fixes it, at every open."""
        vault = Vault.create(vault_url)
        path = _key_file(strongroom_home, vault)
        os.chmod(path, mode)
        with caplog.at_level(logging.WARNING):
            Vault.open(vault_url)
            Vault.open(vault_url)
        warned = [r.getMessage() for r in caplog.records if "UNPROTECTED KEY FILE" in r.getMessage()]
        assert len(warned) == 2
        assert path in warned[0] and f"{mode:04o}" in warned[0] and words in warned[0]
        assert f"chmod 600 {path}" in warned[0] and "\n" not in warned[0]

    def test_a_private_key_file_gives_no_warning(self, strongroom_home, vault_url, caplog):
        """The key file as strongroom writes it (0600) is used without a word."""
        vault = Vault.create(vault_url)
        assert os.stat(_key_file(strongroom_home, vault)).st_mode & 0o777 == 0o600
        with caplog.at_level(logging.WARNING):
            Vault.open(vault_url)
        assert not [r for r in caplog.records if "KEY FILE" in r.getMessage()]

    def test_the_command_line_prints_one_line_and_goes_on(self, strongroom_home, vault_url):
        """The strongroom command shows the warning on stderr and still does its work (exit 0)."""
        vault = Vault.create(vault_url)
        os.chmod(_key_file(strongroom_home, vault), 0o644)
        proc = run_strongroom("--vault", vault_url, "items")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("warning: UNPROTECTED KEY FILE: "), proc.stderr
        assert "Traceback" not in proc.stderr
