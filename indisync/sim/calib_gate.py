"""The simulator rig's exposure gate (tests, benchmarks and the demo only): a TCP proxy between a node
and its indiserver that makes the simulated sky and panel exact at every exposure's start.

The CCD Simulator draws a FLAT with the SIM_SKYGLOW it has when the exposure starts (measured), and a
node starts its exposure the moment its panel (or its wheel) reads back: a SkyCoupling watching on a
connection of its own then loses the race now and then (measured: 8 frames of 30 lit by the previous
brightness), as no real panel or filter would. The gate closes that gap without the node doing
anything a real rig would not need:

- every update the server sends the node passes through the gate, which hands the wheel's and the
  panel's to the coupling *before* forwarding them, so the coupling knows at least what the node knows
  (the bytes are forwarded unchanged);
- the node's own requests are forwarded element by element; a ``CCD_EXPOSURE`` of the coupled camera
  is held until the coupling has set the SIM_SKYGLOW wanted now and read it back (``SkyCoupling.sync``,
  bounded by its set_timeout; a failure is kept in the coupling's errors and the exposure goes on).

Loopback only; every thread is a daemon with bounded waits, ends with its connection or the gate, and
logs what ended it. Product code never goes through this: a real sky needs no help.
"""

from __future__ import annotations

import codecs
import logging
import socket
import threading
import xml.etree.ElementTree as ET
from contextlib import suppress

from .calib_coupling import SkyCoupling

log = logging.getLogger(__name__)

CHUNK = 262144
POLL_S = 0.2


class ExposureGate:
    """``ExposureGate(sky, host, port).start()``; the node connects to ``gate.host:gate.port``."""

    def __init__(self, sky: SkyCoupling, upstream_host: str, upstream_port: int, port: int | None = None,
                 connect_timeout: float = 5.0):
        self.sky = sky
        self.upstream = (upstream_host, upstream_port)
        self.connect_timeout = connect_timeout
        self.host = "127.0.0.1"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, port or 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self.exposures = 0  # CCD_EXPOSURE requests held and synced
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._accept, name=f"exposure-gate-{self.port}", daemon=True)

    def start(self) -> "ExposureGate":
        self.sky.gated = True
        self._listener.listen(8)
        self._listener.settimeout(POLL_S)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.close()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.sky.gated = False

    def __enter__(self) -> "ExposureGate":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, text: str) -> None:
        log.warning(text)
        with self._lock:
            self.errors.append(text)
            del self.errors[:-50]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.upstream, timeout=self.connect_timeout)
            except OSError as exc:  # the server is down (restarting): the node tries again, as it would
                self._error(f"exposure gate: indiserver {self.upstream[0]}:{self.upstream[1]} refused: {exc}")
                with suppress(OSError):
                    client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(POLL_S)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(upstream, client, self._down), daemon=True,
                             name=f"gate-down-{self.port}").start()
            threading.Thread(target=self._pump, args=(client, upstream, self._up), daemon=True,
                             name=f"gate-up-{self.port}").start()

    def _pump(self, src: socket.socket, dst: socket.socket, handle) -> None:
        """Read ``src`` until it ends; ``handle(parser_state, data, dst)`` forwards. Either end closing (or
        an error, logged) closes both."""
        state = {"parser": ET.XMLPullParser(events=("start", "end")), "depth": 0, "root": None,
                 "decoder": codecs.getincrementaldecoder("utf-8")(errors="replace")}
        state["parser"].feed("<stream>")
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    return
                handle(state, data, dst)
        except OSError:
            return  # a connection closed under us: the other pump or close() did it
        except Exception as exc:  # noqa: BLE001 - a bad packet: say so, and drop this connection
            self._error(f"exposure gate {self.port}: {exc!r}; connection dropped")
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.close()
            with self._lock:
                self._conns = [c for c in self._conns if c not in (src, dst)]

    def _elements(self, state: dict, data: bytes):
        """The complete top-level elements in the stream so far."""
        parser = state["parser"]
        parser.feed(state["decoder"].decode(data))
        for event, elem in parser.read_events():
            if event == "start":
                if state["root"] is None:
                    state["root"] = elem
                state["depth"] += 1
                continue
            state["depth"] -= 1
            if state["depth"] == 1:
                yield elem
                state["root"].clear()  # the stream's root keeps no children: memory stays flat

    def _down(self, state: dict, data: bytes, client: socket.socket) -> None:
        """Server -> node: the coupling learns the wheel and the panel first; the bytes go on as they are."""
        sky = self.sky
        for elem in self._elements(state, data):
            if elem.get("device") in (sky.wheel, sky.panel):
                sky.take(elem, gate=True)
            elem.clear()
        client.sendall(data)

    def _up(self, state: dict, data: bytes, upstream: socket.socket) -> None:
        """Node -> server, element by element; an exposure of the coupled camera waits for the sky."""
        for elem in self._elements(state, data):
            if elem.tag == "newNumberVector" and elem.get("device") == self.sky.camera \
                    and elem.get("name") == "CCD_EXPOSURE":
                self.sky.sync()
                self.exposures += 1
            upstream.sendall(ET.tostring(elem) + b"\n")
