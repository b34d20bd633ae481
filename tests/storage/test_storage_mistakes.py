"""Storage mistakes are named, never ignored: options a backend does not take, and a
vault folder where a regular file is in the way."""

from __future__ import annotations

import json

import pytest
import s3fs
import sshfs

from strongroom.errors import ObjectNotFound, StorageError, UnknownStorageOption
from strongroom.storage import open_store
from strongroom.storage.fsspec_store import known_options
from strongroom.vault import Vault
from vaultkit import assert_one_line_error


class TestUnknownStorageOptions:
    def test_a_local_folder_takes_no_option_but_concurrency(self, tmp_path):
        """An option given to a local vault is an error naming it (concurrency still works)."""
        with pytest.raises(UnknownStorageOption, match="'endpoint_url' is not one that a local folder takes"):
            Vault.create(str(tmp_path / "v"), storage_options={"endpoint_url": "http://x"})
        assert not (tmp_path / "v").exists()
        vault = Vault.create(str(tmp_path / "v"), storage_options={"concurrency": 2})
        assert vault.repo.io_threads == 2

    def test_the_command_line_names_the_option_and_never_its_value(self, tmp_path, cli):
        """--storage-option with an unknown key is one line, exit 3, naming the key, not the value."""
        res = cli("--storage-option", "secret=hunter2", "vault", "create", str(tmp_path / "v"), expect=None)
        assert_one_line_error(res, 3, "'secret'", "local folder")
        assert "hunter2" not in res.output

    def test_the_environment_and_the_config_file_are_named_as_the_origin(self, tmp_path, cli, strongroom_home):
        """An unknown option from STRONGROOM_STORAGE_OPTIONS or config.toml says where it came from."""
        env = {"STRONGROOM_STORAGE_OPTIONS": json.dumps({"key": "k"})}
        res = cli("vault", "create", str(tmp_path / "v"), env=env, expect=None)
        assert_one_line_error(res, 3, "'key'", "(from STRONGROOM_STORAGE_OPTIONS)")
        config = strongroom_home / "config.toml"
        config.write_text(f'[storage."{tmp_path}"]\nanon = true\n')
        res = cli("vault", "create", str(tmp_path / "v"), expect=None)
        assert_one_line_error(res, 3, "'anon'", f"(from {config})")

    def test_s3_names_a_misspelt_option_and_suggests_the_right_one(self):
        """s3fs would hand an unknown keyword to botocore's session later, or drop it: refused now."""
        with pytest.raises(UnknownStorageOption, match="'endpont_url' is not one that s3 storage takes; did you mean endpoint_url"):
            open_store("s3://bucket/vault", {"endpoint_url": "http://127.0.0.1:1", "endpont_url": "x"})
        store = open_store("s3://bucket/vault", {"endpoint_url": "http://127.0.0.1:1", "key": "k", "secret": "s",
                                                  "client_kwargs": {}, "profile": "p", "concurrency": 3})
        assert store.url == "s3://bucket/vault"

    def test_sftp_refuses_before_connecting(self):
        """An unknown SFTP option is refused before any connection is tried; the usual ones are known."""
        with pytest.raises(UnknownStorageOption, match="'prot' .* sftp storage takes; did you mean port"):
            open_store("sftp://nobody@127.0.0.1:1/vault", {"known_hosts": None, "prot": 2222})
        assert {"client_keys", "known_hosts", "port", "username", "password", "passphrase", "max_sessions",
                "timeout", "skip_instance_cache"} <= known_options(sshfs.SSHFileSystem)
        assert {"endpoint_url", "key", "secret", "token", "anon", "client_kwargs"} <= known_options(s3fs.S3FileSystem)

    def test_memory_and_unknown_implementations(self):
        """fsspec's own options pass; an implementation whose options are not known is not checked."""
        open_store("memory://mistakes/a", {"skip_instance_cache": True, "use_listings_cache": False})
        with pytest.raises(UnknownStorageOption, match="'bogus'"):
            open_store("memory://mistakes/a", {"bogus": 1})

        class Unknown:
            pass
        assert known_options(Unknown) is None


class TestVaultWhereAFileIsInTheWay:
    def test_under_a_regular_file(self, tmp_path, cli):
        """vault create below a regular file names the file, exit 20, not 'Object not found'."""
        blocker = tmp_path / "plain"
        blocker.write_text("x")
        with pytest.raises(StorageError, match=f"{blocker} is a file, not a folder") as caught:
            Vault.create(str(blocker / "sub" / "vault"))
        assert not isinstance(caught.value, ObjectNotFound)
        res = cli("vault", "create", str(blocker / "vault"), expect=None)
        assert_one_line_error(res, 20, str(blocker), "is a file, not a folder")

    def test_the_path_itself_is_a_regular_file(self, tmp_path, cli):
        """vault create at a regular file says so in one line."""
        blocker = tmp_path / "plain"
        blocker.write_text("x")
        res = cli("vault", "create", str(blocker), expect=None)
        assert_one_line_error(res, 20, str(blocker), "it is a file, not a folder")
        assert blocker.read_text() == "x"
