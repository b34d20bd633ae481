"""A webhook receiver on loopback: an HTTP server thread that records every JSON POST, for
the tests of alert sinks and of what raises alerts (``webhook`` fixture)."""

from __future__ import annotations

import http.server
import json
import threading

import attrs
import pytest


@attrs.define
class Received:
    """One POST: its path, its headers and its JSON body."""

    path: str
    headers: dict
    body: dict


class WebhookReceiver:
    """An HTTP server thread on 127.0.0.1 that records every POST.  A path starting
    ``/status/NNN`` is answered with that status; every other path with 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                receiver.received.append(Received(self.path, dict(self.headers), json.loads(raw)))
                path = self.path.partition("?")[0]
                status = int(path.split("/")[2]) if path.startswith("/status/") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        """Where to POST (``path`` on this server)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def alerts(self) -> list[dict]:
        """The alerts received, in order (a sink's document holds one under ``alert``)."""
        return [r.body["alert"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    """A :class:`WebhookReceiver` for the test, stopped afterwards."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
