"""Cooling without servers: the cool/warm schemas and state fields, the eta, the monitor's waiting,
and the camera.cooling config section."""

from __future__ import annotations

import threading
import time

import pytest

from indisync.config import load_config
from indisync.errors import ConfigError, DeviceError, IndisyncError, ProtocolError
from indisync.node.cooling import CoolingMonitor, eta_seconds
from indisync.protocol import messages
from indisync.sequence.headers import frame_header_cards


# ---- wire -----------------------------------------------------------------------------------------
def test_cool_and_warm_schemas_defaults_and_ranges():
    assert messages.make("cool", "master", {}).payload == {"setpoint": None, "tolerance": None, "timeout": None}
    assert messages.make("cool", "master", {"setpoint": -15, "tolerance": 0.5, "timeout": 600}).payload == {
        "setpoint": -15.0, "tolerance": 0.5, "timeout": 600.0}
    assert messages.make("warm", "master", {}).payload == {"to": None}
    assert messages.make("warm", "master", {"to": 5}).payload == {"to": 5.0}
    for bad, match in [({"setpoint": -150}, "out of range"), ({"tolerance": 0}, "out of range"),
                       ({"timeout": 0}, "out of range"), ({"setpoint": "cold"}, "expected a number"),
                       ({"target": -10}, "unknown field")]:
        with pytest.raises(ProtocolError, match=match):
            messages.make("cool", "master", bad)
    with pytest.raises(ProtocolError, match="unknown field"):
        messages.make("warm", "master", {"setpoint": 3})


def test_cool_command_round_trips_through_decode():
    env = messages.make("cool", "master", {"setpoint": -10})
    assert messages.decode(env.encode(), "cmd").payload["setpoint"] == -10.0


def _state(**fields):
    return messages.make("state", "ota1", {"role": "slave", "phase": "idle", "version": "1", **fields}).payload


def test_state_temperature_and_cooling_fields():
    assert _state()["temperature"] is None and _state()["cooling"] is None
    state = _state(temperature=-9.5, cooling={"setpoint": -10, "temperature": -9.5, "reached": True, "eta_s": 0})
    assert state["cooling"] == {"setpoint": -10.0, "temperature": -9.5, "reached": True, "eta_s": 0.0}
    assert _state(cooling={"setpoint": -10, "reached": False})["cooling"]["eta_s"] is None
    with pytest.raises(ProtocolError, match="true or false"):
        _state(cooling={"setpoint": -10, "reached": 1})
    with pytest.raises(ProtocolError, match="missing field 'setpoint'"):
        _state(cooling={"reached": False})
    with pytest.raises(ProtocolError, match="out of range"):
        _state(temperature=-300)


def test_headers_carry_ccd_temp_and_set_temp_only_when_known():
    base = dict(node="n", target=None, frame_type="light", filter_name=None, batch=None, seq_index=None,
                exposure_id=None)
    cards = {k: v for k, v, _ in frame_header_cards(**base, ccd_temperature=-9.876, set_temperature=-10)}
    assert cards["CCD-TEMP"] == -9.88 and cards["SET-TEMP"] == -10
    assert not {"CCD-TEMP", "SET-TEMP"} & {k for k, _, _ in frame_header_cards(**base)}


# ---- eta ------------------------------------------------------------------------------------------
def test_eta_from_the_recent_rate():
    samples = [(t, 20.0 - 0.5 * t) for t in range(11)]  # 0.5 C/s down to 15 C
    assert eta_seconds(samples, -10.0, 1.0) == pytest.approx((15 - (-10) - 1) / 0.5)
    assert eta_seconds(samples, 15.5, 1.0) == 0.0  # within tolerance already
    assert eta_seconds(samples[:1], -10, 1) is None  # one sample: no rate
    assert eta_seconds([], -10, 1) is None
    assert eta_seconds(samples, 30.0, 1.0) is None  # moving away from the setpoint
    flat = [(t, 5.0) for t in range(10)]
    assert eta_seconds(flat, -10, 1) is None  # not moving
    warming = [(t, -10.0 + 0.25 * t) for t in range(9)]
    assert eta_seconds(warming, 10.0, 1.0) == pytest.approx((10 - (-8) - 1) / 0.25)


