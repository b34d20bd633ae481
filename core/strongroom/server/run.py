"""``strongroom server run``: the application on uvicorn, over TLS.

Promises: serves :func:`~.app.create_app` on the listen address of ``server.toml`` (or the
one given) with the certificate and key named there; the process's ``STRONGROOM_HOME`` is
the folder's ``home/`` (the server's key slots and state).  SIGTERM or SIGINT stop it
gracefully: no new connections, requests in flight get :data:`GRACE_SECONDS` to finish,
then it exits 0.  Slow clients: a connection idle between requests is closed after
:data:`KEEP_ALIVE_SECONDS`, a request body that stalls gets 408 (:class:`~.app.LimitBody`),
and at most :data:`MAX_CONNECTIONS` requests are handled at once (more get 503).  Beside
the requests, the server's own jobs (:mod:`.jobs`: missed-schedule alerts, the prune when
due, object locks, a daily verify) run every ``jobs_minutes`` of ``server.toml``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from ..home import HOME_ENV
from .errors import ServerDirError
from .serverdir import ServerDir, split_listen

__all__ = ["GRACE_SECONDS", "KEEP_ALIVE_SECONDS", "MAX_CONNECTIONS", "serve"]

GRACE_SECONDS = 20
KEEP_ALIVE_SECONDS = 15
MAX_CONNECTIONS = 256


def serve(path: str, listen: str | None = None, announce=None) -> None:
    """Run the server of folder ``path`` until SIGTERM or SIGINT."""
    import uvicorn

    from .app import ServerState, create_app
    from .hosted import Hosted

    sdir = ServerDir(path).check()
    config = sdir.config
    host, port = split_listen(listen or config.listen)
    cert, key = sdir.resolve(config.tls_cert), sdir.resolve(config.tls_key)
    for f in (cert, key):
        if not f.is_file():
            raise ServerDirError(message=f"TLS file {f} is missing (server.toml names it)")
    os.environ[HOME_ENV] = str(sdir.home)
    from .jobs import ServerJobs

    state = ServerState(sdir, Hosted(sdir))
    app = create_app(state)
    jobs = ServerJobs(state, interval=config.jobs_minutes * 60.0) if config.jobs_minutes > 0 else None
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key), log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=GRACE_SECONDS,
        limit_concurrency=MAX_CONNECTIONS, lifespan="off", server_header=False, access_log=False))
    if announce is not None:
        announce(f"Serving {len(config.vaults)} vault(s) on https://{host}:{port} (SIGTERM stops)")
    # uvicorn catches SIGTERM/SIGINT itself and raises them again after its graceful shutdown:
    # let that second delivery do nothing, so a stopped server exits 0.
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, lambda *a: None) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    if jobs is not None:
        jobs.start()
    try:
        server.run()
    finally:
        if jobs is not None:
            jobs.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not server.started:
        print(f"strongroom: error: could not listen on {host}:{port}", file=sys.stderr)
        raise ServerDirError(message=f"could not listen on {host}:{port}")
