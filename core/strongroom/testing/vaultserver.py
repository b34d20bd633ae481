"""A real vault server for tests: ``strongroom server run`` in a subprocess on loopback.

:class:`ServerProcess` makes a server folder (``ServerProcess.create(path)``: a free port
on 127.0.0.1, a self-signed certificate, the admin token kept in ``admin_token``), starts
the server as a child process (:meth:`start` returns once ``/healthz`` answers over TLS,
verified against the folder's certificate), and stops it with SIGTERM (:meth:`stop`
returns its exit code).  Admin changes go through :attr:`users` (the folder's
:class:`~strongroom.server.serverdir.UserBook`) or :meth:`admin` (the ``strongroom
server`` command line, in a subprocess); the running server sees them at its next request.
:meth:`client` is an ``httpx.Client`` for the server, with a token as
``Authorization: Bearer``.  The server's output is in ``server.log`` beside the folder.
Needs the ``[server]`` extra.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

from .servers import free_port

__all__ = ["ServerProcess"]

_CLI = "from strongroom.cli import main; main()"


class ServerProcess:
    """A server folder and, between :meth:`start` and :meth:`stop`, its running server."""

    def __init__(self, folder: str | os.PathLike, admin_token: str | None = None, *, env: dict | None = None) -> None:
        from ..server.serverdir import ServerDir, split_listen

        self.folder = Path(folder)
        self.dir = ServerDir(self.folder).check()
        self.host, self.port = split_listen(self.dir.config.listen)
        self.admin_token = admin_token
        self.env = {**os.environ, **(env or {})}
        self.log_path = self.folder.with_name(self.folder.name + "-server.log")
        self.proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, folder: str | os.PathLike, *, env: dict | None = None) -> ServerProcess:
        """A new server folder at ``folder`` listening on a free loopback port."""
        from ..server.serverdir import ServerDir

        _, token = ServerDir.init(folder, listen=f"127.0.0.1:{free_port()}")
        return cls(folder, token, env=env)

    # --- where it is ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def vault_url(self, name: str) -> str:
        return f"{self.url}/vaults/{name}"

    @property
    def cert(self) -> Path:
        return self.dir.resolve(self.dir.config.tls_cert)

    @property
    def users(self):
        return self.dir.users

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self, token: str | None = None, **kwargs):
        """An ``httpx.Client`` on :attr:`url` that trusts the server's certificate."""
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), headers=headers,
                            timeout=kwargs.pop("timeout", 30.0), **kwargs)

    # --- admin ---------------------------------------------------------------------------

    def admin(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """``strongroom server ARGS --dir FOLDER`` in a subprocess (text output captured)."""
        proc = subprocess.run([sys.executable, "-c", _CLI, "server", *args, "--dir", str(self.folder)],
                              env=self.env, capture_output=True, text=True, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"strongroom server {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def add_vault(self, name: str, storage: str, *options: str) -> None:
        """Host a new vault ``name`` at ``storage`` (created, its first key slot the server's)."""
        args = ["vault", "add", name, "--storage", storage, "--create"]
        for option in options:
            args += ["--storage-option", option]
        self.admin(*args)

    # --- running -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server; return once ``/healthz`` answers over TLS."""
        import httpx

        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", _CLI, "server", "run", str(self.folder)],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        ctx = self.ssl_context()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vault server exited with code {self.proc.returncode} while starting:"
                                   f" {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", verify=ctx, timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the vault server did not answer within {timeout:.0f} s: {self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait (SIGKILL after ``timeout``); the exit code (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
