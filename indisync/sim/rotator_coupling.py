"""The simulator rig's rotator coupling (tests and the demo only): INDI 1.9.9's CCD Simulator turns
its field by SIMULATOR_SETTINGS.SIM_ROTATION and does not follow the Rotator Simulator, so
``RotatorCoupling`` mirrors one into the other, as indisync.sim.rig sets SIM_FOCUSING for autofocus.
Product code never does this: a real camera turns with its rotator."""

from __future__ import annotations

import time

from .indi import get_numbers, set_number
from .indi_watch import IndiWatcher


class RotatorCoupling(IndiWatcher):
    """The simulator rig's stand-in for a camera on a rotator (tests and the demo only): INDI 1.9.9's
    CCD Simulator turns its field by ``SIMULATOR_SETTINGS.SIM_ROTATION`` and does not follow the
    Rotator Simulator, so this watches the rotator's ``ABS_ROTATOR_ANGLE`` on a raw connection of its
    own and sets ``SIM_ROTATION`` to ``(sign * angle + offset) mod 360`` at every update (the moves'
    steps too, as a camera on a turning rotator would), read back within ``set_timeout``. With sign
    +1 the solved PA grows with the rotator's angle; -1 stands for a rotator mounted the other way.

    The watcher thread (indisync.sim.indi_watch) never dies silently: a failed set or read-back is
    logged and kept in ``errors``; a lost connection (indiserver restarted) is retried every ``retry_s``
    until closed.
    Product code never does this: a real camera turns with its rotator.
    """

    def __init__(self, host: str, port: int, rotator: str = "Rotator Simulator", camera: str = "CCD Simulator",
                 sign: int = 1, offset: float = 0.0, set_timeout: float = 3.0, retry_s: float = 0.5):
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign!r}")
        # close() waits a set's read-back; the thread looks at the flag at least every poll_s otherwise
        super().__init__(host, port, label="rotator coupling", retry_s=retry_s, join_s=set_timeout + 3.0)
        self.rotator, self.camera = rotator, camera
        self.sign, self.offset, self.set_timeout = sign, offset, set_timeout
        self.mirrored: float | None = None  # the last SIM_ROTATION read back
        self.angle: float | None = None  # the last rotator angle seen
        self.sets = 0
        self._latest: float | None = None  # the rotator's last angle in the read under way

    def rotation_for(self, angle: float) -> float:
        return (self.sign * angle + self.offset) % 360.0

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

    def _asks(self) -> list[tuple[str, str | None]]:
        return [(self.rotator, None)]

    def _connected(self, sock) -> None:
        self.mirrored = None  # a restarted server's simulators start afresh: set it again
        self._latest = None

    def _update(self, device: str, name: str, values: dict[str, str]) -> None:
        if device == self.rotator and name == "ABS_ROTATOR_ANGLE" and "ANGLE" in values:
            self._latest = float(values["ANGLE"])

    def _polled(self, got_data: bool) -> None:
        angle, self._latest = self._latest, None
        if angle is not None:  # the read's last angle: a move's steps come faster than SIM_ROTATION is set
            self._mirror(angle)

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
