"""A vault server on loopback (uvicorn over TLS, in a thread of the test) for the dashboard
and metrics tests, with a clock the test can move and vaults with real backups in them.

:func:`running_server` makes a server folder, hosts the vaults named, runs
:func:`strongroom.server.app.create_app` (with the metrics' :class:`Instrument`) and
stops the server when the context ends.  :func:`fill` protects two folders in a vault
and backs them up; the source of ``lost`` then disappears, so its next backup fails
(a failed job and a ``backup.failed`` alert).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import ssl
import threading
import time
from pathlib import Path
from typing import Iterator

import attrs
import httpx

from strongroom.models import utcnow
from strongroom.testing import free_port


@attrs.define
class MovableClock:
    """The real time plus ``offset`` (sessions expire when the test says)."""

    offset: dt.timedelta = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset


@attrs.define
class Served:
    sdir: object
    state: object
    base: str
    ca_file: str
    admin: str
    clock: MovableClock
    sources: Path

    def token(self, user: str, vault: str | None = None, role: str | None = None) -> str:
        """A new user (with ``role`` on ``vault``) and a token of theirs."""
        users = self.sdir.users
        if user not in users.users():
            users.add_user(user)
        if vault and role:
            users.assign(user, vault, role)
        return users.create_token(user)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, verify=ssl.create_default_context(cafile=self.ca_file),
                            headers=headers, timeout=30, follow_redirects=False)

    def vault(self, name: str = "main"):
        return self.state.hosted.vault(name)

    def refresh(self, name: str = "main") -> None:
        """Drop the monitor's cached health, as after a change made outside the dashboard."""
        from strongroom.server.monitor import monitor_of

        monitor_of(self.state).forget(name)


def fill(served: Served, name: str = "main") -> None:
    """Items ``docs`` (two good backups) and ``lost`` (one good, then one failed) in ``name``."""
    vault = served.vault(name)
    docs, lost = served.sources / name / "docs", served.sources / name / "lost"
    docs.mkdir(parents=True)
    lost.mkdir(parents=True)
    (docs / "report.txt").write_text("quarterly numbers\n" * 500)
    (lost / "photo.raw").write_bytes(bytes(range(256)) * 400)
    vault.protect("files", "docs", {"paths": [str(docs)]})
    vault.protect("files", "lost", {"paths": [str(lost)]})
    vault.backup("docs")
    vault.backup("lost")
    (docs / "more.txt").write_text("another file\n" * 100)
    vault.backup("docs")
    shutil.rmtree(lost)  # the source folder disappears: the next backup fails
    with contextlib.suppress(Exception):
        vault.backup("lost")


@contextlib.contextmanager
def running_server(root: Path, vaults=("main",), *, session_minutes: int = 30) -> Iterator[Served]:
    import uvicorn

    from strongroom.plugins import PluginHost
    from strongroom.server.app import ServerState, create_app
    from strongroom.server.hosted import Hosted, create_hosted
    from strongroom.server.metrics import Instrument
    from strongroom.server.serverdir import ServerDir

    port = free_port()
    sdir, admin = ServerDir.init(root / "server", listen=f"127.0.0.1:{port}")
    sdir.write_config(attrs.evolve(sdir.config, session_minutes=session_minutes))
    plugins = PluginHost.create()
    for name in vaults:
        create_hosted(sdir, name, str(root / "storage" / name), {}, plugins)
    clock = MovableClock()
    state = ServerState(sdir, Hosted(sdir, plugins), clock=clock)
    app = create_app(state)
    if not any(getattr(m, "cls", None) is Instrument for m in app.user_middleware):
        app.add_middleware(Instrument, state=state)
    config = sdir.config
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, ssl_certfile=str(sdir.resolve(config.tls_cert)),
        ssl_keyfile=str(sdir.resolve(config.tls_key)), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Served(sdir, state, f"https://127.0.0.1:{port}", str(sdir.resolve(config.tls_cert)), admin, clock,
                     root / "sources")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
