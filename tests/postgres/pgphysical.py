"""A PostgreSQL 15 cluster for the physical-mode tests, whose server can run strongroom.

``archive_command`` and ``restore_command`` run ``strongroom`` as the server's OS user.
Run as root, the tests cannot start the server as root (PostgreSQL refuses) and the
``postgres`` user cannot reach this Python (under /root); so the server, and every
``strongroom`` command of these tests, runs in a user namespace (``unshare --user``)
where root is mapped to an ordinary user id: the files stay root's, and PostgreSQL sees
a user that is not root.  Not run as root, everything runs as the current user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Iterator

import attrs

from strongroom.vault import Vault
from strongroom_postgres.itemlevel import stop_server

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
ASUSER = ["unshare", "--user", "--map-user=1000", "--map-group=1000"] if os.geteuid() == 0 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@attrs.frozen
class Physical:
    """A running cluster (``data`` under ``root``) and a vault with a home for strongroom."""

    bindir: str
    root: str
    port: int
    vault: str
    home: str

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PGHOST": self.root, "PGPORT": str(self.port), "PGUSER": "postgres",
                "STRONGROOM_VAULT": self.vault, "STRONGROOM_HOME": self.home}

    def psql(self, sql: str, db: str = "postgres", *, port: int | None = None, host: str | None = None) -> str:
        env = {**self.env, "PGPORT": str(port or self.port), "PGHOST": host or self.root}
        done = subprocess.run([f"{self.bindir}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db,
                               "-c", sql], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def strongroom(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(ASUSER + [STRONGROOM, *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"strongroom {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return done

    def strongroom_json(self, *args: str):
        return json.loads(self.strongroom(*args, "--json").stdout)

    def pg(self, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(ASUSER + [f"{self.bindir}/{argv[0]}", *argv[1:]], env=self.env, check=True,
                              capture_output=True, text=True, **kwargs)


def usable() -> str | None:
    """Why these tests cannot run here (None: they can): as root they need user namespaces."""
    if ASUSER and subprocess.run(ASUSER + ["true"], capture_output=True).returncode != 0:
        return "running as root needs 'unshare --user' (user namespaces), which this system refuses"
    return None


def start(bindir: str, *, settings: dict[str, str] | None = None) -> Physical:
    why = usable()
    if why:
        import pytest

        pytest.skip(why)
    root = tempfile.mkdtemp(prefix="strongroom-pgphys-")
    os.chmod(root, 0o700)
    port = free_port()
    phys = Physical(bindir, root, port, os.path.join(root, "vault"), os.path.join(root, "home"))
    Vault.create(phys.vault, home=phys.home)
    subprocess.run(ASUSER + [f"{bindir}/initdb", "-D", phys.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-sync", "--data-checksums"], check=True, capture_output=True)
    options = {"listen_addresses": "''", "fsync": "off", "wal_level": "replica", "archive_mode": "on",
               "max_wal_size": "1GB", "checkpoint_timeout": "30min", **(settings or {})}
    with open(os.path.join(phys.data, "postgresql.conf"), "a") as fh:
        fh.write("".join(f"{k} = {v}\n" for k, v in options.items()))
    server_start(phys, phys.data, port)
    return phys


def server_start(phys: Physical, data: str, port: int) -> None:
    subprocess.run(ASUSER + [f"{phys.bindir}/pg_ctl", "-D", data, "-l", f"{data}.log", "-w", "-t", "120", "start",
                             "-o", f"-p {port} -k {phys.root}"], check=True, capture_output=True, env=phys.env)


def server_stop(data: str) -> None:
    """Fast shutdown by signal (pg_ctl refuses root), then wait for the postmaster to go
    (the plugin's own, which the item-level restore uses for its scratch cluster)."""
    stop_server(data)


@contextlib.contextmanager
def running(bindir: str | None, **settings: str) -> Iterator[Physical]:
    """A cluster for a test module, with the server programs in ``bindir`` (the test
    module's ``conftest._bindir()``: imported there, at collection, where ``conftest`` is
    this folder's); skips where PostgreSQL or user namespaces are missing.  Stopped and
    removed at the end."""
    import pytest

    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    cluster = start(bindir, settings=settings or None)
    try:
        yield cluster
    finally:
        stop(cluster)


def protect_physical(cluster: Physical, item: str = "db") -> None:
    cluster.strongroom("protect", "postgres", item, "--physical", "--host", cluster.root,
                       "--port", str(cluster.port), "--user", "postgres")


def stop(phys: Physical) -> None:
    for name in os.listdir(phys.root):
        path = os.path.join(phys.root, name)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "postmaster.pid")):
            server_stop(path)
    shutil.rmtree(phys.root, ignore_errors=True)
