"""A chaos night: a master and two slaves on the simulators, guiding and refocusing, while faults
are applied one after another; then every figure is read back from what the night left behind.

The rig (`indisync.sim.rig.SimRig`): a private mosquitto, one indiserver with the INDI simulators per
node, one `indisync run` process per node; the master guides (Guide Simulator), dithers and refocuses
after every batch; the slaves rotate R, G, B in strict sync. The fault schedule (FAULTS below), each
fault applied once the previous one has recovered or timed out:

  slave_kill9        kill -9 slave1 mid-exposure (its exposure_started seen, no exposure_done), restart it
  broker_restart     mosquitto stopped and started again on the same port
  master_indiserver  kill -9 the master's indiserver and drivers, bring it back (mount where it was)
  slave_indiserver   kill -9 slave2's indiserver, bring it back
  clouds             SIM_NOISE 6000 (read back) on every CCD Simulator across a refocus, then cleared
  guide_star_loss    SIM_NOISE 6000 (read back) on the Guide Simulator for a while, then restored
  rain               WEATHER_CONTROL.Precip 10 in the Weather Simulator mid-exposure (WEATHER_STATUS Alert
                     read back), dry again once the master has parked; detected: the master's night_state to
                     unsafe; recovered: night_state to imaging and the master's next exposure_started, after
                     safety.safe_for (5 s) of dry weather

The full form watches the weather (the master's indi.weather: "Weather Simulator", safety
{safe_for: 5, stale_after: 15}) and points at a target with coordinates, so that after a park the
night unparks and slews back. The Weather Simulator runs on the master's own indiserver: a master
reads every device through the one indiserver its config names, so a weather driver elsewhere would
still reach it through that server. Killing the master's indiserver therefore also takes its weather
station away: the night goes unsafe at once (every node's exposure aborted, park tried), and after
the server is back it needs safe_for of safe weather before it slews back and images. The
master_indiserver fault accounts for that: it records the night's moves to unsafe and back to imaging,
and restores what a fresh simulator forgets and real hardware keeps (the mount's site and park
position, the station's update period). The quick form has no weather station: unchanged.

An exposure aborted because the night went unsafe is never written and a slave's rotation does not
advance for it, so it cannot count as a duplicate, a partial file or a rotation error; it is listed
in `frames_lost_why` with the cause (rain, weather device gone) read from the master's night_state.

Every figure comes from files on disk (FITS headers, file sizes, inode/mtime polled during the
night), node logs and MQTT events recorded by a monitor client, never from what the script intended:
`duplicates` (a node with two frames for one master exposure), `partial_files` (unreadable or
shorter than the header says, plus leftover temporary files and files whose inode or mtime changed
after they appeared), `rotation_errors` (a slave filter skipped or repeated, a master frame off its
plan), `frames` per node (wanted = the master's planned frames), each fault's `at_s`, `detected_s`,
`recovered_s` (seconds from the start of the night; None = not seen) and what was seen, autofocus
results against the simulator's true focus, and each process's exit.

    .venv/bin/python benchmarks/chaos_night.py            # the full night: 4 batches x 11 frames
    .venv/bin/python benchmarks/chaos_night.py --quick    # CI's short form: 2 batches x 4 frames, 2 faults
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indisync.config import IndiConfig, MqttConfig  # noqa: E402
from indisync.devices.session import open_devices  # noqa: E402
from indisync.protocol.transport import MqttTransport  # noqa: E402
from indisync.sim.chaos import (  # noqa: E402
    abort_kind,
    duplicates,
    first_after,
    log_times,
    night_moves,
    partial_file,
    rotation_errors,
    unsafe_cause,
)
from indisync.sim.indi import get_numbers, set_number, set_precipitation  # noqa: E402
from indisync.sim.night import WEATHER, longitude_for_local_hour, prepare_mount, target_east_high  # noqa: E402
from indisync.sim.report import by_node, read_focus_runs, read_frames  # noqa: E402
from indisync.sim.rig import SimRig  # noqa: E402

SLAVE_CYCLE = ["Red", "Green", "Blue"]
EXPOSURE_S = 300  # simulated seconds; 3 s of wall time at time_factor 0.01
TIME_FACTOR = 0.01
CLOUD_NOISE = 6000  # the simulators' largest accepted SIM_NOISE
FAULT_TIMEOUT_S = 120.0  # detection or recovery not seen within this: recorded as None
# The full form's weather safety: short, so that a shower costs seconds, not the default 10 minutes.
SAFE_FOR_S = 5.0
STALE_AFTER_S = 15.0
RAIN_MM_PER_H = 10.0
# With the weather watched, the master's indiserver kill also parks the night: a park tried while the
# server is down fails and is tried again after the machine's park_retry (30 s), then safe_for, the
# slew back and the guider's start come before the next frame.
WEATHER_RECOVERY_TIMEOUT_S = 240.0


# ---- what the night leaves behind, recorded while it runs ---------------------------------------
class Monitor:
    """Every MQTT event, state and status of the rig, with its arrival time (unix seconds)."""

    def __init__(self, host: str, port: int):
        self.records: list[tuple[float, str, str, object]] = []  # (time, node, kind, payload)
        self._lock = threading.Lock()
        self.transport = MqttTransport(MqttConfig(host=host, port=port), f"chaos-monitor-{os.getpid()}")
        for topic in ("indisync/+/event", "indisync/+/state", "indisync/+/status"):
            self.transport.subscribe(topic, self._add)
        self.transport.start()
        if not self.transport.wait_connected(10):
            raise RuntimeError("the chaos monitor could not reach the broker")

    def _add(self, msg) -> None:
        parts = msg.topic.split("/")
        node, kind = parts[1], parts[2]
        payload: object
        if kind == "status":
            payload = msg.payload.decode(errors="replace") if isinstance(msg.payload, bytes) else str(msg.payload)
        else:
            try:
                payload = json.loads(msg.payload)
            except ValueError:
                return
        with self._lock:
            self.records.append((time.time(), node, kind, payload))

    def find(self, after: float, pred: Callable[[str, str, object], bool]) -> float | None:
        with self._lock:
            records = list(self.records)
        for t, node, kind, payload in records:
            if t >= after and pred(node, kind, payload):
                return t
        return None

    def events(self, node: str | None = None, type_: str | None = None, after: float = 0.0) -> list[tuple[float, dict]]:
        with self._lock:
            records = list(self.records)
        return [(t, p) for t, n, k, p in records if k == "event" and t >= after and (node is None or n == node)
                and isinstance(p, dict) and (type_ is None or p.get("type") == type_)]

    def close(self) -> None:
        self.transport.stop()


class FileWatch:
    """Polls the images directory: when each file appeared, and whether it changed afterwards."""

    def __init__(self, images: Path, every: float = 0.3):
        self.images, self.every = images, every
        self.first_seen: dict[Path, tuple[float, int, int, int]] = {}  # path -> (time, ino, size, mtime_ns)
        self.changed: set[Path] = set()
        self.tmp_seen: set[Path] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="chaos-files", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.scan()
            except Exception as exc:  # noqa: BLE001 - a vanished file mid-scan: look again next time
                print(f"file scan: {exc}", file=sys.stderr)

    def scan(self) -> None:
        now = time.time()
        for path in self.images.rglob("*.fits"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            with self._lock:
                seen = self.first_seen.get(path)
                if seen is None:
                    self.first_seen[path] = (now, *key)
                elif seen[1:] != key:
                    self.changed.add(path)

    def count(self, node: str) -> int:
        with self._lock:
            return sum(1 for p in self.first_seen if p.parent.name == node)

    def first_new(self, node: str, after: float) -> float | None:
        with self._lock:
            times = [t for p, (t, *_rest) in self.first_seen.items() if p.parent.name == node and t >= after]
        return min(times) if times else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.scan()


NIGHT_OVER: list[Callable[[], bool]] = []  # set by run(): the master has exited, nothing more will come


def wait_for(fn: Callable[[], float | None | bool], timeout: float, step: float = 0.2):
    """fn's first truthy value within ``timeout`` s, else None (also once the night is over)."""
    deadline = time.monotonic() + timeout
    while True:
        over = any(check() for check in NIGHT_OVER)
        value = fn()
        if value:
            return value
        if over or time.monotonic() >= deadline:
            return None
        time.sleep(step)


