"""Fixtures for strongroom-notify's tests: a vault with a protected folder, a webhook
receiver on loopback, a recording command, a config writer.

Everything goes through the real ``strongroom`` command (``strongroom_cli`` of
``strongroom.testing``) with this plugin installed as a distribution, as a user runs it.
"""

from __future__ import annotations

import http.server
import json
import socket
import stat
import threading
from pathlib import Path

import attrs
import pytest
from strongroom.testing import make_tree


@pytest.fixture(autouse=True)
def _no_notify_environment(monkeypatch):
    """The developer's own notification settings stay out of the tests."""
    for name in ("STRONGROOM_NOTIFY_URL", "NOTIFY_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@attrs.frozen
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A webhook on 127.0.0.1: records every request; answers the scripted codes, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/strongroom"

    @property
    def documents(self) -> list[dict]:
        return [r.json for r in self.requests]


@pytest.fixture
def webhook():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def write_config(strongroom_isolated_home):
    """``write_config(text)`` writes ``$STRONGROOM_HOME/notify.toml``."""

    def write(text: str) -> Path:
        path = strongroom_isolated_home / "notify.toml"
        path.write_text(text)
        return path

    return write


@attrs.frozen
class Recorder:
    """A shell script that saves its stdin, its STRONGROOM_JOB_* variables and its argv."""

    path: Path
    folder: Path

    def calls(self) -> list[dict]:
        found = []
        for stdin in sorted(self.folder.glob("call-*.json")):
            env_file = stdin.with_suffix(".env")
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
            argv = stdin.with_suffix(".argv").read_text().splitlines()
            found.append({"stdin": json.loads(stdin.read_text()), "env": env, "argv": argv})
        return found


@pytest.fixture
def recorder(tmp_path) -> Recorder:
    folder = tmp_path / "calls"
    folder.mkdir()
    script = tmp_path / "record-notification"
    script.write_text(
        "#!/bin/sh\n"
        f'out="{folder}/call-$$"\n'
        'cat > "$out.json"\n'
        'env | grep "^STRONGROOM_JOB_" > "$out.env"\n'
        'for a in "$@"; do echo "$a"; done > "$out.argv"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Recorder(script, folder)


@pytest.fixture
def source(tmp_path) -> Path:
    """A small folder to protect."""
    return Path(make_tree(str(tmp_path / "src"), big_mib=0, small_files=3))


@pytest.fixture
def vault(tmp_path, strongroom_cli, source):
    """A CLI bound to a new local vault named ``notify-test`` where ``source`` is item ``docs``."""
    cli = strongroom_cli(str(tmp_path / "vault"))
    cli("vault", "create", cli.vault_url, "--name", "notify-test")
    cli("protect", "files", "docs", "--path", str(source))
    return cli
