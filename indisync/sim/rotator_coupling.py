"""The simulator rig's rotator coupling (tests and the demo only): INDI 1.9.9's CCD Simulator turns
its field by SIMULATOR_SETTINGS.SIM_ROTATION and does not follow the Rotator Simulator, so
``RotatorCoupling`` mirrors one into the other, as indisync.sim.rig sets SIM_FOCUSING for autofocus.
Product code never does this: a real camera turns with its rotator."""

from __future__ import annotations

import re
import socket
import time
import xml.etree.ElementTree as ET
from contextlib import closing
from xml.sax.saxutils import quoteattr

from .indi import get_numbers, set_number


class RotatorCoupling:
    """The simulator rig's stand-in for a camera on a rotator (tests and the demo only): INDI 1.9.9's
    CCD Simulator turns its field by ``SIMULATOR_SETTINGS.SIM_ROTATION`` and does not follow the
    Rotator Simulator, so this watches the rotator's ``ABS_ROTATOR_ANGLE`` on a raw connection of its
    own and sets ``SIM_ROTATION`` to ``(sign * angle + offset) mod 360`` at every update (the moves'
    steps too, as a camera on a turning rotator would), read back within ``set_timeout``. With sign
    +1 the solved PA grows with the rotator's angle; -1 stands for a rotator mounted the other way.

    The watcher thread never dies silently: a failed set or read-back is logged and kept in
    ``errors``; a lost connection (indiserver restarted) is retried every ``retry_s`` until closed.
    Product code never does this: a real camera turns with its rotator.
    """

    def __init__(self, host: str, port: int, rotator: str = "Rotator Simulator", camera: str = "CCD Simulator",
                 sign: int = 1, offset: float = 0.0, set_timeout: float = 3.0, retry_s: float = 0.5):
        import logging
        import threading

        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign!r}")
        self.host, self.port, self.rotator, self.camera = host, port, rotator, camera
        self.sign, self.offset, self.set_timeout, self.retry_s = sign, offset, set_timeout, retry_s
        self.log = logging.getLogger(__name__)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.mirrored: float | None = None  # the last SIM_ROTATION read back
        self.angle: float | None = None  # the last rotator angle seen
        self.sets = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name=f"rotator-coupling-{port}", daemon=True)

    def rotation_for(self, angle: float) -> float:
        return (self.sign * angle + self.offset) % 360.0

    def start(self) -> "RotatorCoupling":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.set_timeout + 3.0)  # it looks at the flag at least every 0.2 s otherwise

    def __enter__(self) -> "RotatorCoupling":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_mirrored(self, angle: float, timeout: float) -> float:
        """Wait until SIM_ROTATION has been read back as the rotation for ``angle``; returns it.
        TimeoutError (with the coupling's errors) otherwise."""
        want = self.rotation_for(angle)
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.mirrored is None or abs((self.mirrored - want + 180.0) % 360.0 - 180.0) > 1e-3:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise TimeoutError(f"SIM_ROTATION is {self.mirrored}, not {want:.3f} (rotator at {self.angle}) "
                                       f"after {timeout:g} s; errors: {self.errors[-3:]}")
                self._changed.wait(min(left, 0.2))
            return self.mirrored

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except Exception as exc:  # noqa: BLE001 - a lost server or a bad packet: say so, connect again
                if not self._stop.is_set():
                    self._error(f"rotator coupling on {self.host}:{self.port}: {exc!r}; reconnecting")
            self._stop.wait(self.retry_s)

    def _error(self, text: str) -> None:
        self.log.warning(text)
        with self._lock:
            self.errors.append(text)
            del self.errors[:-50]

    def _watch(self) -> None:
        with closing(socket.create_connection((self.host, self.port), timeout=5)) as sock:
            self.mirrored = None  # a restarted server's simulators start afresh: set it again
            sock.sendall(f'<getProperties version="1.7" device={quoteattr(self.rotator)}/>\n'.encode())
            sock.settimeout(0.2)
            parser = ET.XMLPullParser(events=("start", "end"))
            parser.feed("<stream>")
            depth = 0
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    raise ConnectionError("indiserver closed the connection")
                parser.feed(data.decode(errors="replace"))
                latest = None
                for event, elem in parser.read_events():
                    if event == "start":
                        depth += 1
                        continue
                    depth -= 1
                    if depth == 1:
                        if re.fullmatch(r"(def|set)NumberVector", elem.tag) and elem.get("device") == self.rotator \
                                and elem.get("name") == "ABS_ROTATOR_ANGLE":
                            for e in elem:
                                if e.get("name") == "ANGLE":
                                    latest = float((e.text or "").strip())
                        elem.clear()
                if latest is not None:
                    self._mirror(latest)

    def _mirror(self, angle: float) -> None:
        with self._lock:
            self.angle = angle
        want = self.rotation_for(angle)
        if self.mirrored is not None and abs(self.mirrored - want) < 1e-6:
            return
        set_number(self.host, self.port, self.camera, "SIMULATOR_SETTINGS", {"SIM_ROTATION": want})
        deadline = time.monotonic() + self.set_timeout
        while True:
            got = get_numbers(self.host, self.port, self.camera, "SIMULATOR_SETTINGS")["SIM_ROTATION"]
            if abs(got - want) < 1e-3:
                break
            if time.monotonic() > deadline:
                self._error(f"{self.camera} kept SIM_ROTATION {got} instead of {want:.3f} "
                            f"(rotator at {angle:.2f})")
                break
            time.sleep(0.05)
        with self._changed:
            self.mirrored = got
            self.sets += 1
            self._changed.notify_all()
