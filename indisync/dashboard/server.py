"""The dashboard's web server: the page, a JSON snapshot, the frame previews and a Server-Sent
Events stream.

Why the standard library (``http.server.ThreadingHTTPServer``) and not aiohttp or Flask: the page
needs one-way pushes only, which SSE gives over plain HTTP; a rig has a handful of viewers; and
a Pi that is often offline gets nothing new to install, audit or pin. Each viewer holds one
thread; the stream is bounded by the server's stop event and ends on the first failed write.
Everything the page needs is inline: no CDN, no external file.

    GET /                 the page
    GET /api/state        one JSON snapshot (also what the tests read)
    GET /api/frame/N.jpg  node N's latest frame preview (the 480 px JPEG it publishes for Home Assistant)
    GET /events           text/event-stream: the snapshot again whenever it changed (at most every 0.5 s),
                          and at least every 5 s (keeps proxies from closing the stream)

Defaults that keep it private (``dashboard:`` settings): it listens on 127.0.0.1 only; with a
password (``password_file``) every request needs it, as HTTP basic auth (any user name) or
``?token=<password>`` (compared in constant time, never logged); at most ``max_streams`` live viewers (the next gets 503
and why); a connection silent for ``socket_timeout`` s is closed (a half-sent request, a viewer
that stopped reading).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .model import LiveModel
from .settings import DashboardSettings, read_password

log = logging.getLogger(__name__)

PUSH_EVERY_S = 0.5
KEEPALIVE_S = 5.0
PAGE = (Path(__file__).parent / "page.html").read_text
_FRAME = re.compile(r"^/api/frame/([a-z0-9-]{1,64})\.jpg\Z")
_SECRET = re.compile(r"(token=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """A request line or URL with its ``token=`` value hidden (for the log)."""
    return _SECRET.sub(r"\1***", text)


class StreamSlots:
    """At most ``limit`` event streams at once; ``take`` is False when they are all in use."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            return True

    def give(self) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)

    @property
    def used(self) -> int:
        with self._lock:
            return self._used


class DashboardServer:
    def __init__(self, model: LiveModel, host: str | None = None, port: int | None = None,
                 settings: DashboardSettings | None = None, password: str | None = None):
        """``settings`` (the ``dashboard:`` section) with ``host``/``port`` overriding it when given;
        the password is ``password`` if given, else read from ``settings.password_file``."""
        base = settings or DashboardSettings()
        self.settings = dataclasses.replace(base, **{k: v for k, v in (("host", host), ("port", port)) if v is not None})
        self.settings.validate()
        self.password = password if password is not None else read_password(self.settings)
        self.model = model
        self.stop_event = threading.Event()
        self.streams = StreamSlots(self.settings.max_streams)
        handler = _make_handler(model, self.stop_event, self.settings, self.streams, self.password)
        self.httpd = ThreadingHTTPServer((self.settings.host, self.settings.port), handler)
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


def _authorized(headers, query: str, password: str | None) -> bool:
    if password is None:
        return True
    secret = password.encode("utf-8")
    for token in parse_qs(query).get("token", []):
        if hmac.compare_digest(token.encode("utf-8"), secret):
            return True
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            _, _, given = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        return hmac.compare_digest(given.encode("utf-8"), secret)
    return False


def _make_handler(model: LiveModel, stop: threading.Event, settings: DashboardSettings, streams: StreamSlots,
                  password: str | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "indisync-dashboard"
        timeout = settings.socket_timeout  # applied to the connection: reads and writes both

        def log_message(self, fmt, *args):  # the access log goes to debug, not stderr; never the token
            log.debug("%s %s", self.address_string(), redact(fmt % args))

        def log_error(self, fmt, *args):
            log.info("%s %s", self.address_string(), redact(fmt % args))

        def _send(self, body: bytes, content_type: str, status: int = 200, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            headers = {"Cache-Control": "no-store", **(headers or {})}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            path = parts.path
            if not _authorized(self.headers, parts.query, password):
                self._send(b"password needed: HTTP basic auth (any user name) or ?token=<the password>\n",
                           "text/plain; charset=utf-8", 401,
                           {"WWW-Authenticate": 'Basic realm="indisync", charset="UTF-8"'})
                return
            try:
                if path in ("/", "/index.html"):
                    self._send(PAGE().encode(), "text/html; charset=utf-8")
                elif path == "/api/state":
                    self._send(json.dumps(model.snapshot()).encode(), "application/json")
                elif path == "/events":
                    self._stream()
                elif match := _FRAME.match(path):
                    jpeg = model.preview(match.group(1))
                    if jpeg is None:
                        self._send(b"no frame preview from this node yet\n", "text/plain", 404)
                    else:
                        # the page asks for it by a versioned URL: the same URL is the same image
                        self._send(jpeg, "image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
                else:
                    self._send(b"not found: try / or /api/state\n", "text/plain", 404)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                return  # the viewer went away or stopped reading
            except Exception as exc:  # noqa: BLE001 - say it and keep serving
                log.exception("dashboard: %s failed", redact(self.path))
                try:
                    self._send(f"dashboard error: {type(exc).__name__}: {exc}\n".encode(), "text/plain", 500)
                except OSError:
                    pass

        def _stream(self) -> None:
            if not streams.take():
                self._send((f"too many live viewers: {settings.max_streams} pages already follow this dashboard "
                            "(dashboard.max_streams); close one, or raise the setting\n").encode(),
                           "text/plain; charset=utf-8", 503, {"Retry-After": "30"})
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "keep-alive")
                self.end_headers()
                last_version, idle, failed = None, 0.0, False
                while not stop.is_set():
                    try:
                        snap = model.snapshot()
                        moving = any(n["exposure"] and n["online"] for n in snap["nodes"])
                        body = json.dumps(snap).encode() if (snap["version"] != last_version or moving
                                                             or idle >= KEEPALIVE_S) else None
                        failed = False
                    except Exception as exc:  # noqa: BLE001 - the stream says so (at once, then as a keep-alive) and goes on
                        if not failed:
                            log.exception("dashboard: snapshot for the stream failed")
                        body = json.dumps({"stream_error": f"{type(exc).__name__}: {exc}"[:300]}).encode() \
                            if not failed or idle >= KEEPALIVE_S else None
                        failed, snap = True, {"version": None}
                    if body is not None:
                        self.wfile.write(b"data: " + body + b"\n\n")
                        self.wfile.flush()
                        last_version, idle = snap["version"], 0.0
                    stop.wait(PUSH_EVERY_S)
                    idle += PUSH_EVERY_S
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                return  # the viewer went away, or stopped reading for socket_timeout s
            finally:
                streams.give()

    return Handler