# ---- the faults ---------------------------------------------------------------------------------
@dataclass
class Night:
    rig: SimRig
    mon: Monitor
    files: FileWatch
    t0: float
    # the full form: (site longitude, target dec) the simulated mount and weather station were
    # prepared with (indisync.sim.night.prepare_mount); None: no weather station (the quick form)
    site: tuple[float, float] | None = None

    def rel(self, t: float | None) -> float | None:
        return None if t is None else round(t - self.t0, 2)

    def log(self, node: str) -> str:
        return self.rig.nodes[node].log_text()

    def log_first(self, nodes, needle: str, after: float, timeout: float) -> float | None:
        return wait_for(lambda: min((t for t in (first_after(log_times(self.log(n), needle), after)
                                                 for n in nodes) if t is not None), default=None), timeout)


def fault_slave_kill9(night: Night) -> dict:
    rig, mon = night.rig, night.mon
    # mid-exposure: slave1 said exposure_started and has not said exposure_done since
    started = wait_for(lambda: (lambda ev: ev[-1][0] if ev else None)(
        mon.events("slave1", "exposure_started", after=time.time() - 0.5)), FAULT_TIMEOUT_S, 0.05)
    time.sleep(EXPOSURE_S * TIME_FACTOR / 2)
    at = time.time()
    mid = bool(started) and not mon.events("slave1", "exposure_done", after=started)
    rig.kill_node("slave1")
    detected = night.log_first(["master"], "node slave1: ", at, 30)  # the master's registry notices
    time.sleep(1.0)
    restarted = time.time()
    rig.start_node("slave1")
    rig.wait_up("slave1", 60)
    recovered = wait_for(lambda: night.files.first_new("slave1", restarted), FAULT_TIMEOUT_S)
    return {"fault": "slave_kill9", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "mid_exposure": mid,
            "how": "kill -9 slave1's process group 1.5 s into its exposure; restarted 1 s after the master noticed",
            "detected_by": "master log: registry drops slave1", "recovered_by": "slave1's next frame on disk"}


