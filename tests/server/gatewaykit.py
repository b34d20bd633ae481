"""A live vault server on loopback for the gateway and RBAC tests.

:func:`live_server` makes a server folder, a vault created by a client (passphrase slot)
and adopted by the server with its recovery kit, one user per role (and ``nobody``, with no
role), and runs ``strongroom server run`` in a child process until the context ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import attrs
import httpx
import pytest

from strongroom.server.roles import ROLES
from strongroom.testing import free_port

PASSPHRASE = "correct horse battery staple"
USERS = ("nobody", *ROLES)


@attrs.define
class LiveServer:
    dir: Path
    base: str  # https://127.0.0.1:PORT
    ca_file: str
    storage: dict  # vault name -> its folder
    tokens: dict  # user -> token
    process: subprocess.Popen | None = None

    def url(self, vault: str = "main") -> str:
        return f"{self.base}/vaults/{vault}"

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base, verify=ssl.create_default_context(cafile=self.ca_file),
                            headers=headers, timeout=30)

    def env(self, user: str | None) -> dict:
        """The client environment of ``user``: its token, the vault, the passphrase."""
        env = {"STRONGROOM_VAULT": self.url(), "STRONGROOM_PASSPHRASE": PASSPHRASE,
               "STRONGROOM_STORAGE_OPTIONS": f'{{"ca_file": "{self.ca_file}"}}'}
        env["STRONGROOM_TOKEN"] = self.tokens[user] if user else ""
        return env


def make_server(root: Path, vaults=("main",), plugins=None) -> LiveServer:
    """The server folder, vaults and users (not running yet)."""
    from strongroom.plugins import PluginHost
    from strongroom.server.hosted import adopt_hosted
    from strongroom.server.serverdir import ServerDir
    from strongroom.vault import Vault

    port = free_port()
    sdir, admin = ServerDir.init(root / "server", listen=f"127.0.0.1:{port}")
    plugins = plugins or PluginHost.create()
    storage = {}
    for name in vaults:
        folder = root / "storage" / name
        client_vault = Vault.create(str(folder), name=name, key_provider="passphrase")  # STRONGROOM_PASSPHRASE
        kit = client_vault.keys.recovery_kit()
        with pytest.MonkeyPatch.context() as env:  # the server's key store takes the adopted vault's key
            env.setenv("STRONGROOM_HOME", str(sdir.home))
            adopt_hosted(sdir, name, str(folder), {}, plugins, kit, lambda _: None)
        storage[name] = folder
    tokens = {"admin": admin}
    for user in USERS:
        sdir.users.add_user(user)
        tokens[user] = sdir.users.create_token(user)
        if user != "nobody":
            for name in vaults:
                sdir.users.assign(user, name, user)
    cert = sdir.resolve(sdir.config.tls_cert)
    return LiveServer(sdir.path, f"https://127.0.0.1:{port}", str(cert), storage, tokens)


def start(server: LiveServer) -> LiveServer:
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    log = open(server.dir / "server.log", "wb")
    server.process = subprocess.Popen([exe, "server", "run", str(server.dir)], stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "STRONGROOM_PASSPHRASE": ""})
    ctx = ssl.create_default_context(cafile=server.ca_file)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.base}/healthz", verify=ctx, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {(server.dir / 'server.log').read_text()[-2000:]}")
        time.sleep(0.05)


def stop(server: LiveServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def live_server(root: Path, vaults=("main",)):
    server = start(make_server(root, vaults))
    try:
        yield server
    finally:
        stop(server)


def snapshot(folder: Path, *, skip=("journal/", "alerts/")) -> dict[str, bytes]:
    """Every object of a vault folder but the audit journal and the alerts (a refusal is
    journaled, and a job that failed because of one raises an alert), name -> bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = path.relative_to(folder).as_posix()
            if not name.startswith(skip):
                found[name] = path.read_bytes()
    return found
