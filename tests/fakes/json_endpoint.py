"""A tiny local HTTP endpoint for apprise's ``json://127.0.0.1:PORT/`` URL: it records every POSTed
JSON body (apprise's {"version", "title", "message", "type", ...}) and answers 200."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.cond:
            self.server.received.append(json.loads(body))
            self.server.cond.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class JsonEndpoint:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
        self.server.received = []
        self.server.cond = threading.Condition()
        self.server.timeout = 1.0
        self._thread = threading.Thread(target=self.server.serve_forever, name="json-endpoint", daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def received(self) -> list[dict]:
        with self.server.cond:
            return list(self.server.received)

    def wait_for(self, predicate, timeout: float) -> list[dict]:
        """The bodies received once ``predicate(bodies)`` holds; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self.server.cond:
            while not predicate(list(self.server.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not received within {timeout:g} s; got {self.server.received}")
                self.server.cond.wait(left)
            return list(self.server.received)

    def __enter__(self) -> "JsonEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
