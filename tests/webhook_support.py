"""A local HTTP receiver for webhook deliveries, and a token-holding caller of a real sandbox.

``Receiver`` is a real HTTP server on 127.0.0.1 that records every POST it is sent (headers and
JSON body, in arrival order) and answers with the statuses a test scripts (200 once the script
is spent). Tests wait for the sandbox's delivery worker to go idle (``sandbox.webhooks`` ``settle``),
never for time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from sandbox.contract import validate_response
from sandbox.server import SandboxServer

CREDENTIALS = {"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}
FIELD_CREDENTIALS = {**CREDENTIALS, "client_id": "sandbox-field", "client_secret": "sandbox-field-secret"}


@dataclass(frozen=True)
class Arrival:
    headers: dict[str, str]
    event: dict[str, Any]


class Receiver:
    """Records deliveries; ``statuses`` are answered in turn (then 200)."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.arrivals.append(Arrival(dict(self.headers), json.loads(body)))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/procore/webhooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [arrival.event for arrival in self.arrivals]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.stop()


class Caller:
    """A sandbox on a real socket, called with a token (of ``credentials``) and the company header;
    every successful answer is checked against its documented schema."""

    def __init__(self, server: SandboxServer, credentials: dict[str, str] = CREDENTIALS) -> None:
        self.server = server
        self.session = requests.Session()
        token = self.session.post(f"{server.url}/oauth/token", data=credentials, timeout=10).json()
        self.session.headers.update({"Authorization": f"Bearer {token['access_token']}", "Procore-Company-Id": "1"})

    def call(self, method: str, path: str, params: Any = None, body: Any = None, status: int = 200) -> Any:
        response = self.session.request(method, self.server.url + path, params=params, json=body, timeout=10)
        assert response.status_code == status, (method, path, response.text)
        answer = response.json() if response.content else None
        if response.ok and answer is not None:
            assert validate_response(method, path, status, answer) == [], (method, path, answer)
        return answer
