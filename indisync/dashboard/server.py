"""The dashboard's web server: the page, a JSON snapshot and a Server-Sent Events stream.

Why the standard library (``http.server.ThreadingHTTPServer``) and not aiohttp or Flask: the page
needs one-way pushes only, which SSE gives over plain HTTP; a rig has a handful of viewers; and
a Pi that is often offline gets nothing new to install, audit or pin. Each viewer holds one
thread; the stream is bounded by the server's stop event and ends on the first failed write.
Everything the page needs is inline: no CDN, no external file.

    GET /             the page
    GET /api/state    one JSON snapshot (also what the tests read)
    GET /events       text/event-stream: the snapshot again whenever it changed (at most every 0.5 s),
                      and at least every 5 s (keeps proxies from closing the stream)
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .model import LiveModel

log = logging.getLogger(__name__)

PUSH_EVERY_S = 0.5
KEEPALIVE_S = 5.0
PAGE = (Path(__file__).parent / "page.html").read_text


class DashboardServer:
    def __init__(self, model: LiveModel, host: str = "0.0.0.0", port: int = 8080):
        self.model = model
        self.stop_event = threading.Event()
        handler = _make_handler(model, self.stop_event)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _make_handler(model: LiveModel, stop: threading.Event):
    class Handler(BaseHTTPRequestHandler):
        server_version = "indisync-dashboard"

        def log_message(self, fmt, *args):  # the access log goes to debug, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(PAGE().encode(), "text/html; charset=utf-8")
            elif path == "/api/state":
                self._send(json.dumps(model.snapshot()).encode(), "application/json")
            elif path == "/events":
                self._stream()
            else:
                self._send(b"not found: try / or /api/state\n", "text/plain", 404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "keep-alive")
            self.end_headers()
            last_version, idle = None, 0.0
            try:
                while not stop.is_set():
                    snap = model.snapshot()
                    moving = any(n["exposure"] and n["online"] for n in snap["nodes"])
                    if snap["version"] != last_version or moving or idle >= KEEPALIVE_S:
                        self.wfile.write(b"data: " + json.dumps(snap).encode() + b"\n\n")
                        self.wfile.flush()
                        last_version, idle = snap["version"], 0.0
                    stop.wait(PUSH_EVERY_S)
                    idle += PUSH_EVERY_S
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                return  # the viewer went away

    return Handler
