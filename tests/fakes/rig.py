"""One fake ``Rig`` (indisync.night.rig) for unit and model-based tests: stand-in devices with
latencies, refusals and failures, participants, a sequence, a guider, a store and a report, all in
memory. The devices keep a log of what happened when, so a test can check the invariants (a slew or
an unpark while a park runs is a conflict; the mount out while unsafe, and for how long)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from indisync.errors import ActionCancelled, DeviceError, IndisyncError
from indisync.night.arbiter import MotionArbiter
from indisync.night.rig import Outcome, Rig
from indisync.sequence.plan import MasterProgress, expand_batch


def _sleep(seconds: float, cancel=None, what: str = "motion") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel is not None and cancel.is_set():
            raise ActionCancelled(f"{what} cancelled")
        time.sleep(min(0.002, max(0.0, deadline - time.monotonic())))


@dataclass
class Faults:
    """What the stand-ins do wrong: each a count of the next calls that fail."""

    park_refusals: int = 0
    close_refusals: int = 0
    slew_failures: int = 0
    frame_failures: int = 0
    devices_gone: bool = False


class FakeMount:
    def __init__(self, log, faults: Faults, latency: float = 0.005):
        self.log, self.faults, self.latency = log, faults, latency
        self.parked = False  # the simulator's start: unparked, where it was left
        self.tracking = False
        self.pier_side = "west"
        self.coordinates = (6.0, 30.0)
        self.slews: list = []  # (ra, dec) J2000 of every slew asked for
        self._busy = threading.Lock()
        self.parking = False
        self.conflicts: list[str] = []

    def site(self):
        return 45.0, 10.0, 0.0

    def park(self, timeout=None):
        self.parking = True
        try:
            self.log.append((time.monotonic(), "mount", "park_start"))
            _sleep(self.latency)
            if self.faults.park_refusals > 0:
                self.faults.park_refusals -= 1
                raise DeviceError("Telescope refused TELESCOPE_PARK: refused by the stand-in")
            self.parked, self.tracking = True, False
            self.log.append((time.monotonic(), "mount", "parked"))
        finally:
            self.parking = False

    def unpark(self, timeout=None, cancel=None):
        if cancel is not None and cancel.is_set():
            raise ActionCancelled("unpark cancelled")
        if self.parking:
            self.conflicts.append("unpark while parking")
        self.parked = False
        self.log.append((time.monotonic(), "mount", "unparked"))

    def slew_j2000(self, ra, dec, timeout, tolerance_arcsec=120.0, cancel=None):
        if self.parked:
            raise DeviceError("the mount is parked: unpark it first")
        if self.parking:
            self.conflicts.append("slew while parking")
        self.log.append((time.monotonic(), "mount", "slew_start"))
        self.slews.append((ra, dec))
        _sleep(self.latency, cancel, "slew")
        if self.parking:
            self.conflicts.append("slew ran into a park")
        if self.faults.slew_failures > 0:
            self.faults.slew_failures -= 1
            raise DeviceError("slew failed: stand-in alert")
        self.log.append((time.monotonic(), "mount", "slewed"))

    def set_tracking(self, on, cancel=None):
        if cancel is not None and cancel.is_set():
            raise ActionCancelled("tracking cancelled")
        self.tracking = on
        self.log.append((time.monotonic(), "mount", "tracking_on" if on else "tracking_off"))


class FakeDome:
    def __init__(self, log, faults: Faults, latency: float = 0.005):
        self.log, self.faults, self.latency = log, faults, latency
        self.shutter_open = False
        self.parked = True

    def unpark(self, timeout=None, cancel=None):
        if cancel is not None and cancel.is_set():
            raise ActionCancelled("dome unpark cancelled")
        self.parked = False

    def open_shutter(self, timeout=None, cancel=None):
        _sleep(self.latency, cancel, "open")
        self.shutter_open = True
        self.log.append((time.monotonic(), "dome", "opened"))

    def close_shutter(self, timeout=None):
        _sleep(self.latency)
        if self.faults.close_refusals > 0:
            self.faults.close_refusals -= 1
            raise DeviceError("Dome refused DOME_SHUTTER: stand-in")
        self.shutter_open = False
        self.log.append((time.monotonic(), "dome", "closed"))

    def park(self, timeout=None):
        self.parked = True


class FakeWeather:
    def __init__(self):
        self.status = "ok"
        self.last_update = time.time()

    def set(self, status):
        self.status, self.last_update = status, time.time()


def flats_result(args, kept_per_set=3, status="ok"):
    """A FlatsResult's fields for ``args`` (contracts.FlatsArgs): every set ``status`` with ``kept_per_set``."""
    sets = [{**dict(s), "status": status, "kept": kept_per_set if status in ("ok", "partial") else 0,
             "taken": kept_per_set + 1, "exposures": [1.0] * kept_per_set, "adu": [26000.0] * kept_per_set}
            for s in args.sets]
    return {"status": status if sets else "nothing", "sets": sets, "full_scale": 65535.0}


