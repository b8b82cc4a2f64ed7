"""A whole unattended night on the real simulators and broker (master + slave node processes).

Time factor 1 with short real exposures (as a user would shoot; the windows are planned with the
real durations). The site's longitude is chosen from the current UTC time so that it is local
midnight now (deep night in any season at latitude 45) or local noon (the sun up); the target sits
one hour east of the meridian at declination 45 (about 78 degrees up). The simulated mount is given
the same site, and a park position near the target (as a roll-off roof's would be), so that a park
takes about 2 s of simulated slewing; it starts unparked at the pole (the simulator's start).

- cooling and end_at: master and slave cool to the setpoint before the first frame; the night ends at
  end_at a minute ahead: no frame starts that would end after it, the mount is parked (read back),
  every camera warms, the master exits 0;
- the sun up: the master waits, says until when, takes no frame; `indisync stop` ends it;
- rain mid-exposure: every node's exposure aborted and the mount parked within 5 s of the Alert (read
  back), no partial file, after safe_for the night resumes with the slave's rotation unbroken; the
  weather driver stopped: unsafe; `indisync stop --abort` ends the night.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from indisync.config import IndiConfig, MqttConfig
from indisync.devices.session import open_devices
from indisync.protocol import messages
from indisync.sim.indi import get_numbers, set_precipitation
from indisync.sim.night import (LATITUDE, WEATHER, longitude_for_local_hour, mount_parked, prepare_mount,
                                target_east_high)
from indisync.sim.rig import SimRig
from indisync.sim.waiting import wait_until
from tests.conftest import MqttCollector

pytestmark = pytest.mark.integration

LAT = LATITUDE
FILTERS = ["Red", "Green", "Blue"]


def parked(indi) -> bool:
    return mount_parked(indi)  # PARK and state Ok, read back from the server


def events(wire, kind=None, node=None):
    return wire.envelopes(kind, node)


def frames(rig, node) -> list[Path]:
    """A node's frames in the order taken (by their sequence number, the name's last field)."""
    return sorted((rig.images / node).rglob("*.fits"), key=lambda p: int(re.search(r"_(\d+)\.fits$", p.name).group(1)))


def stray_files(rig) -> list[Path]:
    """Anything in the image folders that is not a finished frame (a partial or temporary file); the
    node's own state (.indisync/) and the night log and report (nights/) are expected there."""
    return [p for p in rig.images.rglob("*") if p.is_file() and not p.name.endswith(".fits")
            and ".indisync" not in p.parts and "nights" not in p.parts]


def filter_of(path: Path) -> str:
    return next(f for f in FILTERS + ["Luminance"] if f"_{f}_" in path.name)


def cli(rig, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indisync.cli", *args, "--config",
                           str(rig.nodes["master"].config_path)], capture_output=True, text=True, timeout=timeout)


def make_rig(tmp_path, lon, ra, dec, night, master_extra=None, slaves=1, exposure=4.0, cooling=None,
             master_drivers=()):
    sections = {"camera": {"cooling": cooling}} if cooling else {}
    master_sections = {"site": {"latitude": LAT, "longitude": lon, "elevation": 0}, "night": night,
                       **(master_extra or {})}
    return SimRig(
        slaves=slaves, time_factor=1.0, workdir=tmp_path / "rig", master_drivers=master_drivers,
        node_sections=sections, master_sections=master_sections,
        master_section={"target": {"name": "NIGHT", "ra": ra, "dec": dec}, "batches": None,
                        "sequence": {"slots": [{"type": "light", "filter": "Luminance", "exposure": exposure,
                                                "repeat": 50}]},
                        "refocus": {"after_batch": False}},
        slave_section={"filters": FILTERS, "exposure": exposure},
    )


def collector(rig) -> MqttCollector:
    return MqttCollector(MqttConfig(host=rig.broker.host, port=rig.broker.port), "indisync/#")


def night_states(wire) -> list[str]:
    return [env.payload["to"] for _, env in events(wire, "night_state", "master")]


def wait_for(predicate, timeout, what, rig=None, step=0.1):
    return wait_until(predicate, timeout, what, step, detail=rig.logs if rig else None)


