"""open_store(), URL redaction and the translation of driver errors."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from strongroom.errors import ObjectNotFound, StorageError, TransientStorageError
from strongroom.storage import (
    FaultPlan, FaultyStore, FsspecStore, LockingStore, RetryingStore, capabilities_of, direct_read_folder_of,
    object_lock_of, open_store, redact_url,
)
from strongroom.storage.ratelimit import RateLimitedStore
from strongroom.storage.base import is_transient, map_error


class TestOpenStore:
    def test_plain_relative_path_is_local(self, tmp_path, monkeypatch):
        """A relative path opens a local store rooted at its absolute form."""
        monkeypatch.chdir(tmp_path)
        store = open_store("vault", retry=False)
        assert isinstance(store, FsspecStore)
        assert store.root == str(tmp_path / "vault")
        assert store.url == str(tmp_path / "vault")
        store.put("strongroom.json", b"{}")
        assert (tmp_path / "vault" / "strongroom.json").read_bytes() == b"{}"

    def test_missing_root_is_not_an_error_without_create(self, tmp_path):
        """Opening a missing local root succeeds and lists nothing; reads say not found."""
        store = open_store(str(tmp_path / "nothing-here"))
        assert list(store.list()) == []
        with pytest.raises(ObjectNotFound):
            store.get("strongroom.json")
        assert not (tmp_path / "nothing-here").exists()

    def test_create_makes_the_root(self, tmp_path):
        """create=True makes the root directory (and its parents)."""
        open_store(str(tmp_path / "a" / "b"), create=True)
        assert (tmp_path / "a" / "b").is_dir()

    def test_file_url(self, tmp_path):
        """A file:// URL opens the same local store as the path."""
        open_store(str(tmp_path), retry=False).put("x", b"1")
        store = open_store(f"file://{tmp_path}")
        assert store.get("x") == b"1"

    def test_wrapped_in_retry_by_default(self):
        """By default the store retries; retry=False gives the bare store."""
        wrapped = open_store("memory://open-test/a")
        assert isinstance(wrapped, RetryingStore) and isinstance(wrapped.inner, FsspecStore)
        assert isinstance(open_store("memory://open-test/a", retry=False), FsspecStore)

    def test_storage_options_reach_the_filesystem(self):
        """storage_options are passed to the fsspec filesystem constructor."""
        store = open_store("memory://open-test/b", {"skip_instance_cache": True}, retry=False)
        assert isinstance(store.fs, MemoryFileSystem)

    def test_unknown_protocol_is_a_storage_error(self):
        """An unknown protocol raises StorageError with fsspec's explanation."""
        with pytest.raises(StorageError, match="Protocol not known: nosuchproto"):
            open_store("nosuchproto://bucket/x")

    def test_missing_driver_names_the_package(self, monkeypatch):
        """A scheme whose driver is not installed says which package to install."""
        monkeypatch.setitem(sys.modules, "s3fs", None)  # as if s3fs were not installed
        with pytest.raises(StorageError, match=r"needs the s3fs package.*pip install 'strongroom\[s3\]'"):
            open_store("s3://bucket/vault")
        monkeypatch.setitem(sys.modules, "adlfs", None)
        with pytest.raises(StorageError, match="pip install adlfs"):
            open_store("az://container/vault")

    def test_sftp_uses_sshfs_whatever_fsspec_registered(self):
        """sftp:// and ssh:// are served by sshfs, named explicitly, not by fsspec's registry."""
        from strongroom.storage.backends import backend_for

        for url in ("sftp://u@h/p", "ssh://h:22/p", "SFTP://h/p"):
            backend = backend_for(url)
            assert backend is not None and backend.module == "sshfs"
        assert backend_for("simplecache::sftp://h/p") is None
        assert backend_for("/plain/path") is None

    def test_sftp_checks_host_keys_by_default(self, tmp_path, monkeypatch):
        """Without known_hosts, the user's ~/.ssh/known_hosts is required, never skipped."""
        monkeypatch.setenv("HOME", str(tmp_path))
        with pytest.raises(StorageError, match="known_hosts"):
            open_store("sftp://nobody@127.0.0.1:1/vault")

    def test_concurrency_option_sets_the_hint_and_is_not_passed_on(self):
        """The 'concurrency' storage option becomes the store's concurrency, not an fsspec argument."""
        store = open_store("memory://open-test/conc", {"concurrency": 3}, retry=False)
        assert capabilities_of(store).concurrency == 3
        assert "concurrency" not in store.fs.storage_options
        with pytest.raises(StorageError, match="positive integer"):
            open_store("memory://open-test/conc", {"concurrency": 0})

    def test_local_and_memory_are_not_remote(self, tmp_path):
        """Local folders and memory keep the local concurrency; nothing claims object lock."""
        for store in (open_store(str(tmp_path)), open_store("memory://open-test/caps")):
            caps = capabilities_of(store)
            assert not caps.remote and caps.concurrency == 4 and not caps.object_lock
            assert not object_lock_of(store).enabled

    def test_a_direct_read_folder_is_given_only_where_reads_may_go_around_the_store(self, tmp_path):
        """A plain local folder names itself (object ``name`` is its file ``name``), through
        the retry and locking decorators; memory, fsspec's memory filesystem, a rate limit
        and injected faults name none."""
        store = open_store(str(tmp_path / "vault"))
        store.put("data/ab/object", b"the bytes")
        folder = direct_read_folder_of(store)
        assert folder == str(tmp_path / "vault")
        with open(os.path.join(folder, "data/ab/object"), "rb") as f:
            assert f.read() == store.get("data/ab/object")
        assert direct_read_folder_of(LockingStore(store, policy=lambda: None)) == folder
        assert direct_read_folder_of(open_store(f"file://{tmp_path}/other")) == str(tmp_path / "other")
        assert direct_read_folder_of(open_store("memory://open-test/folder")) is None
        assert direct_read_folder_of(RateLimitedStore(store)) is None
        assert direct_read_folder_of(FaultyStore(store, FaultPlan())) is None

    def test_url_shown_without_password(self):
        """The store's url never contains the password from the URL given."""
        store = open_store("memory://user:hunter2@open-test/c", retry=False)
        assert "hunter2" not in store.url
        assert "hunter2" not in repr(store)


