"""The vault server: an authorizing gateway to the vaults it hosts (``docs/server.md``).

``strongroom server run DIR`` serves, over TLS, the objects of the vaults named in
``DIR/server.toml`` to clients that hold a token (:mod:`.serverdir`) and a role on the
vault (:mod:`.roles`), plus a dashboard and Prometheus metrics.  The server holds the
storage credentials and a key slot of every hosted vault (:mod:`.hosted`); clients keep
the whole engine and their own key slots.

Modules: :mod:`.roles` (the four roles), :mod:`.serverdir` (the server folder: config,
users, tokens, role assignments), :mod:`.hosted` (the hosted vaults' stores and vaults),
:mod:`.app` (the ASGI application and :class:`~.app.ServerState`), :mod:`.run` (uvicorn
with TLS).  Its third-party packages are the ``[server]`` extra; nothing here is imported
by the command line until a ``strongroom server`` command runs.
"""
