"""A thread that watches INDI properties on a raw XML connection of its own (the sim rig's couplings:
tests, benchmarks and the demo only; product code reads INDI through indisync.devices).

``IndiWatcher`` connects to an indiserver, asks for the properties its subclass names (``_asks``),
pull-parses the stream and hands each def/set vector to ``_update(device, name, values)``; after every
read (or every ``poll_s`` without one) it calls ``_polled(got_data)``. The thread never dies
silently: an error (a lost server, a bad packet, a failed hook) is logged and kept in ``errors``, and
the connection is made again every ``retry_s`` until ``close()``.
"""

from __future__ import annotations

import codecs
import logging
import re
import socket
import threading
import xml.etree.ElementTree as ET
from contextlib import closing
from typing import Iterator, Self
from xml.sax.saxutils import quoteattr

_VECTOR = re.compile(r"(def|set)\w+Vector")


def vector_update(elem: ET.Element) -> tuple[str, str, dict[str, str]] | None:
    """(device, property, {element: text}) of a def/set vector; None for anything else."""
    if not _VECTOR.fullmatch(elem.tag):
        return None
    return elem.get("device"), elem.get("name"), {e.get("name"): (e.text or "").strip() for e in elem}


class VectorStream:
    """The complete top-level elements of an INDI XML stream, fed as the bytes arrive (split anywhere,
    a UTF-8 character too). Each is cleared once handed on, and the stream keeps none of them: memory
    stays flat however long it runs."""

    def __init__(self):
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._parser.feed("<stream>")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._root: ET.Element | None = None
        self._depth = 0

    def feed(self, data: bytes) -> Iterator[ET.Element]:
        self._parser.feed(self._decoder.decode(data))
        for event, elem in self._parser.read_events():
            if event == "start":
                if self._root is None:
                    self._root = elem
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth == 1:
                yield elem
                elem.clear()
                self._root.clear()


class IndiWatcher:
    """The thread, the connection and the errors of a watcher (see the module's docstring). Subclasses
    give ``_asks`` and ``_update``, and may hook ``_connected(sock)`` (after the asks are sent),
    ``_disconnected()`` and ``_polled(got_data)``. ``_lock`` (re-entrant) guards the errors and
    whatever the subclass keeps; ``_changed`` is its condition."""

    poll_s = 0.2  # how often the thread looks at the stop flag (and calls _polled) without data

    def __init__(self, host: str, port: int, *, label: str, retry_s: float, join_s: float):
        self.host, self.port, self.retry_s = host, port, retry_s
        self.label, self.join_s = label, join_s
        self.log = logging.getLogger(type(self).__module__)
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"{label.replace(' ', '-')}-{port}", daemon=True)

    # ---- control -----------------------------------------------------------------------------
    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.join_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- what subclasses say -----------------------------------------------------------------
    def _asks(self) -> list[tuple[str, str | None]]:
        """(device, property) pairs to ask for; property None: all of the device's."""
        raise NotImplementedError

    def _update(self, device: str, name: str, values: dict[str, str]) -> None:
        """One def/set vector from the stream."""
        raise NotImplementedError

    def _connected(self, sock: socket.socket) -> None:
        """The connection is up and the asks are sent (a restarted server's simulators start afresh)."""

    def _disconnected(self) -> None:
        """The connection is gone (or never came up fully)."""

    def _polled(self, got_data: bool) -> None:
        """After each read from the stream, or ``poll_s`` without one."""

    # ---- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception as exc:  # noqa: BLE001 - a lost server or a bad packet: say so, connect again
                if not self._stop.is_set():
                    self._error(f"{self.label} on {self.host}:{self.port}: {exc!r}; reconnecting")
            self._stop.wait(self.retry_s)

    def _error(self, text: str) -> None:
        self.log.warning(text)
        with self._lock:
            self.errors.append(text)
            del self.errors[:-50]

    def _watch(self) -> None:
        with closing(socket.create_connection((self.host, self.port), timeout=5)) as sock:
            try:
                for device, name in self._asks():
                    named = f" name={quoteattr(name)}" if name else ""
                    sock.sendall(f'<getProperties version="1.7" device={quoteattr(device)}{named}/>\n'.encode())
                sock.settimeout(self.poll_s)
                self._connected(sock)
                stream = VectorStream()
                while not self._stop.is_set():
                    try:
                        data = sock.recv(65536)
                    except socket.timeout:
                        data = None
                    if data == b"":
                        raise ConnectionError("indiserver closed the connection")
                    if data:
                        for elem in stream.feed(data):
                            update = vector_update(elem)
                            if update is not None:
                                self._update(*update)
                    self._polled(bool(data))
            finally:
                self._disconnected()