def fault_broker_restart(night: Night) -> dict:
    at = time.time()
    night.rig.broker.restart(down_for=2.0)
    back = time.time()
    nodes = list(night.rig.nodes)
    detected = night.log_first(nodes, "disconnected", at, 30)
    recovered = wait_for(lambda: (lambda ts: max(ts) if all(ts) else None)(
        [night.files.first_new(n, back) for n in nodes]), FAULT_TIMEOUT_S)
    return {"fault": "broker_restart", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "down_s": round(back - at, 2),
            "detected_by": "a node's log: MQTT disconnected", "recovered_by": "every node's next frame on disk"}


def _guiding_again(night: Night, after: float) -> float | None:
    return night.mon.find(after, lambda n, k, p: n == "master" and k == "state" and isinstance(p, dict)
                          and ((p.get("payload") or {}).get("guiding") or {}).get("state") == "guiding"
                          and ((p.get("payload") or {}).get("guiding") or {}).get("rms_px") is not None)


def _guider_down(night: Night, after: float) -> float | None:
    return night.mon.find(after, lambda n, k, p: n == "master" and k == "state" and isinstance(p, dict)
                          and ((p.get("payload") or {}).get("guiding") or {}).get("state") in ("error", "idle", "lost"))


def _night_to(night: Night, after: float, state: str) -> float | None:
    """When the master's night_state event moved the night to ``state`` after ``after`` (MQTT)."""
    return night.mon.find(after, lambda n, k, p: n == "master" and k == "event" and isinstance(p, dict)
                          and p.get("type") == "night_state" and (p.get("payload") or {}).get("to") == state)


def _night_reason(night: Night, at: float | None) -> str | None:
    if at is None:
        return None
    moves = [m for m in night_moves(night.mon.events("master", "night_state")) if m[0] == at]
    return moves[0][2] if moves else None


