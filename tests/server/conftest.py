"""Fixtures of the vault server's tests: a server folder, a running server, the CLI."""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn", reason="the vault server needs pip install 'strongroom[server]'")


@pytest.fixture
def server_folder(tmp_path, strongroom_isolated_home):
    """A new server folder (not running) and its admin token."""
    from strongroom.server.serverdir import ServerDir

    sdir, token = ServerDir.init(tmp_path / "srv", listen="127.0.0.1:28443")
    return sdir, token


@pytest.fixture
def server_cli(strongroom_cli):
    """``strongroom`` in-process (exit code and output), for ``server ...`` commands."""
    return strongroom_cli()
