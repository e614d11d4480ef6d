"""A real HTTP server on 127.0.0.1 that keeps every request it gets: where notifications
(Apprise's json:// posts) and webhooks land in the tests. `import` the `receiver` fixture
into a test module.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.servers import free_port


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with its query
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    requests: list[Request] = field(default_factory=list)
    status: int = 200  # what every request is answered with

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        """The requests once `count` have arrived (or all there are after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            receiver.requests.append(
                Request(self.command, self.path, dict(self.headers.items()), body)
            )
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = do_PUT = _record  # noqa: N815

        def log_message(self, *args: object) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A server on a free port, in a thread, for the length of one test."""
    found = Receiver(port=0)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A port nobody listens on: a receiver that is down."""
    return free_port()