def darks_result(args, status="taken"):
    sets = [{**dict(s), "status": status, "count": 5 if status == "taken" else 0} for s in args.sets]
    overall = {"taken": "ok", "skipped": "ok", "waiting": "waiting"}.get(status, status)
    return {"status": overall if sets else "nothing", "sets": sets}


class FakeParticipant:
    """A node: answers at once, except flats and darks, which take ``calib_latency`` s (wall) each and
    stop early when cancelled (status stopped, as a node aborted by the master). ``flats_answer`` /
    ``darks_answer``: None (every set ok / taken) or a function (args) -> Outcome, for scripted outcomes."""

    def __init__(self, name, local=False):
        self.name, self.local = name, local
        self.aborts, self.cools, self.warms = 0, 0, 0
        self.calib_latency = 0.0
        self.flats_calls: list = []  # (args, timeout) of every flats command
        self.darks_calls: list = []
        self.flats_answer = None
        self.darks_answer = None
        self.calib_stopped = 0  # runs ended early by their cancel
        self.calib_running = 0  # runs under way now

    def cool(self, timeout):
        self.cools += 1
        return Outcome(True, {"reached": True})

    def warm(self, timeout):
        self.warms += 1
        return Outcome(True, {})

    def abort(self, reason):
        self.aborts += 1

    def solve(self, hint, timeout):
        return Outcome(False, reason="no solver here")

    def rotate(self, pa, hint, timeout, cancel=None):
        return Outcome(True, {"status": "no_rotator", "reason": "no rotator (indi.rotator is null)",
                              "target_pa": pa % 360.0})

    def flats(self, args, timeout, cancel=None):
        self.flats_calls.append((args, timeout))
        return self._calib(args, cancel, self.flats_answer, flats_result)

    def darks(self, args, timeout, cancel=None):
        self.darks_calls.append((args, timeout))
        return self._calib(args, cancel, self.darks_answer, darks_result)

    def _calib(self, args, cancel, answer, result):
        self.calib_running += 1
        try:
            deadline = time.monotonic() + self.calib_latency
            while time.monotonic() < deadline:
                if cancel is not None and cancel.is_set():
                    self.calib_stopped += 1
                    return Outcome(True, {**result(args), "status": "stopped", "reason": "aborted"})
                time.sleep(0.002)
            return answer(args) if answer is not None else Outcome(True, result(args))
        finally:
            self.calib_running -= 1