def fault_master_indiserver(night: Night) -> dict:
    at = time.time()
    night.rig.kill_indi("master")
    detected = night.log_first(["master"], "lost indiserver", at, 30)
    time.sleep(3.0)
    night.rig.start_indi("master")
    if night.site is not None:
        # The fresh Telescope and Weather Simulators forgot the site, the park position near the
        # target and the one-second weather updates; a real mount and station keep them.
        prepare_mount(night.rig.nodes["master"].indi, night.site[0], night.site[1], weather=True)
    back = time.time()
    timeout = WEATHER_RECOVERY_TIMEOUT_S if night.site is not None else FAULT_TIMEOUT_S
    down = wait_for(lambda: _guider_down(night, at), 5)  # the old guider reported its end
    frame = wait_for(lambda: night.files.first_new("master", back), timeout)
    guiding = wait_for(lambda: _guiding_again(night, max(back, down or back)), timeout)
    recovered = max(frame, guiding) if frame and guiding else None
    result = {"fault": "master_indiserver", "at_s": night.rel(at), "detected_s": night.rel(detected),
              "recovered_s": night.rel(recovered), "back_s": night.rel(back),
              "guiding_resumed_s": night.rel(guiding), "next_master_frame_s": night.rel(frame),
              "detected_by": "master log: lost indiserver",
              "recovered_by": "a master frame on disk and guiding (with guide RMS) in the master's MQTT state"}
    if night.site is not None:
        # Its weather station went with the server: the night went unsafe and came back after safe_for.
        unsafe = _night_to(night, at, "unsafe")
        result.update({"night_unsafe_s": night.rel(unsafe), "night_unsafe_reason": _night_reason(night, unsafe),
                       "night_imaging_again_s": night.rel(_night_to(night, back, "imaging")),
                       "weather_note": "the weather driver runs on this indiserver: its loss made the night unsafe "
                                       f"at once; imaging again after safe_for ({SAFE_FOR_S:g} s) of safe weather"})
    return result


def fault_slave_indiserver(night: Night) -> dict:
    at = time.time()
    night.rig.kill_indi("slave2")
    detected = night.log_first(["slave2"], "lost indiserver", at, 30)
    time.sleep(3.0)
    night.rig.start_indi("slave2")
    back = time.time()
    recovered = wait_for(lambda: night.files.first_new("slave2", back), FAULT_TIMEOUT_S)
    return {"fault": "slave_indiserver", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "back_s": night.rel(back),
            "detected_by": "slave2 log: lost indiserver", "recovered_by": "slave2's next frame on disk"}


def _set_noise(night: Night, node: str, device: str, value: float) -> float:
    indi = night.rig.nodes[node].indi
    set_number(indi.host, indi.port, device, "SIMULATOR_SETTINGS", {"SIM_NOISE": value})
    return wait_for(lambda: (lambda v: v if abs(v - value) < 1e-6 else None)(
        get_numbers(indi.host, indi.port, device, "SIMULATOR_SETTINGS")["SIM_NOISE"]), 5, 0.1) or \
        get_numbers(indi.host, indi.port, device, "SIMULATOR_SETTINGS")["SIM_NOISE"]


def fault_clouds(night: Night, refocus_after_master_frames: int) -> dict:
    # Clouds come during the last frame before a refocus and stay until every node has focused.
    wait_for(lambda: night.files.count("master") >= refocus_after_master_frames - 1, 600)
    nodes = list(night.rig.nodes)
    original = {n: get_numbers(night.rig.nodes[n].indi.host, night.rig.nodes[n].indi.port, "CCD Simulator",
                               "SIMULATOR_SETTINGS")["SIM_NOISE"] for n in nodes}
    at = time.time()
    read_back = {n: _set_noise(night, n, "CCD Simulator", CLOUD_NOISE) for n in nodes}
    done = wait_for(lambda: (lambda evs: evs if {p["from"] for _, p in evs} >= set(nodes) else None)(
        night.mon.events(type_="autofocus_done", after=at)), 900, 0.5) or []
    failed = [t for t, p in done if (p.get("payload") or {}).get("status") != "ok"]
    detected = min(failed) if failed else None
    restored = {n: _set_noise(night, n, "CCD Simulator", original[n]) for n in nodes}
    cleared = time.time()
    recovered = wait_for(lambda: (lambda ts: max(ts) if all(ts) else None)(
        [night.files.first_new(n, cleared) for n in nodes]), FAULT_TIMEOUT_S)
    return {"fault": "clouds", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "noise_read_back": read_back, "noise_restored": restored,
            "autofocus_during_clouds": {p["from"]: (p.get("payload") or {}).get("status") for _, p in done},
            "detected_by": "an autofocus_done event not ok during the clouds (None: focus coped with them)",
            "recovered_by": "every node's next frame on disk after the sky cleared"}