# ---- cooling, imaging, end_at ----------------------------------------------------------------
@pytest.mark.timeout(240)
def test_night_cools_images_and_ends_at_end_at_parked_and_warm(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    setpoint, warm_to = -3.0, 5.0
    night = {"min_altitude": 30, "end_at": None, "cool": True, "park_at_end": True, "warm_at_end": True}
    cooling = {"setpoint": setpoint, "tolerance": 0.5, "timeout": 60, "warm_to": warm_to}
    with make_rig(tmp_path, lon, ra, dec, night, cooling=cooling) as rig:
        master_indi = rig.nodes["master"].indi
        prepare_mount(master_indi, lon, dec)
        wire = collector(rig)
        try:
            rig.start_slaves()
            end_at = (datetime.now(timezone.utc) + timedelta(seconds=60)).replace(microsecond=0)  # a minute ahead
            path = rig.nodes["master"].config_path
            config = yaml.safe_load(path.read_text())
            config["night"]["end_at"] = end_at.isoformat().replace("+00:00", "Z")
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            rig.start_node("master")
            assert rig.wait_node("master", 200) == 0, rig.logs()
            assert parked(master_indi), "the mount must be parked at the end (read back)"
            states = night_states(wire)
            assert states[:4] == ["cooling", "slewing", "centering", "imaging"], states
            assert states[-3:] == ["parking", "warming", "done"], states
            cooled_at = next(t for t, env in events(wire, "night_state", "master") if env.payload["from"] == "cooling")
            started = events(wire, "exposure_started")
            assert started, rig.logs()
            assert min(t for t, _ in started) > cooled_at, "a frame started before every node was cooled"
            for _, env in started:  # no frame that would end after end_at
                start = datetime.fromisoformat(env.payload["start"].replace("Z", "+00:00"))
                assert start + timedelta(seconds=env.payload["duration"]) <= end_at, env.payload
            last_end = max(datetime.fromisoformat(e.payload["start"].replace("Z", "+00:00"))
                           + timedelta(seconds=e.payload["duration"]) for _, e in started)
            assert end_at - last_end < timedelta(seconds=25), "the night stopped long before end_at"
            for node in ("master", "slave1"):
                files = frames(rig, node)
                assert len(files) >= 3, (node, files)
                header = fits.getheader(files[0])
                assert abs(header["CCD-TEMP"] - setpoint) <= 0.5 and header["SET-TEMP"] == setpoint, dict(header)
            assert not stray_files(rig)
            # Every camera warms towards warm_to once the night is over (the simulator ramps ~0.5 degC/s).
            for node in ("master", "slave1"):
                indi = rig.nodes[node].indi
                wait_for(lambda: get_numbers(indi.host, indi.port, "CCD Simulator", "CCD_TEMPERATURE")
                         ["CCD_TEMPERATURE_VALUE"] > setpoint + 2, 20, f"{node}'s camera warming", rig)
            assert "did not reach the setpoint" not in rig.nodes["master"].log_text()
        finally:
            wire.close()


# ---- the sun up ---------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_with_the_sun_up_the_master_waits_says_until_when_and_takes_no_frame(tmp_path):
    lon = longitude_for_local_hour(12.0)
    ra, dec = target_east_high(lon)
    night = {"min_altitude": 30, "cool": False, "park_at_end": False, "warm_at_end": False}
    with make_rig(tmp_path, lon, ra, dec, night, slaves=0) as rig:
        prepare_mount(rig.nodes["master"].indi, lon, dec)
        wire = collector(rig)
        try:
            rig.start_node("master")
            rig.wait_up("master", 60)

            def waiting():
                state = [m for m in wire.messages("indisync/master/state")]
                if not state:
                    return None
                night_state = messages.decode(state[-1].payload).payload.get("night")
                return night_state if night_state and night_state["state"] == "waiting_dark" else None

            night_state = wait_for(waiting, 30, "night state waiting_dark", rig)
            until = datetime.fromisoformat(night_state["until"].replace("Z", "+00:00"))
            assert until > datetime.now(timezone.utc) + timedelta(hours=2)  # dusk is hours after local noon
            log = rig.nodes["master"].log_text()
            assert re.search(r"-> waiting_dark until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", log), log[-2000:]
            status = subprocess.run([sys.executable, "-m", "indisync.cli", "status", "--once", "--broker",
                                     f"{rig.broker.host}:{rig.broker.port}"], capture_output=True, text=True,
                                    timeout=30)
            assert "night (master): waiting_dark" in status.stdout and " until " in status.stdout, status.stdout
            time.sleep(5)
            assert not frames(rig, "master") and not events(wire, "exposure_started")
            result = cli(rig, "stop")
            assert result.returncode == 0, result.stderr
            assert rig.wait_node("master", 30) == 0, rig.logs()
            assert night_states(wire)[-1] == "done"
            assert not frames(rig, "master")
        finally:
            wire.close()


# ---- rain ---------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_rain_aborts_every_exposure_parks_and_resumes_after_safe_for(tmp_path):
    lon = longitude_for_local_hour(0.0)
    ra, dec = target_east_high(lon)
    safe_for, stale_after = 6.0, 5.0
    night = {"min_altitude": 30, "cool": False, "park_at_end": True, "warm_at_end": False}
    extra = {"indi": {"weather": WEATHER}, "safety": {"safe_for": safe_for, "stale_after": stale_after, "poll": 0.2}}
    with make_rig(tmp_path, lon, ra, dec, night, master_extra=extra, exposure=6.0,
                  master_drivers=("indi_simulator_weather",)) as rig, contextlib.ExitStack() as stack:
        indi = rig.nodes["master"].indi
        prepare_mount(indi, lon, dec, weather=True)
        wire = collector(rig)
        try:
            rig.start_slaves()
            rig.start_node("master")
            # Two slave frames, then rain 2 s into the next (6 s) exposure.
            wait_for(lambda: len(frames(rig, "slave1")) >= 2, 90, "two slave frames", rig)
            wait_for(lambda: len(events(wire, "exposure_started", "slave1")) >= 3, 30, "a third exposure", rig)
            time.sleep(2)
            before = {n: len(frames(rig, n)) for n in ("master", "slave1")}
            # Our own view of WEATHER_STATUS, updated by the INDI callbacks (a fresh connection per look is slow).
            watch = stack.enter_context(open_devices(IndiConfig(host=indi.host, port=indi.port, weather=WEATHER),
                                                     need=("weather",), want=()))
            rain = time.monotonic()
            set_precipitation(indi.host, indi.port, 10)
            wait_for(lambda: watch.weather.status == "alert", 5, "WEATHER_STATUS Alert", rig, step=0.01)
            alert = time.monotonic()
            for node in ("master", "slave1"):
                wait_for(lambda: [t for t, env in events(wire, "exposure_done", node)
                                  if t > rain and env.payload["status"] != "ok"],
                         5 - (time.monotonic() - alert), f"{node}'s exposure aborted within 5 s of the alert", rig)
            wait_for(lambda: parked(indi), 5 - (time.monotonic() - alert), "mount parked within 5 s of the alert",
                     rig, step=0.05)
            assert "unsafe" in night_states(wire)
            time.sleep(1)
            assert {n: len(frames(rig, n)) for n in ("master", "slave1")} == before, "an aborted frame was written"
            assert not stray_files(rig), stray_files(rig)
            # Clear again: the night waits safe_for s of safe weather, then slews back and resumes.
            set_precipitation(indi.host, indi.port, 0)
            wait_for(lambda: watch.weather.status == "ok", 5, "WEATHER_STATUS Ok", rig, step=0.01)
            clear = time.monotonic()
            wait_for(lambda: [t for t, env in events(wire, "night_state", "master")
                              if env.payload["from"] == "parked" and env.payload["to"] == "slewing"],
                     safe_for + 10, "the night resuming", rig)
            resumed_at = [t for t, env in events(wire, "night_state", "master")
                          if env.payload["from"] == "parked"][-1]
            assert resumed_at - clear >= safe_for - 1.5, "resumed before safe_for of safe weather"
            wait_for(lambda: len(frames(rig, "slave1")) >= before["slave1"] + 2, 60, "frames after the rain", rig)
            rotation = [filter_of(p) for p in frames(rig, "slave1")]
            assert rotation == [FILTERS[i % 3] for i in range(len(rotation))], rotation  # no filter skipped
            stack.close()  # our own client off the station before its driver goes
            # The weather driver gone: unsafe (at once, or at the latest after stale_after).
            gone = time.monotonic()
            rig.nodes["master"].indi.stop_driver("indi_simulator_weather")
            wait_for(lambda: [t for t, env in events(wire, "night_state", "master")
                              if t > gone and env.payload["to"] == "unsafe"], stale_after + 3,
                     "unsafe after the weather driver stopped", rig)
            reason = [env.payload["reason"] for t, env in events(wire, "night_state", "master") if t > gone][0]
            assert "weather" in reason, reason
            wait_for(lambda: parked(indi), 10, "parked after the weather driver stopped", rig)
            result = cli(rig, "stop", "--abort")
            assert result.returncode == 0, result.stderr
            assert rig.wait_node("master", 30) == 0, rig.logs()
            assert night_states(wire)[-1] == "done"
            assert not stray_files(rig)
        finally:
            wire.close()
