"""The vault contract (strongroom.testing.VaultContract) on every built-in backend.

Memory, a local folder, SFTP against OpenSSH on loopback and S3 against an S3 server on
loopback each get a whole vault: backup, byte-for-byte and item-level restore, dedup,
verify, corruption detection, reopening, and the CLI.
"""

from __future__ import annotations

import pytest

from strongroom.testing import VaultContract


class TestVaultOnMemory(VaultContract):
    @pytest.fixture
    def vault_location(self, strongroom_memory_location):
        return strongroom_memory_location


class TestVaultOnLocalFolder(VaultContract):
    @pytest.fixture
    def vault_location(self, strongroom_local_location):
        return strongroom_local_location


class TestVaultOnSftp(VaultContract):
    @pytest.fixture
    def vault_location(self, strongroom_sftp_location):
        return strongroom_sftp_location


class TestVaultOnS3(VaultContract):
    @pytest.fixture
    def vault_location(self, strongroom_s3_location):
        return strongroom_s3_location