def fault_guide_star_loss(night: Night, hold_s: float = 8.0) -> dict:
    indi = night.rig.nodes["master"].indi
    original = get_numbers(indi.host, indi.port, "Guide Simulator", "SIMULATOR_SETTINGS")["SIM_NOISE"]
    at = time.time()
    read_back = _set_noise(night, "master", "Guide Simulator", CLOUD_NOISE)
    detected = wait_for(lambda: night.mon.find(at, lambda n, k, p: n == "master" and k == "event"
                                               and isinstance(p, dict) and p.get("type") == "error"
                                               and "guide star lost" in str((p.get("payload") or {}).get("message"))),
                        60)
    time.sleep(hold_s)
    restored = _set_noise(night, "master", "Guide Simulator", original)
    cleared = time.time()
    guiding = wait_for(lambda: _guiding_again(night, cleared), FAULT_TIMEOUT_S)
    frame = wait_for(lambda: night.files.first_new("master", cleared), FAULT_TIMEOUT_S)
    recovered = max(guiding, frame) if guiding and frame else None
    frames_while_lost = sum(1 for p, (t, *_r) in dict(night.files.first_seen).items()
                            if p.parent.name == "master" and (detected or cleared) + 5 < t < cleared)
    return {"fault": "guide_star_loss", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "noise_read_back": read_back, "noise_restored": restored,
            "master_frames_started_while_lost": frames_while_lost,
            "detected_by": "master MQTT error event: guide star lost",
            "recovered_by": "guiding (with RMS) in the master's state and a master frame after the star came back"}


def _eid(value) -> int | None:
    """An exposure id as a number: the master's events carry '17', a slave's 17 (its FITS EXPOSID)."""
    digits = "".join(ch if ch.isdigit() else " " for ch in str(value)).split() if value is not None else []
    return int(digits[-1]) if digits else None


def fault_rain(night: Night, hold_s: float = 2.0) -> dict:
    # Our own view of WEATHER_STATUS, kept by INDI callbacks (a raw getProperties read of the whole
    # station can end in a quiet gap before the light vector arrives, under load).
    indi = night.rig.nodes["master"].indi
    with open_devices(IndiConfig(host=indi.host, port=indi.port, weather=WEATHER), need=("weather",),
                      want=()) as watch:
        return _rain(night, watch.weather, hold_s)