def test_eta_uses_only_the_last_30_s():
    samples = [(t, 20.0 - 1.0 * t) for t in range(0, 10)] + [(t, 11.0 - 0.1 * (t - 10)) for t in range(10, 61)]
    # the last 30 s fall at 0.1 C/s; the fast start is forgotten
    assert eta_seconds(samples, 0.0, 0.0) == pytest.approx(samples[-1][1] / 0.1, rel=1e-6)


# ---- monitor --------------------------------------------------------------------------------------
class FakeCamera:
    """Ramps 1 C per sample() towards its setpoint, like the CCD simulator's 0.5 C/s, but on demand."""

    def __init__(self, temperature=20.0):
        self.temperature = temperature
        self.setpoint = None
        self.sent = []

    def set_temperature(self, value):
        self.sent.append(value)
        self.setpoint = value

    def step(self):
        if self.setpoint is not None and self.temperature != self.setpoint:
            delta = self.setpoint - self.temperature
            self.temperature += max(-1.0, min(1.0, delta))


def test_monitor_waits_until_reached_with_progress():
    camera = FakeCamera(20.0)
    monitor = CoolingMonitor(lambda: camera)
    generation = monitor.set_setpoint(15.0, 0.5)
    stop = threading.Event()
    seen = []

    def feed():
        t = 0.0
        while not stop.is_set():
            camera.step()
            monitor.sample(now=t)
            t += 1.0
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        status = monitor.wait(generation, 10, threading.Event(), progress=seen.append, progress_every=0.0)
    finally:
        stop.set()
        feeder.join(2)
    assert status.reached and abs(status.temperature - 15.0) <= 0.5 and status.eta_s == 0.0
    assert seen and all(not s.reached for s in seen)
    assert any(s.eta_s for s in seen)  # the rate was measured on the way
    assert camera.sent == [15.0]


def test_monitor_times_out_naming_the_temperature_and_is_superseded():
    camera = FakeCamera(20.0)
    monitor = CoolingMonitor(lambda: camera)
    generation = monitor.set_setpoint(-30.0, 1.0)
    monitor.sample()
    with pytest.raises(IndisyncError, match=r"not reached within 0.3 s: the sensor is at 20.0 C"):
        monitor.wait(generation, 0.3, threading.Event())
    monitor.set_setpoint(10.0, 1.0)
    with pytest.raises(IndisyncError, match="superseded"):
        monitor.wait(generation, 1.0, threading.Event())
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(IndisyncError, match="stopping"):
        monitor.wait(generation + 1, 5.0, stopping)


def test_monitor_sends_the_setpoint_again_to_a_new_camera():
    cameras = [FakeCamera(0.0)]
    monitor = CoolingMonitor(lambda: cameras[-1])
    monitor.set_setpoint(-10.0, 1.0)
    cameras.append(FakeCamera(5.0))  # indiserver came back: a new camera object, setpoint forgotten
    monitor.sample()
    assert cameras[-1].sent == [-10.0]
    monitor.sample()
    assert cameras[-1].sent == [-10.0]  # once, not on every sample


def test_monitor_without_devices_keeps_the_last_values():
    state = {"ok": True}
    camera = FakeCamera(3.0)

    def get():
        if not state["ok"]:
            raise DeviceError("no connection")
        return camera

    monitor = CoolingMonitor(get)
    assert monitor.sample()[0] == 3.0
    state["ok"] = False
    assert monitor.sample()[0] == 3.0


# ---- config ---------------------------------------------------------------------------------------
def test_camera_cooling_config():
    assert load_config(data={}).camera.cooling is None
    assert load_config(data={"camera": {"cooling": None}}).camera.cooling is None
    cooling = load_config(data={"camera": {"cooling": {}}}).camera.cooling
    assert (cooling.setpoint, cooling.tolerance, cooling.timeout, cooling.warm_to) == (-10.0, 1.0, 900.0, 10.0)
    with pytest.raises(ConfigError, match=r"camera\.cooling\.tolerance: got 0\.0; allowed: 0 < tolerance"):
        load_config(data={"camera": {"cooling": {"tolerance": 0}}})
    with pytest.raises(ConfigError, match=r"camera\.cooling\.setpont: unknown key"):
        load_config(data={"camera": {"cooling": {"setpont": -5}}})


def test_indi_weather_and_dome_keys():
    cfg = load_config(data={"indi": {"weather": "Weather Simulator", "dome": "Dome Simulator"}})
    assert (cfg.indi.weather, cfg.indi.dome) == ("Weather Simulator", "Dome Simulator")
    assert load_config(data={}).indi.weather is None and load_config(data={}).indi.dome is None