class FakeImaging:
    """The sequence of ``cfg.master.sequence``; a frame takes its exposure in real seconds."""

    def __init__(self, cfg, faults: Faults):
        self.faults = faults
        self.plan = expand_batch(cfg.master.sequence)
        self.progress = MasterProgress()
        self.triggers = SimpleNamespace(frame_done=lambda *a: None, batch_done=lambda: None,
                                        reset_after_focus=lambda *a: None)
        self.frames_on_disk = 0
        self.taking = 0
        self.most_at_once = 0  # frames taken at the same time, at most (one, always)
        self.refocused = 0

    def take(self, frame, token):
        if token.is_set():
            return None
        self.taking += 1
        self.most_at_once = max(self.most_at_once, self.taking)
        try:
            _sleep(frame.exposure)
            if token.is_set():
                return None  # aborted: never written
            if self.faults.devices_gone:
                raise IndisyncError("no devices: indiserver gone (stand-in)")
            if self.faults.frame_failures > 0:
                self.faults.frame_failures -= 1
                return None
            self.frames_on_disk += 1
            return SimpleNamespace(hfr=2.0, grade=None)
        finally:
            self.taking -= 1

    def retake_due(self, frame, record):
        return False

    def temperature(self):
        return None

    def refocus_all(self, reason):
        self.refocused += 1

    def save_progress(self):
        pass

    def guider_rebuilt(self):
        return False


class FakeGuiding:
    def __init__(self):
        self.running = False
        self.starts = self.stops = 0
        self.lost = False
        self.guider = SimpleNamespace(after_meridian_flip=lambda recalibrate=False: None)

    def start(self):
        self.starts += 1
        self.running = True
        return True

    def stop(self):
        self.stops += 1
        self.running = False
        return True

    def frame_done(self):
        pass

    def wait_until_guiding(self, cancel=None):
        while self.lost and not (cancel is not None and cancel.is_set()):
            time.sleep(0.002)


class FakeStore:
    def __init__(self):
        self.data: dict = {}
        self.full = False

    def get(self, section):
        return self.data.get(section)

    def put(self, section, value):
        if self.full:
            raise OSError(28, "No space left on device")
        self.data[section] = value


class FakeReport:
    def __init__(self):
        self.states, self.events, self.errors = [], [], []
        self.lock = threading.Lock()

    def update_state(self, **fields):
        night = fields.get("night")
        if night is not None and any(c in (night.get("reason") or "") for c in "\t\n\r"):
            raise ValueError("state reason holds a control character")  # as the real schema refuses it
        with self.lock:
            self.states.append(fields)

    def event(self, kind, **fields):
        with self.lock:
            self.events.append((kind, fields))

    def error(self, message):
        with self.lock:
            self.errors.append(message)


@dataclass
class FakeRigParts:
    log: list = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


def fake_rig(cfg, dome=True, weather=True, guider=False, slaves=1, latency=0.005):
    """A Rig over stand-ins, and its parts (``rig.parts``: mount, dome, weather, imaging, ...)."""
    parts = FakeRigParts()
    mount = FakeMount(parts.log, parts.faults, latency)
    the_dome = FakeDome(parts.log, parts.faults, latency) if dome else None
    the_weather = FakeWeather() if weather else None
    devices = SimpleNamespace(mount=mount, dome=the_dome, weather=the_weather, camera=object(), focuser=None)
    participants = [FakeParticipant("master", local=True)] + [FakeParticipant(f"slave{i + 1}") for i in range(slaves)]
    imaging = FakeImaging(cfg, parts.faults)
    guiding = FakeGuiding() if guider else None

    def get_devices():
        if parts.faults.devices_gone:
            raise IndisyncError("no devices: indiserver gone (stand-in)")
        return devices

    rig = Rig(name="master", cfg=cfg, devices=get_devices, participants=lambda: participants, imaging=imaging,
              guiding=lambda: guiding, store=FakeStore(), report=FakeReport(), stop_event=threading.Event(),
              device_lock=threading.Lock(), arbiter=MotionArbiter(release_wait=1.0))
    rig.parts = SimpleNamespace(log=parts.log, faults=parts.faults, mount=mount, dome=the_dome, weather=the_weather,
                                participants=participants, imaging=imaging, guiding=guiding, devices=devices)
    return rig