def _rain(night: Night, station, hold_s: float) -> dict:
    rig, mon = night.rig, night.mon
    indi = rig.nodes["master"].indi
    nodes = list(rig.nodes)
    looked = time.time()

    def every_node_exposing():
        # the master's latest exposure, once every node has said exposure_started for it
        opened = mon.events("master", "exposure_started", after=looked)
        if not opened:
            return None
        t_open, env = opened[-1]
        exposure_id = _eid((env.get("payload") or {}).get("exposure_id"))
        started = {p.get("from") for _, p in mon.events(type_="exposure_started", after=t_open - 1.0)
                   if _eid((p.get("payload") or {}).get("exposure_id")) == exposure_id}
        return (t_open, exposure_id) if started >= set(nodes) else None

    opened = wait_for(every_node_exposing, FAULT_TIMEOUT_S, 0.05)
    exposure_id = opened[1] if opened else None
    time.sleep(EXPOSURE_S * TIME_FACTOR / 3)
    at = time.time()
    mid = bool(opened) and not [p for _, p in mon.events(type_="exposure_done", after=opened[0])
                                if _eid((p.get("payload") or {}).get("exposure_id")) == exposure_id]
    set_precipitation(indi.host, indi.port, RAIN_MM_PER_H)  # reads Precip back
    alert = wait_for(lambda: station.status == "alert" and time.time(), 10, 0.02)
    detected = wait_for(lambda: _night_to(night, at, "unsafe"), 30)
    parked = wait_for(lambda: _night_to(night, at, "parked"), 60)
    aborted = {p.get("from"): (p.get("payload") or {}).get("status")
               for _, p in mon.events(type_="exposure_done", after=at)
               if _eid((p.get("payload") or {}).get("exposure_id")) == exposure_id}
    time.sleep(hold_s)
    dry_cmd = time.time()
    set_precipitation(indi.host, indi.port, 0)
    dry = wait_for(lambda: station.status == "ok" and time.time(), 10, 0.02)
    imaging = wait_for(lambda: _night_to(night, dry_cmd, "imaging"), SAFE_FOR_S + FAULT_TIMEOUT_S)
    resumed = _night_to(night, dry_cmd, "slewing")  # parked -> slewing: the end of the wait for safe_for
    recovered = wait_for(lambda: (lambda ev: ev[0][0] if ev else None)(
        mon.events("master", "exposure_started", after=imaging)), FAULT_TIMEOUT_S) if imaging else None
    return {"fault": "rain", "at_s": night.rel(at), "detected_s": night.rel(detected),
            "recovered_s": night.rel(recovered), "mid_exposure": mid, "exposure_id": exposure_id,
            "alert_read_back_s": night.rel(alert), "parked_s": night.rel(parked), "dry_s": night.rel(dry),
            "exposure_done_status": aborted,
            "resumed_after_dry_s": None if resumed is None else round(resumed - dry_cmd, 2),
            "waited_safe_for": resumed is not None and resumed - dry_cmd >= SAFE_FOR_S,
            "imaging_again_s": night.rel(imaging),
            "how": f"WEATHER_CONTROL.Precip {RAIN_MM_PER_H:g} (read back) 1 s into an exposure every node had "
                   f"started; Precip 0 {hold_s:g} s after the master parked",
            "detected_by": "the master's night_state event to unsafe (MQTT)",
            "recovered_by": f"night_state to imaging and the master's next exposure_started, after safe_for "
                            f"({SAFE_FOR_S:g} s) of dry weather"}


# ---- the night ----------------------------------------------------------------------------------
def master_section(frames: int, batches: int, target: dict | str = "M42") -> dict:
    return {
        "target": target, "batches": batches, "sync": "strict",
        "refocus": {"after_batch": True},
        "dither": {"every_frames": 3, "pixels": 3, "settle": {"pixels": 1.5, "time": 2, "timeout": 30}},
        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": EXPOSURE_S, "repeat": frames}]},
    }


def run(quick: bool, workdir: Path) -> dict:
    frames, batches = (4, 2) if quick else (11, 4)
    wanted = frames * batches
    started = time.monotonic()
    site = None
    if quick:
        weather: dict = {}
        target: dict | str = "M42"
    else:
        # A weather station, and a target with coordinates so that the night slews back after a park:
        # local midnight at the site, an hour east of the meridian at the rig's guiding declination.
        site = (longitude_for_local_hour(0.0), 30.0)
        ra, dec = target_east_high(site[0], site[1])
        target = {"name": "CHAOS", "ra": ra, "dec": dec}
        weather = {"master_drivers": ("indi_simulator_weather",),
                   "master_sections": {"indi": {"weather": WEATHER},
                                       "safety": {"safe_for": SAFE_FOR_S, "stale_after": STALE_AFTER_S, "poll": 0.2}}}
    rig = SimRig(slaves=2, time_factor=TIME_FACTOR, workdir=workdir,
                 master_section=master_section(frames, batches, target),
                 slave_section={"filters": SLAVE_CYCLE, "exposure": EXPOSURE_S},
                 guider_section={"exposure": 1.0}, **weather).start()
    mon = files = None
    faults: list[dict] = []
    exits: dict[str, int | None] = {}
    try:
        if site is not None:  # the park position near the target, the station dry and updating every second
            prepare_mount(rig.nodes["master"].indi, site[0], site[1], weather=True)
        mon = Monitor(rig.broker.host, rig.broker.port)
        files = FileWatch(rig.images)
        rig.start_slaves()
        t0 = time.time()
        rig.start_node("master")
        night = Night(rig, mon, files, t0, site)
        NIGHT_OVER[:] = [lambda: rig.nodes["master"].process.poll() is not None]
        if quick:
            # CI's subset: the two process-level faults (the guide-star loss has its own test,
            # tests/integration/test_orchestration.py); the master's indiserver early enough to
            # leave frames after it.
            schedule = [
                lambda: fault_slave_kill9(night),
                lambda: fault_master_indiserver(night),
            ]
            triggers = [1, 2]
        else:
            schedule = [
                lambda: fault_slave_kill9(night),
                lambda: fault_broker_restart(night),
                lambda: fault_master_indiserver(night),
                lambda: fault_slave_indiserver(night),
                lambda: fault_clouds(night, 2 * frames),
                lambda: fault_guide_star_loss(night),
                lambda: fault_rain(night),
            ]
            triggers = [2, 6, 9, 13, 0, 27, 36]
        for trigger, apply in zip(triggers, schedule):
            wait_for(lambda: files.count("master") >= trigger, 900, 0.3)
            if rig.nodes["master"].process.poll() is not None:
                break
            faults.append(apply())
            print(json.dumps(faults[-1]), file=sys.stderr, flush=True)
        NIGHT_OVER.clear()
        exits["master"] = rig.wait_node("master", 1500 if not quick else 300)
        for name in rig.nodes:
            if name != "master":
                exits[name] = rig.stop_node(name, timeout=30)
        if exits["master"] is None:
            exits["master"] = rig.stop_node("master", timeout=30)
            exits["master_timed_out"] = True
    finally:
        if files is not None:
            files.close()
        if mon is not None:
            mon.close()
        rig.stop()
    return judge(rig, files, mon.events() if mon is not None else [], faults, exits, wanted, quick,
                 time.monotonic() - started)