class TestRedactUrl:
    @pytest.mark.parametrize(
        "url, shown",
        [
            ("sftp://user:pw@host/p", "sftp://user@host/p"),
            ("sftp://user:p%40ss@host:2222/a/b", "sftp://user@host:2222/a/b"),
            ("s3://bucket/prefix", "s3://bucket/prefix"),
            ("https://h/c?sig=abc&sv=1", "https://h/c?sig=***&sv=1"),
            ("az://c/p?account_key=xyz", "az://c/p?account_key=***"),
            ("ftp://:secret@host/x", "ftp://host/x"),
            ("simplecache::s3://k:s@b/p", "simplecache::s3://k@b/p"),
            ("/plain/path:with@at", "/plain/path:with@at"),
        ],
    )
    def test_redaction(self, url, shown):
        """Passwords and credential-like query values are removed; the rest is kept."""
        assert redact_url(url) == shown


class ServerDisconnectedError(Exception):
    """Stands in for aiohttp's exception of the same name."""


class TestErrorMapping:
    @pytest.mark.parametrize(
        "exc",
        [
            ConnectionResetError(),
            BrokenPipeError(),
            TimeoutError(),
            OSError(errno.EAGAIN, "again"),
            OSError(errno.ECONNRESET, "reset"),
            OSError(errno.ETIMEDOUT, "timeout"),
            OSError(errno.EINTR, "interrupted"),
            ServerDisconnectedError(),
        ],
    )
    def test_transient(self, exc):
        """Connection failures and timeouts become TransientStorageError."""
        assert is_transient(exc)
        assert isinstance(map_error(exc, "n"), TransientStorageError)

    def test_not_found(self):
        """FileNotFoundError becomes ObjectNotFound with the object's name."""
        mapped = map_error(FileNotFoundError(2, "gone"), "data/ab/x")
        assert isinstance(mapped, ObjectNotFound) and mapped.fields["name"] == "data/ab/x"

    def test_permanent(self):
        """Other OS errors become a permanent StorageError mentioning the cause."""
        mapped = map_error(PermissionError(13, "denied"), "keys/k")
        assert type(mapped) is StorageError
        assert "denied" in str(mapped) and "keys/k" in str(mapped)

    def test_programming_errors_pass_through(self):
        """Python's own non-OS exceptions are left alone."""
        exc = TypeError("bad call")
        assert map_error(exc, "x") is exc

    def test_store_translates_filesystem_errors(self):
        """A filesystem raising ConnectionResetError surfaces as TransientStorageError."""

        class Broken(MemoryFileSystem):
            def cat_file(self, path, start=None, end=None, **kwargs):
                raise ConnectionResetError("peer went away")

        store = FsspecStore(Broken(skip_instance_cache=True, global_store=False), "/v")
        with pytest.raises(TransientStorageError, match="peer went away"):
            store.get("x")

    def test_local_permission_error_is_permanent(self, tmp_path):
        """An unreadable local object raises a permanent StorageError."""
        code = (
            "import os, sys\n"
            "from strongroom.errors import ObjectNotFound, StorageError, TransientStorageError\n"
            "from strongroom.storage import open_store\n"
            "store = open_store(sys.argv[1], retry=False)\n"
            "try:\n"
            "    store.get('k')\n"
            "except (TransientStorageError, ObjectNotFound) as exc:\n"
            "    sys.exit(f'wrong class: {type(exc).__name__}')\n"
            "except StorageError as exc:\n"
            "    print('permanent:', exc)\n"
            "else:\n"
            "    sys.exit('read an unreadable object')\n"
        )
        store = open_store(str(tmp_path), retry=False)
        store.put("k", b"x")
        os.chmod(tmp_path / "k", 0)
        cmd = [sys.executable, "-c", code, str(tmp_path)]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("root reads every file and setpriv is missing to drop that power")
            # Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH obeys file modes.
            cmd = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search", "--"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + result.stdout
        assert "permanent:" in result.stdout