def judge(rig: SimRig, files: FileWatch, monitor_events: list, faults: list[dict], exits: dict, wanted: int,
          quick: bool, wall: float) -> dict:
    frames = read_frames(rig.images)
    nodes = by_node(frames)
    master = nodes.get("master", [])
    partial = {str(p): why for p in rig.images.rglob("*.fits") if (why := partial_file(p))}
    leftovers = [str(p) for p in rig.images.rglob("*.tmp")]
    overwritten = sorted(str(p) for p in files.changed)
    rotation = {name: rotation_errors(nodes.get(name, []), SLAVE_CYCLE) for name in rig.nodes if name != "master"}
    rotation["master"] = rotation_errors(master, ["Luminance"])
    master_log = rig.nodes["master"].log_text()
    # A slave is wanted for every exposure the master opened (its exposure_started events, and its
    # files): one whose own frame then failed (its indiserver died mid-exposure) still had slaves
    # exposing, and those frames are kept (counted apart as without_master_frame).
    opened_at = {_eid(p["payload"]["exposure_id"]): t for t, p in monitor_events if p.get("from") == "master"
                 and p.get("type") == "exposure_started" and _eid(p["payload"].get("exposure_id")) is not None}
    opened = set(opened_at) | {f.exposure_id for f in master if f.exposure_id is not None}
    master_ids = {f.exposure_id for f in master}
    moves = night_moves(monitor_events)
    done_at = {(p.get("from"), _eid((p.get("payload") or {}).get("exposure_id"))): (t, p.get("payload") or {})
               for t, p in monitor_events if p.get("type") == "exposure_done"}

    def aborted_why(name: str, exposure_id: int) -> dict | None:
        """An exposure of ``name`` that ended because the night went unsafe meanwhile (rain, the
        weather device gone): aborted, never written, the rotation not advanced."""
        start = opened_at.get(exposure_id)
        if start is None:
            return None
        done = done_at.get((name, exposure_id))
        end = done[0] if done else start + EXPOSURE_S * TIME_FACTOR + 5.0
        cause = unsafe_cause(moves, start - 1.0, end + 1.0)
        if cause is None:
            return None
        # Every node reports such an exposure as "aborted"; the status is quoted as it came.
        status = done[1].get("status") if done else "none"
        return {"exposure_id": exposure_id,
                "why": f"{abort_kind(cause)}: aborted (exposure_done {status}; night unsafe: {cause})"}

    per_node, lost_why = {}, {}
    for name in rig.nodes:
        mine = nodes.get(name, [])
        taken = len(mine)
        if name == "master":
            # An aborted master frame is taken again when the night resumes: not lost to the plan,
            # but its exposure is, on every node; listed here with its cause.
            aborted = [w for i in sorted(opened - master_ids) if (w := aborted_why(name, i))]
            per_node[name] = {"wanted": wanted, "taken": taken, "lost": max(wanted - taken, 0),
                              "exposures_opened": len(opened), "aborted_unsafe": len(aborted)}
            lost_why[name] = [line.split(": ", 1)[-1] for line in master_log.splitlines()
                              if "giving up frame" in line] + aborted
            continue
        missing = sorted(opened - {f.exposure_id for f in mine})
        per_node[name] = {"wanted": len(opened), "taken": taken, "lost": len(missing),
                          "without_master_frame": sum(1 for f in mine if f.exposure_id not in master_ids)}
        why = []
        for exposure_id in missing:
            unsafe = aborted_why(name, exposure_id)
            if unsafe is not None:
                why.append(unsafe)
                continue
            lines = [line.split("WARNING indisync.node.master: ", 1)[-1] for line in master_log.splitlines()
                     if f"exposure {exposure_id}: no frame from" in line]
            if not lines:
                start = next((f.start for f in master if f.exposure_id == exposure_id), None)
                start = (start if start.tzinfo else start.replace(tzinfo=timezone.utc)).timestamp() if start else None
                lines = [(_down_at(master_log, name, start) if start else None) or "no warning in the master log"]
            why.append({"exposure_id": exposure_id, "why": lines[-1]})
        lost_why[name] = why
    focus = read_focus_runs(rig.workdir / "focus")
    autofocus = {name: [{"status": r.get("status"), "position": r.get("position"),
                         "true_focus": rig.nodes[name].true_focus,
                         "error_steps": (r["position"] - rig.nodes[name].true_focus)
                         if isinstance(r.get("position"), (int, float)) and r.get("status") == "ok" else None,
                         "reason": r.get("reason")} for r in runs]
                 for name, runs in focus.items() if name in rig.nodes}
    processes = {}
    for name, node in rig.nodes.items():
        logs = "".join((rig.workdir / f"{name}.{i}.log").read_text(errors="replace")
                       for i in range(1, node.starts + 1) if (rig.workdir / f"{name}.{i}.log").exists())
        processes[name] = {"exit": exits.get(name), "clean": exits.get(name) == 0, "starts": node.starts,
                           "crashed": "Fatal Python error" in logs or "Segmentation fault" in logs}
    for fault in faults:
        if fault.get("fault") == "rain":  # the exposure the rain aborted: on no node's disk
            fault["aborted_exposure_files"] = sorted(str(f.path.name) for f in frames
                                                     if f.exposure_id == fault.get("exposure_id"))
    faults_ok = all(f.get("recovered_s") is not None for f in faults)
    result = {
        "benchmark": "chaos_night", "quick": quick, "time_factor": TIME_FACTOR, "wall_s": round(wall, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "duplicates": duplicates(frames),
        "partial_files": len(partial) + len(leftovers) + len(overwritten),
        "partial_detail": {"incomplete": partial, "temporary_left": leftovers, "changed_after_written": overwritten},
        "rotation_errors": sum(rotation.values()),
        "rotation_errors_by_node": rotation,
        "frames": per_node,
        "frames_lost_why": lost_why,
        "faults": faults,
        "autofocus": autofocus,
        "processes": processes,
        "all_processes_clean": all(p["clean"] and not p["crashed"] for p in processes.values())
        and not exits.get("master_timed_out"),
        "all_recovered": faults_ok and exits.get("master") == 0 and len(faults) > 0,
    }
    return result


def _down_at(master_log: str, node: str, when: float) -> str | None:
    """Why the master did not command ``node`` at ``when``: its registry had it offline then."""
    offline = log_times(master_log, f"node {node}: offline") + log_times(master_log, f"node {node}: missed heartbeats")
    joined = log_times(master_log, f"node {node}: joined")
    down = [t for t in offline if t <= when]
    if down and not any(max(down) < t <= when for t in joined):
        return f"not commanded: the master's registry had {node} down since {max(down) - when:+.1f} s (offline)"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short form CI runs (8 frames, 2 faults)")
    parser.add_argument("--workdir", type=Path, help="keep the rig's files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="indisync-chaos-"))
    result = run(args.quick, workdir)
    result["workdir"] = str(workdir)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
